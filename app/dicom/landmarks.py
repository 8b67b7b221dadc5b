"""Image landmarks for phase classification: the HU of the aorta, the portal vein and the liver.

Phase classification needs the HU of the aorta, the portal vein and the liver (the same
principle as TotalSegmentator's phase predictor, which uses organ and vessel median HU). They
are found with classical image processing on a coarse grid (:mod:`app.dicom._morphology`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np

from app.dicom._morphology import (
    _CORTEX_HU,
    _as_bool,
    _body_bounds,
    _body_mask,
    _Bounds,
    _disk,
    _disk_of,
    _fill,
    _find_spine,
    _liver_candidates,
    _liver_reference_candidates,
    _median,
    _pick_liver_2d,
    _pixels,
    _prepare,
    _Spine,
    _u8,
    _Work,
)
from app.dicom.types import Volume

#: Coarser grid for the landmark HU of phase classification (half the pixels: classification
#: must stay cheap next to loading the volumes; medians over discs do not need 2.5 mm).
LANDMARK_SPACING_MM = 3.2
#: Smallest liver cross-section (mm²) on a slice used for landmark HU.
MIN_LIVER_SLICE_MM2 = 2500.0


@dataclass
class Landmark:
    """One measured structure on one volume.

    Attributes
    ----------
    hu:
        Median HU of the structure over the slices where it was found (None if never found).
    n_slices:
        Number of slices it was found on.
    positions:
        ``(slice index, row, column)`` in the volume's own pixel grid, one per slice found.
    quality:
        0..1: how confident the detector was (shape, homogeneity, agreement between slices).
    """

    hu: float | None = None
    n_slices: int = 0
    positions: list[tuple[int, float, float]] = field(default_factory=list)
    quality: float = 0.0


@dataclass
class Landmarks:
    """Aorta, portal vein, liver (and spine) found on a few slices of a volume.

    ``quality`` summarises how trustworthy the three HU values are together; ``evidence`` says
    in words what was found where ("aorta 265 HU on 6/6 slices").
    """

    aorta: Landmark
    portal_vein: Landmark
    liver: Landmark
    spine: Landmark
    n_slices: int
    quality: float
    evidence: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, float]:
        """The measured HU values (only those found), for :attr:`PhaseCall.measurements`."""
        out: dict[str, float] = {}
        for name, lm in (
            ("aorta_hu", self.aorta),
            ("portal_vein_hu", self.portal_vein),
            ("liver_hu", self.liver),
        ):
            if lm.hu is not None:
                out[name] = round(float(lm.hu), 1)
        out["landmark_quality"] = round(float(self.quality), 3)
        return out


def _clip01(x: float) -> float:
    """``x`` limited to 0..1 (a Python float; ``np.clip`` on a scalar costs microseconds)."""
    return min(max(x, 0.0), 1.0)


@functools.lru_cache(maxsize=16)
def _disc_kernel(r: int) -> np.ndarray:
    """The disc of radius ``r`` as a float32 averaging kernel (sums to 1); read-only."""
    k = _disk_of(r).astype(np.float32)
    k /= k.sum()
    k.setflags(write=False)
    return k


def _disc_stats(sl: np.ndarray, radius_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of HU in a disc around every pixel (box-filter sums)."""
    k = _disc_kernel(max(1, int(round(radius_px))))
    mean: np.ndarray = cv2.filter2D(sl, -1, k, borderType=cv2.BORDER_REPLICATE)
    var: np.ndarray = cv2.filter2D(sl * sl, -1, k, borderType=cv2.BORDER_REPLICATE)
    np.subtract(var, mean * mean, out=var)
    np.maximum(var, 0.0, out=var)  # rounding can leave a tiny negative variance
    return mean, np.sqrt(var, out=var)


def _find_aorta(
    sl: np.ndarray, body: np.ndarray, spine: _Spine, spacing: float
) -> tuple[float, float, float, float] | None:
    """Aorta centre (row, col), its median HU and a 0..1 quality, or None.

    Searches just anterior and to the patient's left of the vertebral body for the most
    plausible homogeneous disc of non-fat, non-bone tissue; when contrast is present the aorta is
    also the brightest such disc there, which is rewarded. The position prior carries the
    plain scan, where the aorta (~40 HU) is as dense as the crus beside it.
    """
    r_in = 6.0 / spacing
    # Expected centre: ~14 mm in front of the vertebral body's anterior edge, ~12 mm left.
    exp_r = spine.anterior_row - 14.0 / spacing
    exp_c = spine.col + 12.0 / spacing
    # Work on a crop around the search window only (plus the filter margin): 10x less work.
    margin = int(np.ceil(r_in)) + 2
    h_full, w_full = sl.shape
    r_lo = max(0, int(exp_r - 45.0 / spacing) - margin)
    r_hi = min(h_full, int(exp_r + 18.0 / spacing) + margin + 1)
    c_lo = max(0, int(exp_c - 35.0 / spacing) - margin)
    c_hi = min(w_full, int(exp_c + 45.0 / spacing) + margin + 1)
    if r_hi - r_lo < 3 or c_hi - c_lo < 3:
        return None
    crop = np.ascontiguousarray(sl[r_lo:r_hi, c_lo:c_hi])
    mean, std = _disc_stats(crop, r_in)
    h, w = crop.shape
    # A column and a row of coordinates, broadcast: the values of a full grid, without it.
    rr, cc = np.arange(h)[:, None], np.arange(w)[None, :]
    d_r = (rr + r_lo - exp_r) * spacing
    d_c = (cc + c_lo - exp_c) * spacing
    in_window = (d_r > -45) & (d_r < 18) & (d_c > -35) & (d_c < 45) & body[r_lo:r_hi, c_lo:c_hi]
    if spine.mask is not None:
        # No disc may touch the vertebra: on coarse or smoothed images its marrow (~220 HU)
        # and blurred cortex look like a homogeneous bright disc, i.e. like an enhanced aorta.
        near_bone = cv2.dilate(spine.mask[r_lo:r_hi, c_lo:c_hi].astype(np.uint8), _disk(r_in + 1))
        in_window &= ~near_bone.astype(bool)
    ok = in_window & (mean > 0.0) & (mean < 650.0)
    # A disc touching bone or fat is not inside the aorta.
    max_k = cv2.dilate(crop, _disk(r_in))
    min_k = cv2.erode(crop, _disk(r_in))
    ok &= (max_k < 900.0) & (min_k > -60.0)
    if not ok.any():
        return None
    prior = -0.5 * ((d_r / 14.0) ** 2 + (d_c / 16.0) ** 2)
    homog = -std / 25.0
    bright = np.clip((mean - 90.0) / 60.0, 0.0, 4.0)
    score = np.where(ok, prior + homog + bright, -np.inf)
    k = int(np.argmax(score))
    r0, c0 = divmod(k, w)
    disc = (rr - r0) ** 2 + (cc - c0) ** 2 <= r_in * r_in
    hu = _median(crop[disc])
    quality = _clip01(float(1.0 - std[r0, c0] / 60.0)) * float(  # float32, as before
        np.exp(0.5 * prior[r0, c0])
    )
    r0, c0 = r0 + r_lo, c0 + c_lo
    return float(r0), float(c0), hu, quality


def _liver_reference_hu(
    work: _Work, bodies: list[np.ndarray], bounds: _Bounds | None = None
) -> float | None:
    """Most common HU of thick soft tissue in the patient's right abdomen over all slices.

    At liver levels the liver is usually by far the largest soft-tissue organ right of the
    midline, so the peak of the HU histogram there is the liver's parenchymal density in this
    phase (50-60 HU plain, ~70 arterial, 100+ portal). A very large tumour can outweigh the
    parenchyma; :func:`_liver_reference_candidates` lists the other peaks for that case.
    """
    peaks = _liver_reference_candidates(work, bodies, bounds)
    return peaks[0] if peaks else None


def _find_portal_vein(
    sl: np.ndarray, liver: np.ndarray, aorta: tuple[float, float] | None, spacing: float
) -> tuple[float, float, float] | None:
    """Brightest homogeneous vessel-sized spot at the liver hilum: (row, col, HU).

    The search region is the medial half of the liver (holes filled and closed, so the porta
    hepatis is inside), minus bone-bright and lipiodol-bright spots and the aorta; it is not
    widened, because the right kidney (as bright as the portal vein after contrast) lies just
    behind the liver. On a plain scan the
    portal vein is darker than the liver, so this returns about the liver's own HU — which is
    exactly what the phase decision needs ("no vessel brighter than parenchyma").
    """
    if np.count_nonzero(liver) < 20:
        return None
    rr, cc = _pixels(liver)
    c_mid = cc.mean()
    # Work on the liver's bounding box (plus the filter margin) only.
    m = int(np.ceil(15.0 / spacing)) + 2
    r_lo, r_hi = max(0, int(rr.min()) - m), min(sl.shape[0], int(rr.max()) + m + 1)
    c_lo, c_hi = max(0, int(c_mid)), min(sl.shape[1], int(cc.max()) + m + 1)
    crop = np.ascontiguousarray(sl[r_lo:r_hi, c_lo:c_hi])
    region = liver[r_lo:r_hi, c_lo:c_hi].copy()  # medial half (towards the patient's left)
    # Keep well away from bone: cancellous vertebra (200-300 HU) would pass for a vessel.
    cortex = _as_bool(cv2.dilate(_u8(crop > _CORTEX_HU), _disk(15.0 / spacing)))
    region &= ~cortex
    h, w = crop.shape
    if aorta is not None:
        grid_r, grid_c = np.arange(r_lo, r_hi)[:, None], np.arange(c_lo, c_hi)[None, :]
        region &= (grid_r - aorta[0]) ** 2 + (grid_c - aorta[1]) ** 2 > (18.0 / spacing) ** 2
    # A small disc (~3 mm radius): intrahepatic portal branches are only 8-12 mm wide.
    r_in = max(3.0 / spacing, 1.0)
    mean, std = _disc_stats(crop, r_in)
    max_k = cv2.dilate(crop, _disk(r_in))
    ok = region & (std < 40.0) & (max_k < _CORTEX_HU) & (mean > -20.0)
    if not ok.any():
        return None
    # The brightest homogeneous disc: the slices are already averaged down to ~2.5 mm pixels and
    # median-filtered, and the homogeneity test rejects noise spikes, so the maximum is stable.
    k = int(np.argmax(np.where(ok, mean, -np.inf)))
    r0, c0 = divmod(k, w)
    return float(r0 + r_lo), float(c0 + c_lo), float(mean[r0, c0])


# --- public API -------------------------------------------------------------------------------


def measure_landmarks(volume: Volume, indices: list[int] | None = None) -> Landmarks:
    """Find the aorta, portal vein, liver and spine on (a few slices of) a volume.

    Parameters
    ----------
    volume:
        HU slices of one axial series; typically only the handful chosen by
        :func:`app.dicom.phase.sample_indices`.
    indices:
        Slices to use (default: all slices of ``volume``).

    Returns
    -------
    Landmarks
        Median HU of each structure over the slices where it was found, its positions in the
        volume's own pixel grid, a quality per structure and overall, and evidence sentences.
        Quality is low (and HU may be None) when the slices hold no liver: a chest, head or
        pelvis-only series, which phase classification then calls "other".
    """
    work = _prepare(volume, indices, LANDMARK_SPACING_MM)
    idx = list(range(volume.n_slices)) if indices is None else list(indices)
    bodies = [_body_mask(sl) for sl in work.hu]
    # Every detector below needs the body's extent: measured once per slice.
    bounds = [_body_bounds(b) if b.any() else None for b in bodies]
    ref = _liver_reference_hu(work, bodies, bounds)
    aorta_vals: list[tuple[int, float, float, float, float]] = []
    pv_vals: list[tuple[int, float, float, float]] = []
    liver_vals: list[float] = []
    liver_pos: list[tuple[int, float, float]] = []
    spine_pos: list[tuple[int, float, float]] = []
    n_spine = 0
    for k, (sl, body) in enumerate(zip(work.hu, bodies, strict=True)):
        if np.count_nonzero(body) * work.spacing**2 < 20000:  # < 200 cm²: not a trunk slice
            continue
        box = bounds[k]
        spine = _find_spine(sl, body, work.spacing, box)
        if spine.found:
            n_spine += 1
            spine_pos.append((idx[k], *work.to_original(spine.row, spine.col)))
        ao = _find_aorta(sl, body, spine, work.spacing)
        if ao is not None:
            aorta_vals.append((idx[k], *ao))
        if ref is None:
            continue
        liver = _pick_liver_2d(
            _liver_candidates(sl, body, ref, work.spacing, spine, box),
            body,
            work.spacing,
            box,
        )
        area = np.count_nonzero(liver) * work.spacing**2
        if area < MIN_LIVER_SLICE_MM2:  # no liver (or only its tip) on this slice
            continue
        liver_vals.append(_median(sl[liver]))
        lr, lc = _pixels(liver)
        liver_pos.append((idx[k], *work.to_original(float(lr.mean()), float(lc.mean()))))
        filled = _fill(liver, work.spacing)
        pv = _find_portal_vein(sl, filled, None if ao is None else (ao[0], ao[1]), work.spacing)
        if pv is not None:
            pv_vals.append((idx[k], *pv))

    evidence: list[str] = []
    n = len(idx)
    aorta_lm = Landmark()
    if aorta_vals:
        hus = np.array([a[3] for a in aorta_vals])
        q = np.array([a[4] for a in aorta_vals])
        # Agreement between slices: the aorta's density is the same at every level.
        spread = _median(np.abs(hus - _median(hus)))
        aorta_lm = Landmark(
            hu=_median(hus),
            n_slices=len(aorta_vals),
            positions=[(a[0], *work.to_original(a[1], a[2])) for a in aorta_vals],
            quality=_median(q) * float(np.exp(-spread / 40.0)),
        )
        evidence.append(f"aorta {aorta_lm.hu:.0f} HU on {aorta_lm.n_slices}/{n} slices")
    else:
        evidence.append("aorta not found")
    liver_lm = Landmark()
    if liver_vals:
        liver_lm = Landmark(
            hu=_median(np.asarray(liver_vals)),
            n_slices=len(liver_vals),
            positions=liver_pos,
            quality=float(min(1.0, len(liver_vals) / max(2.0, 0.5 * n))),
        )
        evidence.append(f"liver {liver_lm.hu:.0f} HU on {liver_lm.n_slices}/{n} slices")
    else:
        evidence.append("no liver found on the sampled slices")
    pv_lm = Landmark()
    if pv_vals:
        hus = np.array([p[3] for p in pv_vals])
        pv_lm = Landmark(
            hu=_median(hus),
            n_slices=len(pv_vals),
            positions=[(p[0], *work.to_original(p[1], p[2])) for p in pv_vals],
            quality=float(min(1.0, len(pv_vals) / max(2.0, 0.5 * n))),
        )
        evidence.append(f"portal vein {pv_lm.hu:.0f} HU at the liver hilum")
    spine_lm = Landmark(n_slices=n_spine, positions=spine_pos, quality=n_spine / max(n, 1))
    quality = float(
        np.mean([aorta_lm.quality, liver_lm.quality, max(pv_lm.quality, 0.3 * liver_lm.quality)])
    )
    return Landmarks(aorta_lm, pv_lm, liver_lm, spine_lm, n, quality, evidence)
