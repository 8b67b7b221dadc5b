"""Build an :class:`~app.dicom.types.AssembledStudy` straight from HU arrays.

For tests, benchmarks and training caches that have pixel data but no DICOM files: the phases
are taken as co-registered stacks of the same length, slice ``k`` of every phase forming pair
``k``. Real studies come from :mod:`app.dicom` assembly instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

from app import PHASES
from app.dicom.types import AssembledStudy, SlicePair, Volume


def _uid(*parts: str) -> str:
    """A stable made-up UID (2.25 = UUID-derived root) from the given parts."""
    return "2.25." + str(int(hashlib.sha256("/".join(parts).encode()).hexdigest()[:24], 16))


def study_from_arrays(
    hu: Mapping[str, np.ndarray],
    pixel_spacing: tuple[float, float] = (0.75, 0.75),
    slice_spacing: float = 5.0,
    z0: float = -100.0,
    patient_id: str = "ARRAY",
) -> AssembledStudy:
    """An assembled study whose phase ``p`` is the stack ``hu[p]`` (``(N, rows, cols)`` HU).

    Parameters
    ----------
    hu:
        phase → HU stack; every stack must have the same number of slices N, and pair ``k`` is
        slice ``k`` of each phase.
    pixel_spacing, slice_spacing, z0:
        Geometry: in-plane spacing (mm), distance between slices (mm), table position of slice 0.
    patient_id:
        Used for patient id, name and the made-up UIDs.

    Returns
    -------
    AssembledStudy
        With every slice in the liver range and paired.
    """
    phases = [p for p in PHASES if p in hu]
    if not phases or set(hu) - set(PHASES):
        raise ValueError(f"phases must be some of {PHASES}, got {list(hu)}")
    counts = {p: int(np.asarray(hu[p]).shape[0]) for p in phases}
    if len(set(counts.values())) != 1:
        raise ValueError(f"every phase needs the same number of slices, got {counts}")
    n = counts[phases[0]]
    z = z0 + slice_spacing * np.arange(n, dtype=np.float64)
    volumes: dict[str, Volume] = {}
    for p in phases:
        arr = np.asarray(hu[p], dtype=np.float32)
        uid = _uid(patient_id, p)
        volumes[p] = Volume(
            hu=arr, z_positions=z.copy(), origin=(0.0, 0.0, float(z[0])),
            pixel_spacing=pixel_spacing, slice_spacing=slice_spacing, direction=np.eye(3),
            sop_instance_uids=[f"{uid}.{k + 1}" for k in range(n)], series_uid=uid,
            slice_thickness=slice_spacing)
    pairs = [SlicePair(z_ref=float(z[k]), index={p: k for p in phases},
                       z_mm={p: float(z[k]) for p in phases}) for k in range(n)]
    return AssembledStudy(
        patient_id=patient_id, patient_name=patient_id, study_uid=_uid(patient_id),
        study_date="20260101", study_description="arrays",
        assignment={p: volumes[p].series_uid for p in phases}, volumes=volumes,
        liver_range_mm={p: (float(z[0]), float(z[-1])) for p in phases}, pairs=pairs)


def phantom_arrays(
    n_slices: int = 30,
    size: int = 512,
    phases: tuple[str, ...] = PHASES,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Phantom-like HU stacks: air, an elliptical body (fat rim, soft tissue), a liver whose
    enhancement depends on the phase, a tumour, and noise — for benchmarks where only the
    sizes and a plausible value range matter (``app.synthetic`` writes realistic DICOM)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    body = ((yy - 0.52) / 0.36) ** 2 + ((xx - 0.5) / 0.44) ** 2 <= 1.0
    inner = ((yy - 0.52) / 0.32) ** 2 + ((xx - 0.5) / 0.40) ** 2 <= 1.0
    liver = ((yy - 0.45) / 0.17) ** 2 + ((xx - 0.33) / 0.16) ** 2 <= 1.0
    tumour = ((yy - 0.42) / 0.05) ** 2 + ((xx - 0.30) / 0.05) ** 2 <= 1.0
    liver_hu = {"plain": 55.0, "arterial": 75.0, "portal": 110.0}
    tumour_hu = {"plain": 40.0, "arterial": 130.0, "portal": 85.0}
    out: dict[str, np.ndarray] = {}
    for p in phases:
        base = np.full((size, size), -1000.0, np.float32)
        base[body] = -100.0
        base[inner] = 40.0
        base[liver] = liver_hu[p]
        base[tumour] = tumour_hu[p]
        stack = np.repeat(base[None], n_slices, axis=0)
        stack += rng.normal(0.0, 12.0, stack.shape).astype(np.float32)
        out[p] = stack
    return out
