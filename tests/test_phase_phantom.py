"""A tiny hand-made abdomen phantom for the phase and anatomy tests (no DICOM involved).

Ellipses for body, liver (patient's right, i.e. image left), spleen, spine with a canal, aorta
anterior-left of the spine and a portal vein at the liver hilum; HU per phase from the usual
liver-CT values. Deliberately independent of :mod:`app.synthetic` so that these tests do not
share the generator's assumptions.
"""

from __future__ import annotations

import numpy as np

from app.dicom.types import SeriesInfo, Volume

# (aorta, portal vein, liver, spleen, kidney) HU per phase.
PHASE_HU: dict[str, tuple[float, float, float, float, float]] = {
    "plain": (42.0, 38.0, 56.0, 46.0, 30.0),
    "arterial": (290.0, 120.0, 72.0, 110.0, 180.0),
    "portal": (175.0, 190.0, 112.0, 125.0, 170.0),
    "delayed": (118.0, 115.0, 86.0, 95.0, 130.0),
}


def _ellipse(
    rr: np.ndarray, cc: np.ndarray, r0: float, c0: float, a: float, b: float
) -> np.ndarray:
    return ((rr - r0) / a) ** 2 + ((cc - c0) / b) ** 2 <= 1.0


def phantom_volume(
    phase: str,
    n_slices: int = 12,
    matrix: int = 128,
    spacing_mm: float = 3.0,
    slice_mm: float = 5.0,
    liver_slices: tuple[int, int] = (2, 9),
    noise: float = 10.0,
    seed: int = 0,
    lesion: bool = False,
    lipiodol: bool = False,
    uid: str = "1.2.3",
) -> Volume:
    """A (n_slices, matrix, matrix) HU volume of the phantom in ``phase``.

    The liver exists on slices ``liver_slices[0]..liver_slices[1]`` (inclusive), largest in the
    middle; the rest of the anatomy runs through every slice.
    """
    rng = np.random.default_rng(seed)
    aorta, pv, liver_hu, spleen_hu, kidney_hu = PHASE_HU[phase]
    mm = spacing_mm
    rr, cc = np.mgrid[0:matrix, 0:matrix].astype(np.float64)
    ctr = matrix / 2
    hu = np.full((n_slices, matrix, matrix), -1000.0, dtype=np.float32)
    lo, hi = liver_slices
    for z in range(n_slices):
        sl = np.full((matrix, matrix), -1000.0)
        body = _ellipse(rr, cc, ctr, ctr, 110 / mm, 160 / mm)
        sl[body] = -100.0  # fat
        sl[body & ~_ellipse(rr, cc, ctr, ctr, 100 / mm, 150 / mm)] = 45.0  # body wall muscle
        # Liver first: the vessels and the spine are drawn over it.
        if lo <= z <= hi:
            frac = 1.0 - abs((z - (lo + hi) / 2) / ((hi - lo) / 2 + 0.5)) ** 2
            a, b = 75 / mm * (0.4 + 0.6 * frac), 70 / mm * (0.4 + 0.6 * frac)
            lr, lc = ctr - 5 / mm, ctr - 72 / mm
            sl[_ellipse(rr, cc, lr, lc, a, b)] = liver_hu
            sl[_ellipse(rr, cc, lr + 5 / mm, lc + 0.55 * b, 7 / mm, 7 / mm)] = pv
            if lesion:
                sl[_ellipse(rr, cc, lr - 20 / mm, lc - 20 / mm, 20 / mm, 20 / mm)] = 20.0
            if lipiodol:
                sl[_ellipse(rr, cc, lr + 25 / mm, lc - 25 / mm, 6 / mm, 6 / mm)] = 900.0
        # Spine: vertebral body + canal, posterior midline.
        vb_r, vb_c = ctr + 55 / mm, ctr
        sl[_ellipse(rr, cc, vb_r, vb_c, 18 / mm, 20 / mm)] = 260.0
        ring = _ellipse(rr, cc, vb_r, vb_c, 18 / mm, 20 / mm) & ~_ellipse(
            rr, cc, vb_r, vb_c, 14 / mm, 16 / mm
        )
        sl[ring] = 700.0
        sl[_ellipse(rr, cc, vb_r + 28 / mm, vb_c, 9 / mm, 9 / mm)] = 700.0
        sl[_ellipse(rr, cc, vb_r + 28 / mm, vb_c, 6 / mm, 6 / mm)] = 15.0  # canal
        # Kidneys (posterior, both sides).
        for side in (-1, 1):
            sl[_ellipse(rr, cc, ctr + 45 / mm, ctr + side * 65 / mm, 25 / mm, 18 / mm)] = kidney_hu
        # Aorta: r 12 mm, 20 mm anterior and 15 mm left of the vertebral body centre.
        sl[_ellipse(rr, cc, vb_r - 38 / mm, vb_c + 15 / mm, 12 / mm, 12 / mm)] = aorta
        # Spleen: patient's left (image right), posterior.
        sl[_ellipse(rr, cc, ctr + 10 / mm, ctr + 95 / mm, 40 / mm, 25 / mm)] = spleen_hu
        hu[z] = sl + rng.normal(0.0, noise, sl.shape)
    z_pos = np.arange(n_slices, dtype=np.float64) * slice_mm - 200.0
    return Volume(
        hu=hu,
        z_positions=z_pos,
        origin=(-ctr * mm, -ctr * mm, float(z_pos[0])),
        pixel_spacing=(mm, mm),
        slice_spacing=slice_mm,
        direction=np.eye(3),
        sop_instance_uids=[f"{uid}.{i}" for i in range(n_slices)],
        series_uid=uid,
        slice_thickness=slice_mm,
    )


def series_info(uid: str, **kw: object) -> SeriesInfo:
    """A SeriesInfo with harmless defaults; keywords override fields."""
    fields: dict[str, object] = dict(
        uid=uid,
        series_instance_uid=uid,
        series_number=None,
        description="",
        modality="CT",
        orientation="axial",
        image_type=["ORIGINAL", "PRIMARY", "AXIAL"],
        n_slices=12,
        rows=128,
        columns=128,
        pixel_spacing=(3.0, 3.0),
        slice_thickness=5.0,
        slice_spacing=5.0,
        z_range=(-200.0, -145.0),
        frame_of_reference_uid="1.2.3.4",
        patient_id="P1",
        patient_name="Test^Patient",
        study_uid="9.8.7",
        study_date="20240101",
        study_description="",
    )
    fields.update(kw)
    return SeriesInfo(**fields)  # type: ignore[arg-type]
