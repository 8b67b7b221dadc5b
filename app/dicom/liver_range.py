"""The cranio-caudal range of the liver, for study assembly.

Study assembly needs the cranio-caudal range of the liver (the paper's region of interest,
chosen by hand there): the liver is found slice by slice with classical image processing
(:mod:`app.dicom._morphology`), propagated from its largest cross-section, and the ranges of
the phases are aligned with each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage

from app.dicom import _morphology as morph
from app.dicom.types import Volume

#: Smallest largest-cross-section (mm²) accepted as a liver (a real one has 100-300 cm²).
MIN_LIVER_PEAK_MM2 = 5000.0
#: Liver cross-sections smaller than this fraction of the largest one end the liver range.
END_FRACTION = 0.05


@dataclass
class LiverRange:
    """Cranio-caudal extent of the liver in one volume.

    Attributes
    ----------
    z_min, z_max:
        Table positions (mm) of the first and last slice containing liver (``z_min <= z_max``).
    indices:
        Slice indices (ascending) from the first to the last liver slice, gaps included.
    confidence:
        0..1 from the liver's size, shape and the sharpness of its ends.
    evidence:
        Sentences for the user ("liver on slices 12-41 (z -180.0 … -35.0 mm), max 210 cm²").
    areas_mm2:
        Liver cross-section area of every slice of the volume (0 outside the liver).
    liver_hu:
        Median HU of the liver parenchyma.
    """

    z_min: float
    z_max: float
    indices: list[int]
    confidence: float
    evidence: list[str] = field(default_factory=list)
    areas_mm2: list[float] = field(default_factory=list)
    liver_hu: float | None = None


#: A component joining the liver may be at most this many times the liver's area on the slice
#: before: away from its widest level the liver only narrows, so a much larger component is a
#: neighbour (kidney, heart, bowel) touching the liver's end, and only its part under the liver
#: of the slice before is kept.
MAX_GROWTH = 2.0
#: Smallest part (mm²) of a tumour that is followed beyond the liver-dense tissue.
MIN_LESION_MM2 = 300.0
#: Within this distance (mm) of the midline, tissue behind the front of the vertebral body is
#: retroperitoneal (kidney, psoas, crus): the kidney's centre lies 5-7 cm from the midline at
#: the level of the vertebral body, the tip of the right lobe lies lateral and in front of it.
RETROPERITONEAL_HALF_WIDTH_MM = 70.0
#: HU range of tissue that may be tumour (viable, necrotic debris, enhancing); below it fluid
#: (gallbladder, bowel content) and fat, above it bone and iodised oil cores.
_LESION_LO, _LESION_HI = 20.0, morph._CORTEX_HU


def _density_match(mean: np.ndarray, seed_hu: float, prev_hu: float) -> np.ndarray:
    """Components whose mean HU is the liver's: near the seed slice's, or the slice before's.

    The seed slice's density alone is not enough when a large tumour shares that slice (its
    median is then pulled 10-20 HU off the parenchyma); the parenchyma of the neighbouring
    slice is the closer reference, and a kidney or bowel loop is still 20-30 HU from both.
    """
    return (np.abs(mean - seed_hu) <= 15.0) | (np.abs(mean - prev_hu) <= 10.0)


def _retroperitoneal(row: float, col: float, spine: morph._Spine | None, spacing: float) -> bool:
    """Whether a point lies beside the spine behind the front of the vertebral body.

    That is where the kidney sits (in the hepatorenal impression under the liver); a tumour
    of the liver's tip lies lateral to it or in front of it.
    """
    if spine is None or not spine.found:
        return False
    lateral_mm = abs(col - spine.col) * spacing
    return row > spine.anterior_row and lateral_mm < RETROPERITONEAL_HALF_WIDTH_MM


def _lesion_continuation(
    z: int,
    zp: int,
    prev: np.ndarray,
    prev_hu: float,
    work: morph._Work,
    px: float,
    spine: morph._Spine | None = None,
) -> np.ndarray:
    """Tumour on slice ``z`` under the tumour that was inside the liver on slice ``zp``.

    A tumour at the tip (or dome) of the liver can replace all the parenchyma of the last
    slices: its density differs from the liver's, so the candidate masks lose the liver there
    although the tumour is inside the liver's outline. Tumour pixels of the slice before are
    the parts of its liver mask at least 20 HU from the parenchyma (``prev_hu``) that are
    neither fat nor fluid; on this slice, soft tissue under and next to them, inside the outline
    of the slice before (so that the region can only shrink), continues the liver. Small
    pieces (vessels at the hilum) are not followed, nor a piece centred beside the spine behind
    the front of the vertebral body (``spine`` of slice ``z``): that is the kidney.
    """
    before = work.hu[zp]
    lesion_prev = (
        prev
        & (np.abs(before - prev_hu) > 20.0)
        & (before > _LESION_LO)
        & (before < _LESION_HI)
    )
    lesion_prev = cv2.morphologyEx(
        lesion_prev.astype(np.uint8), cv2.MORPH_OPEN, morph._disk(3.0 / work.spacing)
    )
    if lesion_prev.sum() * px < MIN_LESION_MM2:
        return np.zeros_like(prev)
    sl = work.hu[z]
    near = cv2.dilate(lesion_prev, morph._disk(5.0 / work.spacing)).astype(bool)
    soft = (sl > _LESION_LO) & (sl < _LESION_HI) & prev & near
    soft = cv2.morphologyEx(soft.astype(np.uint8), cv2.MORPH_OPEN, morph._disk(5.0 / work.spacing))
    n, labels, areas, centroids = morph._components(soft)
    out = np.zeros_like(prev)
    for lab in range(1, n):
        if areas[lab] * px < MIN_LESION_MM2:
            continue
        col, row = float(centroids[lab][0]), float(centroids[lab][1])
        if _retroperitoneal(row, col, spine, work.spacing):
            continue
        out |= labels == lab
    return out


def _propagate(
    seed: int,
    picks: list[np.ndarray],
    cands: list[np.ndarray],
    work: morph._Work,
    px: float,
    end_area: float,
    caudal_step: int = -1,
    spines: list[morph._Spine | None] | None = None,
) -> list[np.ndarray]:
    """Follow the liver from ``seed`` up and down through the candidate masks (see liver_areas).

    ``caudal_step`` is the index step (+1 or -1) towards the patient's feet; ``spines`` (per
    slice) keep a followed tumour out of the kidney.
    """
    n = len(cands)
    liver = [np.zeros_like(c) for c in cands]
    liver[seed] = morph._fill(picks[seed], work.spacing)
    # The liver's own density on the seed slice; a neighbour component must match it (a kidney
    # or bowel loop within the candidate tolerance is still 20-30 HU off).
    seed_hu = morph._median(work.hu[seed][picks[seed]])
    # A cross-section below this is the very end of the liver (dome cap or tip of the right
    # lobe): it is kept, but the search stops there, so that a tube of similar density leaving
    # the liver (the IVC running up to the heart, a bowel loop below) is not followed.
    for step in (1, -1):
        prev = liver[seed]
        prev_hu = seed_hu
        z = seed + step
        while 0 <= z < n and prev.any() and prev.sum() >= end_area:
            keep = _liver_step(z, prev, cands, work, px, seed_hu, prev_hu)
            dense = keep.copy()
            # Towards the tip only, and only where the liver-dense tissue suddenly shrinks: at
            # the dome, what lies under the liver's outline and differs from it are the hepatic
            # veins and the IVC running up to the heart, not tumour.
            if step == caudal_step and dense.sum() < 0.8 * prev.sum():
                spine = spines[z] if spines is not None else None
                keep |= _lesion_continuation(z, z - step, prev, prev_hu, work, px, spine)
            cur = morph._fill(keep, work.spacing) if keep.any() else keep
            if dense.any():
                prev_hu = morph._median(work.hu[z][dense])
            liver[z] = cur
            prev = cur
            z += step
    return liver


def _liver_step(
    z: int,
    prev: np.ndarray,
    cands: list[np.ndarray],
    work: morph._Work,
    px: float,
    seed_hu: float,
    prev_hu: float,
) -> np.ndarray:
    """Liver-dense components of slice ``z`` that continue the liver ``prev`` of the slice before.

    A component continues the liver when half of it lies inside ``prev`` or it covers half of
    ``prev``; in the second case a component much larger than ``prev`` (:data:`MAX_GROWTH`) is a
    neighbour organ joined to the liver's end, and only its part inside ``prev`` is kept.
    """
    keep = np.zeros_like(prev)
    labels, nlab = ndimage.label(cands[z])
    if not nlab:
        return keep
    size = np.bincount(labels.ravel(), minlength=nlab + 1)
    inside = np.bincount(labels[prev].ravel(), minlength=nlab + 1)
    # Mean density per component (bincount: one pass, unlike ndimage.median).
    total = np.bincount(labels.ravel(), weights=work.hu[z].ravel(), minlength=nlab + 1)
    mean = total / np.maximum(size, 1)
    # Inscribed radius of each component: a strip of chest-wall muscle along the
    # liver's border is long and thin, a cross-section of the liver is not.
    dist = cv2.distanceTransform(cands[z].astype(np.uint8), cv2.DIST_L2, 3)
    prev_area = prev.sum()
    for lab in np.nonzero((size * px >= 50.0) & _density_match(mean, seed_hu, prev_hu))[0]:
        if lab == 0:
            continue
        if size[lab] * px < 2000.0:
            rmax = float(dist[labels == lab].max())
            if size[lab] > 5.0 * np.pi * max(rmax, 0.5) ** 2:
                continue
        if inside[lab] < 0.5 * size[lab] and inside[lab] < 0.5 * prev_area:
            continue
        comp = morph._break_ring(labels == lab, work.spacing)
        sub, nsub = ndimage.label(comp)
        for j in range(1, nsub + 1):
            # Thin parts removed: keep what still overlaps the liver before.
            piece = sub == j
            ov = (piece & prev).sum()
            if ov >= 0.5 * piece.sum():
                keep |= piece
            elif ov >= 0.5 * prev_area:
                keep |= piece & prev if piece.sum() > MAX_GROWTH * prev_area else piece
    return keep


def _best_reference(
    refs: list[float], work: morph._Work, bodies: list[np.ndarray], spines: list[morph._Spine | None]
) -> float:
    """The histogram peak whose liver-like region is the largest on its best slices.

    The parenchyma surrounds a tumour on the levels where both are seen: with the parenchyma's
    density, hole filling gives the whole liver cross-section, tumour included, while with the
    tumour's density only the tumour is found. The mean of the three largest filled
    cross-sections (on every other slice, which is enough to find them) tells them apart.
    """
    px = work.spacing * work.spacing
    best, best_score = refs[0], -1.0
    for ref in refs:
        filled = []
        for k in range(0, len(spines), 2):
            spine = spines[k]
            if spine is None:
                continue
            cand = morph._liver_candidates(work.hu[k], bodies[k], ref, work.spacing, spine)
            pick = morph._pick_liver_2d(cand, bodies[k], work.spacing)
            filled.append(float(morph._fill(pick, work.spacing).sum()) * px if pick.any() else 0.0)
        score = float(np.mean(sorted(filled)[-3:])) if filled else 0.0
        if score > best_score:
            best, best_score = ref, score
    return best


def liver_areas(volume: Volume) -> tuple[np.ndarray, float | None]:
    """Liver cross-section area (mm²) on every slice, and the liver's median HU.

    The liver is first picked on the slice where it is most evident (largest liver-like
    component right of the midline), then followed slice by slice up and down: on the next
    slice, a candidate component belongs to the liver when at least half of it lies inside the
    liver of the slice before, or it covers half of that liver. A kidney, the spleen or bowel of
    similar density that touches the liver in 3-D is therefore not dragged in, and hole filling
    per slice counts tumours, vessels and TACE oil inside the liver.
    """
    work = morph._prepare(volume)
    bodies = [morph._body_mask(sl) for sl in work.hu]
    refs = morph._liver_reference_candidates(work, bodies)
    n = volume.n_slices
    areas = np.zeros(n)
    if not refs:
        return areas, None
    px = work.spacing * work.spacing
    trunk = [b.sum() * px >= 20000 for b in bodies]
    spines = [
        morph._find_spine(sl, b, work.spacing) if t else None
        for sl, b, t in zip(work.hu, bodies, trunk, strict=True)
    ]
    ref = refs[0] if len(refs) == 1 else _best_reference(refs, work, bodies, spines)

    def candidates(k: int) -> np.ndarray:
        spine = spines[k]
        if spine is None:
            return np.zeros_like(bodies[k])
        return morph._liver_candidates(work.hu[k], bodies[k], ref, work.spacing, spine)

    cands = [candidates(k) for k in range(n)]
    picks = [morph._pick_liver_2d(c, b, work.spacing) for c, b in zip(cands, bodies, strict=True)]
    pick_area = np.array([p.sum() for p in picks], dtype=float)
    if pick_area.max() * px < MIN_LIVER_PEAK_MM2:
        return areas, ref
    # Seeds: every slice where the liver is evident on its own (its 2-D pick at least half the
    # largest). One seed is not enough when a large tumour replaces most of the right lobe on
    # some levels: the liver-dense part then jumps from the right lobe to the left lobe and
    # the slice-to-slice overlap test would stop there.
    peak = float(pick_area.max())
    first = int(np.argmax(pick_area))
    zs = np.asarray(volume.z_positions, dtype=float)
    caudal = -1 if n < 2 or zs[-1] >= zs[0] else 1
    liver = _propagate(first, picks, cands, work, px, END_FRACTION * peak, caudal, spines)
    first_hu = morph._median(work.hu[first][picks[first]])
    # Further seeds must look like the first one (density within 10 HU) and lie next to
    # the liver found so far, so that a heart or spleen of liver density elsewhere cannot
    # start a liver of its own.
    for seed in np.argsort(-pick_area)[1:]:
        seed = int(seed)
        if pick_area[seed] < 0.5 * peak:
            break
        if (liver[seed] & picks[seed]).sum() >= 0.5 * pick_area[seed]:
            continue  # already reached
        # Next to it in 3-D: overlapping the liver of this or a neighbouring slice.
        near = any(
            (liver[z] & picks[seed]).any() for z in range(max(0, seed - 1), min(n, seed + 2))
        )
        if not near or abs(morph._median(work.hu[seed][picks[seed]]) - first_hu) > 10.0:
            continue
        grown = _propagate(seed, picks, cands, work, px, END_FRACTION * peak, caudal, spines)
        for z in range(n):
            liver[z] |= grown[z]
    for z in range(n):
        areas[z] = liver[z].sum() * px
    mask = np.stack(liver)
    hu = morph._median(work.hu[mask]) if mask.any() else ref
    return areas, hu


def find_liver_range(volume: Volume) -> LiverRange:
    """First and last slice containing liver (the paper's region of interest).

    Parameters
    ----------
    volume:
        A full axial series (all slices), HU.

    Returns
    -------
    LiverRange
        ``z_min``/``z_max`` in mm and the slice indices between them. Slices count as liver when
        their cross-section exceeds 2 % of the largest one (and at least 1 cm²), which keeps the
        thin dome and tip but not a few stray pixels. When no liver is found the whole volume is
        returned with confidence 0 and evidence saying so, so the caller can ask the user.

    Notes
    -----
    Works on every slice of the volume, downsampled to ~2.5 mm pixels; about 2-5 ms per slice.
    """
    areas, hu = liver_areas(volume)
    z = np.asarray(volume.z_positions, dtype=float)
    peak = float(areas.max()) if areas.size else 0.0
    # A liver's largest cross-section is 100-300 cm²; below 50 cm² what was found is a kidney,
    # the heart or bowel on a series that does not reach the liver.
    if peak < MIN_LIVER_PEAK_MM2:
        return LiverRange(
            z_min=float(z.min()),
            z_max=float(z.max()),
            indices=list(range(volume.n_slices)),
            confidence=0.0,
            evidence=["no liver found: the whole series is offered, please check"],
            areas_mm2=[float(a) for a in areas],
            liver_hu=hu,
        )
    thr = 50.0
    on = np.nonzero(areas >= thr)[0]
    first, last = int(on.min()), int(on.max())
    evidence = [
        f"liver on slices {first}-{last} (z {z[first]:.1f} … {z[last]:.1f} mm), "
        f"largest cross-section {peak / 100:.0f} cm², {hu:.0f} HU"
    ]
    conf = 0.9
    # A liver cut by the edge of the scan has no end inside the volume: the range is truncated.
    if first == 0 and areas[0] > 0.2 * peak:
        evidence.append("liver reaches the lower end of the series: its range may be cut")
        conf -= 0.3
    if last == volume.n_slices - 1 and areas[-1] > 0.2 * peak:
        evidence.append("liver reaches the upper end of the series: its range may be cut")
        conf -= 0.3
    gaps = [i for i in range(first, last + 1) if areas[i] < thr]
    if gaps:
        evidence.append(f"{len(gaps)} slice(s) inside the range without liver found")
        conf -= min(0.3, 0.05 * len(gaps))
    return LiverRange(
        z_min=float(min(z[first], z[last])),
        z_max=float(max(z[first], z[last])),
        indices=list(range(first, last + 1)),
        confidence=float(np.clip(conf, 0.0, 1.0)),
        evidence=evidence,
        areas_mm2=[float(a) for a in areas],
        liver_hu=hu,
    )


def _profile_shift(
    z_a: np.ndarray, a: np.ndarray, z_b: np.ndarray, b: np.ndarray, max_mm: float = 25.0
) -> float:
    """Shift s (mm) that best aligns area profile ``b`` onto ``a``: a(z) ≈ b(z - s).

    Phases of one study differ by the breath-hold (up to ~10 mm) and the table start; the liver's
    cross-section profile is the same organ, so normalised cross-correlation of the two profiles
    on a 1 mm grid finds the shift even where one phase lost the tip of the liver.
    """
    lo = max(z_a.min(), z_b.min()) - max_mm
    hi = min(z_a.max(), z_b.max()) + max_mm
    grid = np.arange(lo, hi + 1.0, 1.0)
    order_a, order_b = np.argsort(z_a), np.argsort(z_b)
    pa = np.interp(grid, z_a[order_a], a[order_a], left=0.0, right=0.0)
    best_s, best_c = 0.0, -np.inf
    for s in np.arange(-max_mm, max_mm + 1.0, 1.0):
        pb = np.interp(grid - s, z_b[order_b], b[order_b], left=0.0, right=0.0)
        c = float(np.dot(pa, pb) / (np.linalg.norm(pa) * np.linalg.norm(pb) + 1e-9))
        if c > best_c:
            best_s, best_c = float(s), c
    return best_s


def _snap(z: np.ndarray, target: float) -> int:
    return int(np.argmin(np.abs(z - target)))


def find_liver_ranges(volumes: Mapping[str, Volume]) -> dict[str, LiverRange]:
    """Liver range of every phase of one study, made consistent across the phases.

    Each volume is first measured on its own (:func:`find_liver_range`). With three or more
    phases, their profiles are aligned (the breath-hold shift between phases is estimated from
    the liver's cross-section profile), and each end of the range is compared with the median of
    the other phases' ends in this phase's frame: an end more than one slice off — the heart or
    muscle of liver density followed on an unenhanced scan, or a tumour at the tip lost in one
    phase — is replaced by the consensus and the evidence says so.

    Parameters
    ----------
    volumes:
        phase (or series uid) → full volume of that series.

    Returns
    -------
    dict
        Same keys → :class:`LiverRange`.
    """
    out = {key: find_liver_range(vol) for key, vol in volumes.items()}
    keys = [k for k in out if out[k].confidence > 0.0]
    if len(keys) < 3:
        return out
    zs = {k: np.asarray(volumes[k].z_positions, dtype=float) for k in keys}
    areas = {k: np.asarray(out[k].areas_mm2, dtype=float) for k in keys}
    for k in keys:
        r = out[k]
        z = zs[k]
        lows, highs = [], []
        for other in keys:
            if other == k:
                continue
            # other's profile mapped into k's frame: k(z) ≈ other(z - s).
            s = _profile_shift(z, areas[k], zs[other], areas[other])
            lows.append(out[other].z_min + s)
            highs.append(out[other].z_max + s)
        spacing = float(volumes[k].slice_spacing) or 5.0
        lo_c, hi_c = float(np.median(lows)), float(np.median(highs))
        new_lo, new_hi = r.z_min, r.z_max
        notes: list[str] = []
        if abs(r.z_min - lo_c) > 1.5 * spacing:
            new_lo = float(z[_snap(z, lo_c)])
            notes.append(
                f"lower end moved from {r.z_min:.1f} to {new_lo:.1f} mm to agree with the other phases"
            )
        if abs(r.z_max - hi_c) > 1.5 * spacing:
            new_hi = float(z[_snap(z, hi_c)])
            notes.append(
                f"upper end moved from {r.z_max:.1f} to {new_hi:.1f} mm to agree with the other phases"
            )
        if notes:
            first, last = sorted((_snap(z, new_lo), _snap(z, new_hi)))
            out[k] = LiverRange(
                z_min=float(min(new_lo, new_hi)),
                z_max=float(max(new_lo, new_hi)),
                indices=list(range(first, last + 1)),
                confidence=min(r.confidence, 0.7),
                evidence=[*r.evidence, *notes],
                areas_mm2=r.areas_mm2,
                liver_hu=r.liver_hu,
            )
    return out
