"""Image landmarks of the upper abdomen: body, spine, aorta, portal vein, liver, liver range.

Phase classification needs the HU of the aorta, the portal vein and the liver (the same
principle as TotalSegmentator's phase predictor, which uses organ and vessel median HU), and
study assembly needs the cranio-caudal range of the liver (the paper's region of interest, chosen
by hand there). Both are found here with classical image processing: thresholds, morphology and
connected components on slices downsampled to about 2.5 mm pixels, so that a 512² slice costs
a few milliseconds and no model or network is needed.

Image orientation is normalised first (columns towards the patient's left, rows towards
posterior, the usual radiological display of axial LPS data), so "right upper quadrant" and
"anterior to the spine" mean the same thing whatever the stored direction cosines.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage

from app.dicom.types import Volume

#: Pixel size (mm) that slices are resampled to before any analysis.
WORK_SPACING_MM = 2.5
#: Coarser grid for the landmark HU of phase classification (half the pixels: classification
#: must stay cheap next to loading the volumes; medians over discs do not need 2.5 mm).
LANDMARK_SPACING_MM = 3.2

# HU thresholds. Air/lung vs body at -500 is the usual body-mask split; 200 HU separates bone
# from enhanced soft tissue only roughly (an arterial aorta reaches 300-400 HU), so bone is
# told from vessels by shape and texture as well (see _find_spine).
_BODY_HU = -500.0
_BONE_HU = 200.0
_CORTEX_HU = 450.0
_SOFT_LO, _SOFT_HI = -20.0, 250.0

#: Smallest largest-cross-section (mm²) accepted as a liver (a real one has 100-300 cm²).
MIN_LIVER_PEAK_MM2 = 5000.0
#: Liver cross-sections smaller than this fraction of the largest one end the liver range.
END_FRACTION = 0.05
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


# --- preparation ------------------------------------------------------------------------------


@dataclass
class _Work:
    """Slices resampled to the working grid, orientation normalised."""

    hu: np.ndarray  # (n, h, w) float32, smoothed
    spacing: float  # mm per working pixel
    scale_row: float  # original rows per working row
    scale_col: float
    flip_rows: bool
    flip_cols: bool
    shape: tuple[int, int]  # original (rows, cols)

    def to_original(self, row: float, col: float) -> tuple[float, float]:
        """Working-grid coordinates → the volume's own (row, column)."""
        r = (row + 0.5) * self.scale_row - 0.5
        c = (col + 0.5) * self.scale_col - 0.5
        if self.flip_rows:
            r = self.shape[0] - 1 - r
        if self.flip_cols:
            c = self.shape[1] - 1 - c
        return float(r), float(c)


def _prepare(
    volume: Volume, indices: list[int] | None = None, work_mm: float = WORK_SPACING_MM
) -> _Work:
    """Resample slices to ~WORK_SPACING_MM pixels, median-smoothed, patient right on the left.

    INTER_AREA averages the pixels it merges, which also removes most of the quantum noise that
    would otherwise make thresholds ragged; a 3×3 median then removes what is left of the speckle
    without blurring organ borders.
    """
    row_sp, col_sp = (float(volume.pixel_spacing[0]), float(volume.pixel_spacing[1]))
    rows, cols = volume.hu.shape[1:]
    spacing = max(work_mm, row_sp, col_sp)
    out_h = max(8, int(round(rows * row_sp / spacing)))
    out_w = max(8, int(round(cols * col_sp / spacing)))
    idx = list(range(volume.n_slices)) if indices is None else list(indices)
    stack = np.empty((len(idx), out_h, out_w), dtype=np.float32)
    for k, i in enumerate(idx):
        sl = np.asarray(volume.hu[i], dtype=np.float32)
        small = cv2.resize(sl, (out_w, out_h), interpolation=cv2.INTER_AREA)
        stack[k] = cv2.medianBlur(small, 3)
    direction = np.asarray(volume.direction, dtype=float)
    # Row direction (along a row, i.e. increasing column) should point to the patient's left
    # (+x in LPS), the column direction (increasing row) to posterior (+y).
    flip_cols = bool(direction[0][0] < 0) if direction.shape == (3, 3) else False
    flip_rows = bool(direction[1][1] < 0) if direction.shape == (3, 3) else False
    if flip_cols:
        stack = stack[:, :, ::-1]
    if flip_rows:
        stack = stack[:, ::-1, :]
    return _Work(
        hu=np.ascontiguousarray(stack),
        spacing=spacing,
        scale_row=rows / out_h,
        scale_col=cols / out_w,
        flip_rows=flip_rows,
        flip_cols=flip_cols,
        shape=(rows, cols),
    )


def _disk(radius_px: float) -> np.ndarray:
    """Elliptic structuring element of the given radius (pixels, at least 1); read-only."""
    return _disk_of(max(1, int(round(radius_px))))


@functools.lru_cache(maxsize=64)
def _disk_of(r: int) -> np.ndarray:
    # A few radii recur thousands of times per volume: built once each.
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    disk.setflags(write=False)
    return disk


def _u8(mask: np.ndarray) -> np.ndarray:
    """A mask as uint8 0/1 for OpenCV; a contiguous bool mask is viewed, not copied."""
    if mask.dtype == np.uint8:
        return mask
    if mask.dtype == bool and mask.flags.c_contiguous:
        return mask.view(np.uint8)
    return mask.astype(np.uint8)


def _as_bool(mask: np.ndarray) -> np.ndarray:
    """An OpenCV result holding only 0 and 1 (morphology of a 0/1 mask) as bool, without a copy."""
    return mask.view(bool)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill holes of a 2-D mask: flood the background from the border, the rest is inside.

    Same result as ``scipy.ndimage.binary_fill_holes`` (4-connected background) at a fraction
    of its cost, which matters at a few calls per slice.
    """
    flood = cv2.copyMakeBorder(_u8(mask), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    cv2.floodFill(flood, None, (0, 0), 2, flags=4)
    return np.asarray(flood[1:-1, 1:-1] != 2)


#: Below this share of foreground pixels, component statistics are gathered from the foreground
#: pixels alone (a bone mask: ~2 % of a slice, liver candidates 5-15 %); OpenCV's statistics
#: pass costs 3-5x its labelling whatever the mask holds, so it only pays off on dense masks.
_SPARSE_SHARE = 0.2


def _median(values: np.ndarray) -> float:
    """``float(np.median(values))`` for a 1-D float array without NaN, at a fraction of its cost.

    The same partition and, for an even count, the same mean of the two middle values in the
    array's own precision, so the result is identical; ``np.median``'s generic axis and NaN
    handling costs 15-20 µs per call, and the landmarks take a dozen medians per series.
    """
    n = values.size
    k = n // 2
    if n % 2:
        return float(np.partition(values, k)[k])
    part = np.partition(values, (k - 1, k))
    return float((part[k - 1] + part[k]) / 2)


def _clip01(x: float) -> float:
    """``x`` limited to 0..1 (a Python float; ``np.clip`` on a scalar costs microseconds)."""
    return min(max(x, 0.0), 1.0)


def _pixels(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a 2-D mask's non-zero pixels, in ``np.nonzero``'s order.

    ``np.nonzero`` on a 2-D array costs ~40 µs on a working-grid slice whatever it holds; the
    flat indices split by the row length are the same arrays in a tenth of the time.
    """
    return np.divmod(np.flatnonzero(mask), mask.shape[1])


def _components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Connected components (8-connected): count incl. background, labels, areas, centroids.

    ``areas[k]`` is the pixel count of label k, ``centroids[k]`` its (column, row) mean, as in
    OpenCV's ``connectedComponentsWithStats`` (whose labels these are; same values exactly:
    integer coordinate sums divided once). Several times faster than ``scipy.ndimage.label``
    plus per-label statistics on a slice.
    """
    m = _u8(mask)
    if cv2.countNonZero(m) > _SPARSE_SHARE * m.size:
        n, labels, stats, centroids = cv2.connectedComponentsWithStats(m, connectivity=8)
        return int(n), labels, stats[:, cv2.CC_STAT_AREA], centroids
    n, labels = cv2.connectedComponents(m, connectivity=8)
    rr, cc = _pixels(mask if mask.dtype == bool else m)  # a bool mask is the faster to scan
    lab = labels[rr, cc]
    areas = np.bincount(lab, minlength=n)
    # Label 0 (background) gets no statistics here: its area is 0 and its centroid (0, 0).
    count = np.maximum(areas, 1)
    centroids = np.empty((n, 2))
    centroids[:, 0] = np.bincount(lab, weights=cc, minlength=n) / count
    centroids[:, 1] = np.bincount(lab, weights=rr, minlength=n) / count
    return int(n), labels, areas, centroids


def _largest_label(mask: np.ndarray) -> tuple[int, np.ndarray]:
    """Labels of the mask's components and the label of the largest (0 when the mask is empty).

    Only the areas are needed, so the labelling is followed by one histogram of the labels
    instead of OpenCV's full statistics pass (half the cost on a body mask).
    """
    n, labels = cv2.connectedComponents(_u8(mask), connectivity=8)
    if n <= 2:
        return n - 1, labels  # empty, or one component: nothing to compare
    areas = np.bincount(labels.ravel(), minlength=n)
    return 1 + int(np.argmax(areas[1:])), labels


def _body_bounds(body: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) rows/columns of a non-empty mask (inclusive)."""
    # OpenCV's bounding box of the non-zero pixels: one pass, no row/column reductions.
    left, top, width, height = cv2.boundingRect(np.ascontiguousarray(_u8(body)))
    if width == 0:
        raise ValueError("bounds of an empty mask")
    return top, top + height - 1, left, left + width - 1


#: Per slice of a stack, the body's (top, bottom, left, right), None where there is no body.
_Bounds = Sequence[tuple[int, int, int, int] | None]


def _largest_component(mask: np.ndarray) -> np.ndarray:
    best, labels = _largest_label(mask)
    if best == 0:
        return mask.astype(bool)
    return np.asarray(labels == best)


def _body_mask(sl: np.ndarray) -> np.ndarray:
    """Largest connected region above -500 HU with holes (lungs, bowel gas) filled.

    The table and the arms are usually separate components and drop out.
    """
    body = _largest_component(sl > _BODY_HU)
    return _fill_holes(body)


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


# --- per-slice detectors ----------------------------------------------------------------------


@dataclass
class _Spine:
    row: float  # centre
    col: float
    anterior_row: float  # anterior edge of the vertebral body
    found: bool
    mask: np.ndarray | None = None  # the vertebra's bone pixels (working grid)


def _find_spine(
    sl: np.ndarray,
    body: np.ndarray,
    spacing: float,
    bounds: tuple[int, int, int, int] | None = None,
) -> _Spine:
    """Vertebral body: the bone near the posterior midline.

    Candidate components of the > 200 HU mask near the midline and in the posterior 60 % of the
    body are scored by size and by bright cortex; a small, round and homogeneous one is an
    enhanced aorta, not bone, and is skipped. ``bounds`` are the body's (see
    :func:`_body_bounds`) when the caller has them already.
    """
    top, bottom, left, right = bounds if bounds is not None else _body_bounds(body)
    mid = 0.5 * (left + right)
    width = right - left + 1
    height = bottom - top + 1
    bone = (sl > _BONE_HU) & body
    n, labels, areas, centroids = _components(bone)
    # The bone pixels and their labels, once: each candidate is then measured on its own pixels
    # (a few hundred) instead of on a full-slice mask per candidate.
    pix_r, pix_c = _pixels(bone)
    pix_lab = labels[pix_r, pix_c]
    best: tuple[float, int, _Spine] | None = None
    px_area = spacing * spacing
    for lab in range(1, n):
        area_mm2 = float(areas[lab]) * px_area
        if area_mm2 < 150:
            continue
        c0, r0 = float(centroids[lab][0]), float(centroids[lab][1])
        if abs(c0 - mid) > 0.18 * width or r0 < top + 0.4 * height:
            continue
        own = pix_lab == lab
        rr, cc = pix_r[own], pix_c[own]
        vals = sl[rr, cc]
        cortex = np.count_nonzero(vals > _CORTEX_HU) / vals.size
        # Roundness: area / area of the bounding circle.
        radius = max(np.sqrt(((rr - r0) ** 2 + (cc - c0) ** 2).max()), 1.0)
        roundness = rr.size / (np.pi * radius * radius)
        # The spread last: only a small round component needs it.
        homogeneous = roundness > 0.55 and area_mm2 < 1200 and float(np.std(vals)) < 70
        if homogeneous and cortex < 0.2:
            continue  # an enhanced vessel, not a vertebra
        score = area_mm2 * (0.5 + cortex) * (1.0 - 0.5 * abs(c0 - mid) / width)
        # Anterior edge measured on the central columns of the component (the vertebral body),
        # not on the transverse processes.
        central = (cc >= max(0, int(c0) - 2)) & (cc < int(c0) + 3)
        anterior = float(rr[central].min()) if central.any() else float(rr.min())
        if best is None or score > best[0]:
            best = (score, lab, _Spine(float(r0), float(c0), anterior, True))
    if best is None:
        # No bone found (phantom without spine, or a window cut): place the vertebral body
        # where it usually is, a third of the body depth in front of the back.
        guess_ant = bottom - 0.38 * height
        return _Spine(float(guess_ant + 0.1 * height), float(mid), float(guess_ant), False)
    _, lab, spine = best
    spine.mask = labels == lab
    return spine


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


def _soft_histogram(
    work: _Work, bodies: list[np.ndarray], bounds: _Bounds | None = None
) -> np.ndarray:
    """Smoothed 4-HU histogram of thick soft tissue in the patient's right abdomen.

    Only pixels at least 10 mm inside a soft-tissue region count: the abdominal-wall muscles
    (7-13 mm thick, as dense as an unenhanced liver and, in a thin patient, as large in area as
    it) never qualify; the back muscles are cut with the posterior quarter of the body.
    ``bounds``: each body's (:func:`_body_bounds`), when the caller has them.
    """
    hist = np.zeros(int((_SOFT_HI - _SOFT_LO) // 4) + 1)
    for k, (sl, body) in enumerate(zip(work.hu, bodies, strict=True)):
        if np.count_nonzero(body) < 50:
            continue
        soft = ((sl > _SOFT_LO) & (sl < _SOFT_HI) & body).astype(np.uint8)
        dist = cv2.distanceTransform(soft, cv2.DIST_L2, 3) * work.spacing
        box = bounds[k] if bounds is not None else None
        top, bottom, left, right = box if box is not None else _body_bounds(body)
        mid = 0.5 * (left + right)
        region = dist >= 10.0
        region[:, int(mid) :] = False
        region[int(bottom - 0.25 * (bottom - top)) :, :] = False
        vals = sl[region]
        if vals.size:
            hist += np.bincount(((vals - _SOFT_LO) // 4).astype(int), minlength=hist.size)[
                : hist.size
            ]
    if hist.sum() < 50:
        return np.zeros_like(hist)
    return np.convolve(hist, np.ones(5) / 5.0, mode="same")


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


#: A secondary histogram peak at least this high (relative to the highest) may be the liver.
_PEAK_FRACTION = 0.3


def _liver_reference_candidates(
    work: _Work, bodies: list[np.ndarray], bounds: _Bounds | None = None
) -> list[float]:
    """HU of the histogram peaks that may be the liver parenchyma, highest peak first.

    A large tumour (10-14 cm, hyper-enhancing in the arterial phase, washed out in the portal
    phase, or with a necrotic core) fills more of the right abdomen than the parenchyma left
    around it and makes its own peak, often the highest one; the parenchyma is then a second
    peak, at least a third as high.
    """
    smooth = _soft_histogram(work, bodies, bounds)
    if smooth.max() <= 0:
        return []
    top = float(smooth.max())
    idx = [
        i
        for i in range(smooth.size)
        if smooth[i] >= _PEAK_FRACTION * top
        and smooth[i] >= (smooth[i - 1] if i > 0 else -1.0)
        and smooth[i] > (smooth[i + 1] if i + 1 < smooth.size else -1.0)
    ]
    best = int(np.argmax(smooth))
    idx = [best] + sorted((i for i in idx if abs(i - best) > 2), key=lambda i: -smooth[i])
    return [float(_SOFT_LO + 4 * i + 2) for i in idx]


def _liver_candidates(
    sl: np.ndarray,
    body: np.ndarray,
    ref_hu: float,
    spacing: float,
    spine: _Spine | None = None,
    bounds: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """Pixels within ±35 HU of the liver's density, opened to cut bridges to neighbours.

    Without contrast (and in the arterial phase) muscle is as dense as liver, so the paraspinal
    muscles and the psoas would pass and, touching the tip of the right lobe, carry the "liver"
    down to the pelvis. The liver never lies within 5 cm of the midline behind a line 15 mm in
    front of the vertebral body (where the crura, psoas and back muscles are; the caudate lobe
    lies further forward, in front of the IVC), so that block is removed when the spine was
    found. ``bounds``: the body's, when the caller has them (see :func:`_body_bounds`).
    """
    tol = 35.0
    cand = (np.abs(sl - ref_hu) <= tol) & body
    inner = _as_bool(cv2.erode(_u8(body), _disk(4.0 / spacing)))
    cand &= inner
    if spine is not None and spine.found:
        r0 = max(0, int(spine.anterior_row - 15.0 / spacing))
        half = 50.0 / spacing
        c_lo = max(0, int(spine.col - half))
        c_hi = int(spine.col + half) + 1
        cand[r0:, c_lo:c_hi] = False
    # The left lobe crosses the midline only anteriorly; the left posterior quadrant belongs to
    # the spleen and the left kidney, which are as dense as the liver without contrast and,
    # touching the left lobe or the crura, would otherwise be followed up above the liver dome.
    top, bottom, left, right = bounds if bounds is not None else _body_bounds(body)
    cand[int(np.ceil(0.5 * (top + bottom))) :, int(0.5 * (left + right) + 15.0 / spacing) :] = False
    return _as_bool(cv2.morphologyEx(_u8(cand), cv2.MORPH_OPEN, _disk(5.0 / spacing)))


def _pick_liver_2d(
    cand: np.ndarray,
    body: np.ndarray,
    spacing: float,
    bounds: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """The candidate component that is most liver-like on one slice (big, on the right).

    ``bounds``: the body's, when the caller has them (see :func:`_body_bounds`).
    """
    n, labels, areas, centroids = _components(cand)
    if n <= 1:
        return np.zeros_like(cand)
    box = bounds if bounds is not None else _body_bounds(body)
    _, _, left, right_edge = box
    mid = 0.5 * (left + right_edge)
    width = right_edge - left + 1
    best, best_score = 0, 0.0
    for lab in range(1, n):
        c0 = float(centroids[lab][0])
        area_mm2 = float(areas[lab]) * spacing * spacing
        if area_mm2 < 300:
            continue
        right = (mid - c0) / width  # > 0 on the patient's right
        score = area_mm2 * min(max(0.5 + 2.0 * right, 0.05), 1.5)
        if score > best_score:
            best, best_score = lab, score
    if best == 0:
        return np.zeros_like(cand)
    comp = _break_ring(np.asarray(labels == best), spacing)
    if np.count_nonzero(comp) < 0.95 * areas[best]:
        # Something thin was cut off: keep the most liver-like remainder.
        n2, _ = cv2.connectedComponents(_u8(comp), connectivity=8)
        if n2 > 2:
            comp = _pick_liver_2d(comp, body, spacing, box)
    return comp


def _break_ring(comp: np.ndarray, spacing: float) -> np.ndarray:
    """Cut a liver candidate loose from thin structures of the same density attached to it.

    Without contrast the abdominal-wall muscles (a ~1 cm ring around the abdomen), the crura
    and bowel walls are as dense as the liver; touching the liver they would be followed to the
    pelvis, and hole filling would turn a closed ring into the whole abdomen. An opening with a
    9 mm disc removes such thin structures but keeps the thick liver; the liver's own border
    (within 9 mm of that core) is then given back. Small components (the liver's tip and dome,
    < 20 cm²) are left alone: they are thin themselves.
    """
    area = np.count_nonzero(comp)
    if area * spacing * spacing < 2000.0:
        return comp
    k = _disk(9.0 / spacing)
    core = cv2.morphologyEx(_u8(comp), cv2.MORPH_OPEN, k)
    return np.asarray(comp & _as_bool(cv2.dilate(core, k)))


def _fill(mask: np.ndarray, spacing: float) -> np.ndarray:
    """Close and fill holes so that vessels, lesions and TACE oil inside the liver count."""
    closed = cv2.morphologyEx(_u8(mask), cv2.MORPH_CLOSE, _disk(6.0 / spacing))
    return _fill_holes(closed)


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
_LESION_LO, _LESION_HI = 20.0, _CORTEX_HU


def _density_match(mean: np.ndarray, seed_hu: float, prev_hu: float) -> np.ndarray:
    """Components whose mean HU is the liver's: near the seed slice's, or the slice before's.

    The seed slice's density alone is not enough when a large tumour shares that slice (its
    median is then pulled 10-20 HU off the parenchyma); the parenchyma of the neighbouring
    slice is the closer reference, and a kidney or bowel loop is still 20-30 HU from both.
    """
    return (np.abs(mean - seed_hu) <= 15.0) | (np.abs(mean - prev_hu) <= 10.0)


def _retroperitoneal(row: float, col: float, spine: _Spine | None, spacing: float) -> bool:
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
    work: _Work,
    px: float,
    spine: _Spine | None = None,
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
        lesion_prev.astype(np.uint8), cv2.MORPH_OPEN, _disk(3.0 / work.spacing)
    )
    if lesion_prev.sum() * px < MIN_LESION_MM2:
        return np.zeros_like(prev)
    sl = work.hu[z]
    near = cv2.dilate(lesion_prev, _disk(5.0 / work.spacing)).astype(bool)
    soft = (sl > _LESION_LO) & (sl < _LESION_HI) & prev & near
    soft = cv2.morphologyEx(soft.astype(np.uint8), cv2.MORPH_OPEN, _disk(5.0 / work.spacing))
    n, labels, areas, centroids = _components(soft)
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
    work: _Work,
    px: float,
    end_area: float,
    caudal_step: int = -1,
    spines: list[_Spine | None] | None = None,
) -> list[np.ndarray]:
    """Follow the liver from ``seed`` up and down through the candidate masks (see liver_areas).

    ``caudal_step`` is the index step (+1 or -1) towards the patient's feet; ``spines`` (per
    slice) keep a followed tumour out of the kidney.
    """
    n = len(cands)
    liver = [np.zeros_like(c) for c in cands]
    liver[seed] = _fill(picks[seed], work.spacing)
    # The liver's own density on the seed slice; a neighbour component must match it (a kidney
    # or bowel loop within the candidate tolerance is still 20-30 HU off).
    seed_hu = _median(work.hu[seed][picks[seed]])
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
            cur = _fill(keep, work.spacing) if keep.any() else keep
            if dense.any():
                prev_hu = _median(work.hu[z][dense])
            liver[z] = cur
            prev = cur
            z += step
    return liver


def _liver_step(
    z: int,
    prev: np.ndarray,
    cands: list[np.ndarray],
    work: _Work,
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
        comp = _break_ring(labels == lab, work.spacing)
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
    refs: list[float], work: _Work, bodies: list[np.ndarray], spines: list[_Spine | None]
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
            cand = _liver_candidates(work.hu[k], bodies[k], ref, work.spacing, spine)
            pick = _pick_liver_2d(cand, bodies[k], work.spacing)
            filled.append(float(_fill(pick, work.spacing).sum()) * px if pick.any() else 0.0)
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
    work = _prepare(volume)
    bodies = [_body_mask(sl) for sl in work.hu]
    refs = _liver_reference_candidates(work, bodies)
    n = volume.n_slices
    areas = np.zeros(n)
    if not refs:
        return areas, None
    px = work.spacing * work.spacing
    trunk = [b.sum() * px >= 20000 for b in bodies]
    spines = [
        _find_spine(sl, b, work.spacing) if t else None
        for sl, b, t in zip(work.hu, bodies, trunk, strict=True)
    ]
    ref = refs[0] if len(refs) == 1 else _best_reference(refs, work, bodies, spines)

    def candidates(k: int) -> np.ndarray:
        spine = spines[k]
        if spine is None:
            return np.zeros_like(bodies[k])
        return _liver_candidates(work.hu[k], bodies[k], ref, work.spacing, spine)

    cands = [candidates(k) for k in range(n)]
    picks = [_pick_liver_2d(c, b, work.spacing) for c, b in zip(cands, bodies, strict=True)]
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
    first_hu = _median(work.hu[first][picks[first]])
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
        if not near or abs(_median(work.hu[seed][picks[seed]]) - first_hu) > 10.0:
            continue
        grown = _propagate(seed, picks, cands, work, px, END_FRACTION * peak, caudal, spines)
        for z in range(n):
            liver[z] |= grown[z]
    for z in range(n):
        areas[z] = liver[z].sum() * px
    mask = np.stack(liver)
    hu = _median(work.hu[mask]) if mask.any() else ref
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
