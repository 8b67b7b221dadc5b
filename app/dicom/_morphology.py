"""Shared image processing of the upper abdomen for :mod:`app.dicom.landmarks` and
:mod:`app.dicom.liver_range` (private to those two).

Both work with classical image processing: thresholds, morphology and connected components on
slices downsampled to about 2.5 mm pixels, so that a 512² slice costs a few milliseconds and no
model or network is needed. What both need is here: the resampled working slices and their
orientation, the body mask, the spine, and the 2-D liver candidates.

Image orientation is normalised first (columns towards the patient's left, rows towards
posterior, the usual radiological display of axial LPS data), so "right upper quadrant" and
"anterior to the spine" mean the same thing whatever the stored direction cosines.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from app.dicom.limits import ImplausibleGeometry, spacing_problem
from app.dicom.types import Volume

#: Pixel size (mm) that slices are resampled to before any analysis.
WORK_SPACING_MM = 2.5

# HU thresholds. Air/lung vs body at -500 is the usual body-mask split; 200 HU separates bone
# from enhanced soft tissue only roughly (an arterial aorta reaches 300-400 HU), so bone is
# told from vessels by shape and texture as well (see _find_spine).
_BODY_HU = -500.0
_BONE_HU = 200.0
_CORTEX_HU = 450.0
_SOFT_LO, _SOFT_HI = -20.0, 250.0


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
    # Defence in depth: the scan refuses such files, but a volume made otherwise (arrays, a
    # file changed since the scan) must not reach int(inf) below (OverflowError, issue 14).
    problem = spacing_problem(tuple(float(v) for v in volume.pixel_spacing))
    if problem:
        raise ImplausibleGeometry(f"series {volume.series_uid}: {problem}")
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
