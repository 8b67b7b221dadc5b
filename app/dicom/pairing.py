"""Pair the liver slices of the phases by table position (the model's input triplets).

The paper feeds the model one slice of each phase at the same level, over the slices covering the
whole liver. The phases are separate breath-holds, so the liver sits a few millimetres higher or
lower from one phase to the next; pairing by raw table position would match the liver dome of
one phase with a slice below the dome of another. How it is done here:

1. **Breath-hold shift** of each phase against a reference phase (the one with the coarsest
   slice spacing, portal-venous among equals: it shows the liver best). Where the liver's per-slice cross-section areas are known, the shift is
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


def reconcile_livers(
    volumes: Mapping[str, Volume],
    livers: Mapping[str, LiverExtent],
    found: Mapping[str, bool],
) -> tuple[dict[str, LiverExtent], list[str]]:
    """Replace a phase's liver range that disagrees with the other phases by theirs.

    One liver seen in three breath-holds has nearly the same cranio-caudal extent in each; a
    range much shorter or longer than the others (the detector lost the liver in a noisy thin
    reconstruction, or followed a neighbouring organ in the plain phase) is an error of that
    phase's detection. With at least two agreeing phases, such a phase gets the median range of
    the agreeing ones (table positions, no shift) and no area profile, and the note says so.

    Returns the (possibly) corrected ranges and notes for the user (empty when all agree).
    """
    if len(livers) < 3:
        return dict(livers), []
    extent = {p: lv.z_max - lv.z_min for p, lv in livers.items()}
    median = float(np.median([extent[p] for p in livers if found.get(p, True)] or [0.0]))
    if median <= 0:
        return dict(livers), []
    tol = max(25.0, 0.2 * median)
    outliers = [p for p in livers
                if not found.get(p, True) or abs(extent[p] - median) > tol]
    reliable = [p for p in livers if p not in outliers]
    if not outliers or len(reliable) < 2:
        return dict(livers), []
    lo = float(np.median([livers[p].z_min for p in reliable]))
    hi = float(np.median([livers[p].z_max for p in reliable]))
    out = dict(livers)
    notes = []
    for p in outliers:
        z = volumes[p].z_positions
        half = 0.5 * volumes[p].slice_spacing
        idx = [int(i) for i in np.nonzero((z >= lo - half) & (z <= hi + half))[0]]
        if not idx:
            continue
        old = livers[p]
        out[p] = LiverExtent(float(z[idx[0]]), float(z[idx[-1]]), idx, ())
        notes.append(
            f"{p}: liver range {old.z_min:.1f}..{old.z_max:.1f} mm disagrees with the other "
            f"phases ({lo:.1f}..{hi:.1f} mm); their range is used"
        )
    return out, notes


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
        Phase whose slices define the levels (default: the phase with the coarsest slice
        spacing, portal-venous among equals).

    Returns
    -------
    PairingResult
        Triplets ordered by ``z_ref``, unpaired liver slices per phase, shifts and warnings.
    """
    phases = list(volumes)
    if reference is None:
        # The coarsest phase sets the levels (every one of its slices can find a partner in a
        # finer phase, not the other way round); among equals the portal-venous phase, which
        # shows the liver best.
        coarsest = max(volumes[p].slice_spacing for p in phases)
        candidates = [p for p in phases if volumes[p].slice_spacing >= coarsest - 1e-3]
        reference = "portal" if "portal" in candidates else candidates[-1]
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
