"""Pair the liver slices of the phases by table position (the model's input triplets).

The paper feeds the model one slice of each phase at the same level, over the slices covering the
whole liver. The phases are separate breath-holds, so the liver sits a few millimetres higher or
lower from one phase to the next; pairing by raw table position would match the liver dome of
one phase with a slice below the dome of another. How it is done here:

1. **Breath-hold shift** of each phase against a reference phase (portal-venous when present: it
   shows the liver best). Where the liver's per-slice cross-section areas are known, the shift is
   the one that best correlates the two area profiles (resampled to a 1 mm grid, searched within
   ±``MAX_SHIFT_MM``); this uses the whole shape of the liver, not just its two ends, which are
   the least reliable slices. Without usable profiles, the shift is the offset between the centres
   of the two liver ranges.
2. **Matching**: for each reference slice in the liver range, the slice of the other phase
   nearest to ``z_ref + shift`` within half a slice spacing (of the coarser phase); greedy by
   distance, each slice used at most once. A triplet forms only where every phase has a partner.
3. Liver slices of any phase left without a triplet are reported as unpaired (table positions),
   never silently dropped or interpolated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from app.dicom.types import SlicePair, Volume

#: Largest breath-hold shift searched (mm); larger offsets are reported, not trusted.
MAX_SHIFT_MM = 40.0
#: Profile correlation below this is too weak to trust; the range centres are used instead.
MIN_PROFILE_CORRELATION = 0.5


@dataclass
class LiverExtent:
    """What pairing needs to know about the liver in one phase.

    ``indices`` are the slices (into the phase's volume) covering the liver, ``areas_mm2`` the
    liver cross-section of every slice of the volume (empty when unknown).
    """

    z_min: float
    z_max: float
    indices: list[int]
    areas_mm2: Sequence[float] = ()


@dataclass
class PairingResult:
    """Triplets, leftovers and how the phases were aligned."""

    pairs: list[SlicePair]
    unpaired: dict[str, list[float]]
    reference: str
    shifts_mm: dict[str, float]
    shift_method: dict[str, str]
    warnings: list[str] = field(default_factory=list)


def _profile_shift(
    ref_vol: Volume, ref_areas: Sequence[float], vol: Volume, areas: Sequence[float]
) -> tuple[float, float] | None:
    """Shift (mm) maximising the correlation of two liver-area profiles, and that correlation."""
    a_ref = np.asarray(ref_areas, dtype=float)
    a = np.asarray(areas, dtype=float)
    if a_ref.size != ref_vol.n_slices or a.size != vol.n_slices or a_ref.max(initial=0) <= 0 \
            or a.max(initial=0) <= 0 or ref_vol.n_slices < 3 or vol.n_slices < 3:
        return None
    lo = min(ref_vol.z_positions.min(), vol.z_positions.min()) - MAX_SHIFT_MM
    hi = max(ref_vol.z_positions.max(), vol.z_positions.max()) + MAX_SHIFT_MM
    grid = np.arange(lo, hi + 1.0, 1.0)
    p_ref = np.interp(grid, ref_vol.z_positions, a_ref, left=0.0, right=0.0)
    best: tuple[float, float] | None = None
    for shift in np.arange(-MAX_SHIFT_MM, MAX_SHIFT_MM + 1.0, 1.0):
        p = np.interp(grid + shift, vol.z_positions, a, left=0.0, right=0.0)
        denom = float(np.linalg.norm(p_ref) * np.linalg.norm(p))
        if denom <= 0:
            continue
        corr = float(p_ref @ p) / denom
        # Ties go to the smaller shift (no evidence for moving further).
        if best is None or corr > best[1] + 1e-9 or (
            abs(corr - best[1]) <= 1e-9 and abs(shift) < abs(best[0])
        ):
            best = (float(shift), corr)
    return best


def estimate_shift(
    ref_vol: Volume, ref_liver: LiverExtent, vol: Volume, liver: LiverExtent
) -> tuple[float, str]:
    """Breath-hold shift of ``vol``'s liver against the reference (mm, + = towards the head).

    Returns the shift and how it was found (for the evidence shown to the user).
    """
    found = _profile_shift(ref_vol, ref_liver.areas_mm2, vol, liver.areas_mm2)
    if found is not None and found[1] >= MIN_PROFILE_CORRELATION:
        return found[0], f"liver area profiles (correlation {found[1]:.2f})"
    centre_ref = 0.5 * (ref_liver.z_min + ref_liver.z_max)
    centre = 0.5 * (liver.z_min + liver.z_max)
    return centre - centre_ref, "centres of the liver ranges"


def pair_slices(
    volumes: Mapping[str, Volume],
    livers: Mapping[str, LiverExtent],
    reference: str | None = None,
) -> PairingResult:
    """Pair the liver slices of all phases by table position after the breath-hold shift.

    Parameters
    ----------
    volumes:
        phase → loaded volume (z ascending).
    livers:
        phase → liver extent in that volume.
    reference:
        Phase whose slices define the levels (default: portal, else the last phase given).

    Returns
    -------
    PairingResult
        Triplets ordered by ``z_ref``, unpaired liver slices per phase, shifts and warnings.
    """
    phases = list(volumes)
    if reference is None:
        reference = "portal" if "portal" in volumes else phases[-1]
    ref_vol = volumes[reference]
    ref_liver = livers[reference]
    shifts: dict[str, float] = {reference: 0.0}
    methods: dict[str, str] = {reference: "reference"}
    warnings: list[str] = []
    for p in phases:
        if p == reference:
            continue
        shift, how = estimate_shift(ref_vol, ref_liver, volumes[p], livers[p])
        if abs(shift) > MAX_SHIFT_MM:
            warnings.append(
                f"{p}: liver offset {shift:+.1f} mm against {reference} is larger than a "
                f"breath-hold shift ({MAX_SHIFT_MM:.0f} mm); pairing may be wrong"
            )
        elif abs(shift) >= 0.5:
            warnings.append(f"{p}: breath-hold shift {shift:+.1f} mm against {reference} ({how})")
        shifts[p] = shift
        methods[p] = how
    # Candidate matches per phase: reference liver slice k ↔ phase slice j within tolerance.
    ref_idx = list(ref_liver.indices)
    matched: dict[str, dict[int, int]] = {}
    for p in phases:
        if p == reference:
            continue
        vol = volumes[p]
        allowed = livers[p].indices
        tol = 0.5 * max(ref_vol.slice_spacing, vol.slice_spacing) + 1e-6
        cands: list[tuple[float, int, int]] = []
        zs = vol.z_positions
        for k in ref_idx:
            target = ref_vol.z_positions[k] + shifts[p]
            for j in allowed:
                d = abs(zs[j] - target)
                if d <= tol:
                    cands.append((float(d), k, j))
        cands.sort()
        used_k: dict[int, int] = {}
        used_j: set[int] = set()
        for _, k, j in cands:
            if k in used_k or j in used_j:
                continue
            used_k[k] = j
            used_j.add(j)
        matched[p] = used_k
    pairs: list[SlicePair] = []
    for k in ref_idx:
        if all(k in matched[p] for p in matched):
            index = {reference: int(k), **{p: int(matched[p][k]) for p in matched}}
            ordered = {p: index[p] for p in phases}
            pairs.append(SlicePair(
                z_ref=float(ref_vol.z_positions[k]),
                index=ordered,
                z_mm={p: float(volumes[p].z_positions[i]) for p, i in ordered.items()},
            ))
    pairs.sort(key=lambda sp: sp.z_ref)
    unpaired: dict[str, list[float]] = {}
    for p in phases:
        used = {sp.index[p] for sp in pairs}
        left = [float(volumes[p].z_positions[i]) for i in livers[p].indices if i not in used]
        if left:
            unpaired[p] = sorted(left)
    if not pairs:
        warnings.append("no slice triplets: the phases' liver ranges do not overlap after "
                        "alignment")
    return PairingResult(pairs, unpaired, reference, shifts, methods, warnings)
