"""Input preprocessing — THE one place where HU slices become network input.

Training, prediction and Grad-CAM all call :func:`preprocess_slices`; nothing else windows,
crops or resizes a slice for the model. Grad-CAM maps come back onto the original slice with
the inverse, :func:`map_to_slice`, which also knows where a CNN's feature cells are centred.

The steps, in order:

1. **Crop box** (:func:`crop_box`): the part of the slice that becomes the network input, one
   box per phase volume (computed over all slices of the stack together, so that every slice of
   a study has the same scale and position and slices stay comparable). Policies:

   - ``"none"`` (default, the paper's): the whole slice. The paper resizes the 512 × 512 slice
     to 224 × 224 without mentioning a crop, and the weights must see what they saw in training.
   - ``"body"``: the square bounding box of the body (HU > −500, over the whole stack) with a
     4 % margin. Removes air and table differences between scanners' fields of view, but the
     scale then follows the patient's girth.
   - ``"fov"``: a fixed physical field of view (``config.crop_fov_mm``, default 350 mm) centred
     on the body: the same millimetres per input pixel for every scanner; needs pixel spacing.

   A box may extend beyond the slice; the outside is filled with air (0 after windowing).
2. **Window** W/L (paper W400/L0): ``(HU − (L − W/2)) / W`` clipped to [0, 1]. Windowing
   before resizing keeps the resize from averaging bone or air values into soft tissue.
3. **Resize** the box to ``input_size`` × ``input_size`` with bilinear interpolation and
   anti-aliasing (area-like when shrinking 512 → 224, so thin bright structures are averaged,
   not skipped). A non-square box is stretched, as a plain resize of the slice would be.

Channel handling is not done here: the result has ONE channel in [0, 1]. The network's trunks
take that single channel directly — their first convolution's RGB weights are summed into one
filter (exactly equivalent to replicating the grey image to three channels, at a third of the
first layer's cost) — and the network itself applies the fixed normalisation
``(x − config.input_mean) / config.input_std`` (ImageNet statistics averaged over channels).
Keeping the tensor in [0, 1] lets augmentation (brightness, contrast, noise) work in the units
the paper describes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from app.dicom.types import AssembledStudy
from app.errors import InputError
from app.inference.config import ConfigError, ModelConfig

#: HU threshold separating the body from surrounding air for the "body" and "fov" crops.
BODY_HU_THRESHOLD = -500.0
#: Margin added on each side of the body's bounding box, as a fraction of its side.
BODY_MARGIN = 0.04


@dataclass(frozen=True)
class CropBox:
    """The region of an original slice that is resized to the network input.

    ``y0, x0`` may be negative and ``y0 + height`` / ``x0 + width`` may exceed the slice: the
    part outside the slice is treated as air. ``rows, cols`` are the original slice's size, kept
    so that maps can be put back onto it.
    """

    y0: int
    x0: int
    height: int
    width: int
    rows: int
    cols: int

    @classmethod
    def whole(cls, rows: int, cols: int) -> CropBox:
        return cls(0, 0, rows, cols, rows, cols)

    @property
    def is_whole(self) -> bool:
        return (self.y0, self.x0, self.height, self.width) == (0, 0, self.rows, self.cols)


def _as_stack(hu: np.ndarray) -> np.ndarray:
    if hu.ndim == 2:
        return hu[None]
    if hu.ndim != 3:
        raise ValueError(f"expected slices (N, rows, cols) or one slice (rows, cols), got {hu.shape}")
    return hu


def _body_bbox(stack: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of pixels above the body threshold in any slice, or None."""
    mask: np.ndarray = np.any(stack > BODY_HU_THRESHOLD, axis=0)
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0 or xs.size == 0:
        return None
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1


def crop_box(
    hu: np.ndarray,
    config: ModelConfig,
    pixel_spacing: Sequence[float] | None = None,
) -> CropBox:
    """Decide the region of the slices that the network sees, one box for the whole stack.

    Parameters
    ----------
    hu:
        HU slices ``(N, rows, cols)`` (or one slice) of ONE phase volume — all slices of the
        stack get the same box, so that the slices of a study share scale and position.
    config:
        Supplies the crop policy (``none`` / ``body`` / ``fov``) and the field of view.
    pixel_spacing:
        ``(row_spacing, column_spacing)`` in mm; required for ``crop="fov"``.

    Returns
    -------
    CropBox
        The region (possibly reaching beyond the slice, which is then padded with air).
    """
    stack = _as_stack(hu)
    rows, cols = int(stack.shape[1]), int(stack.shape[2])
    if config.crop == "none":
        return CropBox.whole(rows, cols)
    bbox = _body_bbox(stack)
    if bbox is None:
        # nothing but air: there is no body to centre on, so fall back to the whole slice
        return CropBox.whole(rows, cols)
    y0, y1, x0, x1 = bbox
    cy, cx = (y0 + y1) / 2.0, (x0 + x1) / 2.0
    if config.crop == "body":
        side = max(y1 - y0, x1 - x0) * (1.0 + 2.0 * BODY_MARGIN)
        h = w = max(int(round(side)), 1)
    else:  # "fov"
        if pixel_spacing is None:
            raise ConfigError("crop policy 'fov' needs the pixel spacing of the slices")
        rs, cs = float(pixel_spacing[0]), float(pixel_spacing[1])
        if rs <= 0 or cs <= 0:
            raise ConfigError(f"invalid pixel spacing {tuple(pixel_spacing)}")
        h = max(int(round(config.crop_fov_mm / rs)), 1)
        w = max(int(round(config.crop_fov_mm / cs)), 1)
    return CropBox(int(round(cy - h / 2.0)), int(round(cx - w / 2.0)), h, w, rows, cols)


def _overlap(box: CropBox) -> tuple[slice, slice, slice, slice]:
    """Slices (src_y, src_x) into the original and (dst_y, dst_x) into the box where they meet."""
    sy0, sx0 = max(box.y0, 0), max(box.x0, 0)
    sy1, sx1 = min(box.y0 + box.height, box.rows), min(box.x0 + box.width, box.cols)
    if sy1 <= sy0 or sx1 <= sx0:
        raise ConfigError(f"crop box {box} does not overlap the slice")
    return (
        slice(sy0, sy1),
        slice(sx0, sx1),
        slice(sy0 - box.y0, sy1 - box.y0),
        slice(sx0 - box.x0, sx1 - box.x0),
    )


def _owned_tensor(a: np.ndarray, device: torch.device | None) -> torch.Tensor:
    """A float32 copy of ``a`` on ``device`` that may be overwritten (windowing works in place;
    the caller's volume is never touched). One copy either way: on the CPU ``torch.tensor``
    copies, to a GPU the transfer is the copy."""
    if device is None or device.type == "cpu":
        return torch.tensor(a, dtype=torch.float32)
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(device)


def rows_of(volume: np.ndarray, idx: Sequence[int]) -> np.ndarray:
    """``volume[idx]``, as a view (no copy) when ``idx`` is a run of consecutive slices — the
    usual case for paired liver slices, and 30 × 512² float32 slices are 31 MB per phase."""
    if idx and list(idx) == list(range(idx[0], idx[0] + len(idx))):
        return volume[idx[0] : idx[0] + len(idx)]
    return volume[list(idx)]


def window_unit(hu: torch.Tensor, window: tuple[float, float]) -> torch.Tensor:
    """Map HU linearly so that the window ``(width, level)`` becomes [0, 1], clipped (in place
    when ``hu`` is a float tensor that may be overwritten)."""
    width, level = window
    lower = level - width / 2.0
    return hu.sub_(lower).mul_(1.0 / width).clamp_(0.0, 1.0)


def preprocess_slices(
    hu: np.ndarray,
    config: ModelConfig,
    pixel_spacing: Sequence[float] | None = None,
    box: CropBox | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Turn HU slices of one phase into network input ``[N, 1, S, S]`` in [0, 1].

    Parameters
    ----------
    hu:
        ``(N, rows, cols)`` (or ``(rows, cols)``) HU values, any real dtype.
    config:
        The model's configuration (window, input size, crop policy).
    pixel_spacing:
        ``(row, column)`` spacing in mm; needed only for ``crop="fov"``.
    box:
        The crop box to use; computed from ``hu`` itself when None. Pass the box of the whole
        phase volume (:func:`crop_box`) when preprocessing a study in batches, so that every
        batch is cropped alike.
    device:
        Where to window and resample (None: the CPU). On a GPU the HU slices are copied there
        once and the arithmetic runs there: on a GPU the network takes milliseconds, and this
        CPU work would otherwise dominate a prediction.

    Returns
    -------
    torch.Tensor
        float32 tensor ``[N, 1, input_size, input_size]`` on ``device``.
    """
    stack = _as_stack(np.asarray(hu))
    if box is None:
        box = crop_box(stack, config, pixel_spacing)
    if (box.rows, box.cols) != stack.shape[1:]:
        raise ValueError(f"crop box is for {box.rows}×{box.cols} slices, got {stack.shape[1:]}")
    # torch.tensor copies, so windowing in place never touches the caller's (volume's) array
    if box.is_whole:
        t = window_unit(_owned_tensor(stack, device), config.window)
    else:
        sy, sx, dy, dx = _overlap(box)
        inner = window_unit(_owned_tensor(stack[:, sy, sx], device), config.window)
        t = torch.zeros((stack.shape[0], box.height, box.width), dtype=torch.float32, device=device)
        t[:, dy, dx] = inner
    size = config.input_size
    t = t.unsqueeze(1)
    if t.shape[-2:] != (size, size):
        t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        # bilinear with anti-aliasing stays within [0, 1] up to rounding; clamp the rounding
        t = t.clamp_(0.0, 1.0)
    return t.contiguous()


def _interp_matrix(n_out: int, n_in: int, n_box: int, input_size: int, stride: float,
                   offset: float) -> torch.Tensor:
    """Linear-interpolation weights ``[n_out, n_in]`` from feature cells to box pixels.

    Box pixel ``y`` (centre ``y + 0.5`` in box units) sits at input pixel centre
    ``u = (y + 0.5) · S / n_box − 0.5``; feature cell ``i`` is centred at input pixel
    ``stride · i + offset``; values between cell centres are interpolated linearly and held
    constant beyond the outermost centres.
    """
    y = torch.arange(n_out, dtype=torch.float64)
    u = (y + 0.5) * (input_size / n_box) - 0.5
    f = ((u - offset) / stride).clamp(0.0, float(n_in - 1))
    i0 = f.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    w1 = (f - i0.double()).float()
    m = torch.zeros((n_out, n_in), dtype=torch.float32)
    rows = torch.arange(n_out)
    m.index_put_((rows, i0), 1.0 - w1, accumulate=True)
    m.index_put_((rows, i1), w1, accumulate=True)
    return m


def map_to_slice(
    maps: np.ndarray | torch.Tensor,
    box: CropBox,
    input_size: int | None = None,
    stride: float | None = None,
    offset: float | None = None,
) -> np.ndarray:
    """Put maps computed on the network input back onto the original slices.

    The inverse of :func:`preprocess_slices`' geometry: each map is interpolated onto the crop
    box and placed at the box's position in a ``rows × cols`` slice; outside the box the value
    is 0 (the network saw nothing there).

    Where each map value belongs matters: a feature cell of a CNN with "same" padding is centred
    on input pixel ``stride · i`` — NOT on the middle of its ``stride``-wide tile, which a plain
    image resize assumes — so a plain resize would shift a ResNet's Grad-CAM by half a cell
    (15.5 input pixels, about 35 pixels of a 512 slice) down and to the right. Pass the
    network's ``stride`` and ``offset`` (:meth:`MultiPhaseNet.feature_geometry`) to place the
    cells where their receptive fields are centred.

    Parameters
    ----------
    maps:
        ``(N, h, w)`` or ``(h, w)`` maps, e.g. Grad-CAM at the feature map's resolution, or maps
        at the input's own resolution.
    box:
        The crop box the input was made with.
    input_size:
        Side ``S`` of the network input the maps refer to; default: the map's own size (then
        ``stride`` 1).
    stride, offset:
        Feature cell ``i`` is centred on input pixel ``stride · i + offset``. Defaults: the
        uniform tiling of a plain resize (``stride = S / h``, ``offset = (stride − 1) / 2``).

    Returns
    -------
    np.ndarray
        float32 ``(N, rows, cols)`` (or ``(rows, cols)`` for a single map).
    """
    t = torch.as_tensor(maps, dtype=torch.float32)
    single = t.ndim == 2
    if single:
        t = t[None]
    h, w = int(t.shape[1]), int(t.shape[2])
    size = int(input_size) if input_size is not None else h
    sy_ = float(stride) if stride is not None else size / h
    sx_ = float(stride) if stride is not None else size / w
    oy = float(offset) if offset is not None else (sy_ - 1.0) / 2.0
    ox = float(offset) if offset is not None else (sx_ - 1.0) / 2.0
    wy = _interp_matrix(box.height, h, box.height, size, sy_, oy)
    wx = _interp_matrix(box.width, w, box.width, size, sx_, ox)
    t = torch.einsum("yh,nhw,xw->nyx", wy, t, wx)
    if box.is_whole:
        out = t.numpy()
    else:
        sy, sx, dy, dx = _overlap(box)
        out = np.zeros((t.shape[0], box.rows, box.cols), dtype=np.float32)
        out[:, sy, sx] = t[:, dy, dx].numpy()
    return out[0] if single else out


def preprocessing_summary(config: ModelConfig) -> dict[str, Any]:
    """What the preprocessing does, for the model description (human- and machine-readable)."""
    width, level = config.window
    return {
        "window": {"width": width, "level": level, "hu_range": [level - width / 2, level + width / 2]},
        "scaling": "linear to [0, 1], clipped",
        "crop": config.crop,
        "crop_fov_mm": config.crop_fov_mm if config.crop == "fov" else None,
        "resize": f"{config.input_size}x{config.input_size}, bilinear with anti-aliasing, after windowing",
        "channels": "1 grey channel; first trunk convolution = sum of the RGB filters",
        "normalisation": {"mean": config.input_mean, "std": config.input_std, "where": "inside the network"},
    }


# ------------------------------------------------------------------------- a whole study


class StudyInputError(InputError):
    """A study that cannot be fed to the model (missing phase, no paired slices)."""


@dataclass
class StudyInput:
    """Network input for (some of) a study's slice triplets.

    Attributes
    ----------
    x:
        float32 ``[N, P, 1, S, S]``, phase axis in ``config.phases`` order.
    pair_indices:
        Index into ``study.pairs`` of each row of ``x``.
    boxes:
        phase → crop box (one per phase volume), needed to map Grad-CAM back onto the slices.
    """

    x: torch.Tensor
    pair_indices: list[int]
    boxes: dict[str, CropBox]


def check_study(study: AssembledStudy, config: ModelConfig) -> None:
    """Refuse a study that lacks a phase the model reads or has no paired slices."""
    missing = [p for p in config.phases if p not in study.volumes]
    if missing:
        raise StudyInputError(
            f"the model reads {', '.join(config.phases)}; the study has no {', '.join(missing)} series")
    if not study.pairs:
        raise StudyInputError("the study has no paired liver slices to predict on")
    for k, pair in enumerate(study.pairs):
        lacking = [p for p in config.phases if p not in pair.index]
        if lacking:
            raise StudyInputError(f"slice pair {k} (z = {pair.z_ref:.1f} mm) has no {', '.join(lacking)} slice")
        for p in config.phases:
            n = study.volumes[p].n_slices
            if not 0 <= pair.index[p] < n:
                raise StudyInputError(
                    f"slice pair {k} points at {p} slice {pair.index[p]}, the volume has {n}")


def check_finite(study: AssembledStudy, config: ModelConfig, chosen: Sequence[int]) -> None:
    """Refuse slices whose HU are not finite (or beyond ±MAX_ABS_HU) before the model sees them.

    Windowing clips +inf to white and keeps NaN, so a broken rescale (RescaleSlope NaN,
    RescaleIntercept 1e308) would otherwise vote silently (issue 14). The loader already
    refuses such slices; this also covers volumes made from arrays or caches.
    """
    from app.dicom.limits import MAX_ABS_HU, hu_problem

    for p in config.phases:
        vol = study.volumes[p]
        bad = [float(study.pairs[i].z_ref) for i in chosen if hu_problem(vol.hu[study.pairs[i].index[p]])]
        if bad:
            where = ", ".join(f"{z:.1f}" for z in bad[:5]) + (" ..." if len(bad) > 5 else "")
            raise StudyInputError(
                f"the {p} series has non-finite or impossible HU values (beyond "
                f"±{MAX_ABS_HU:g}) in {len(bad)} paired slice{'s' if len(bad) > 1 else ''} "
                f"(z = {where} mm): its rescale values are not usable; nothing was predicted")


def study_boxes(study: AssembledStudy, config: ModelConfig) -> dict[str, CropBox]:
    """One crop box per phase, from ALL paired slices of that phase — the same whichever subset
    of pairs is preprocessed, so the viewed slice's Grad-CAM matches the whole study's."""
    boxes: dict[str, CropBox] = {}
    for p in config.phases:
        vol = study.volumes[p]
        if config.crop == "none":
            boxes[p] = CropBox.whole(int(vol.hu.shape[1]), int(vol.hu.shape[2]))
            continue
        idx = sorted({pair.index[p] for pair in study.pairs})
        boxes[p] = crop_box(vol.hu[idx], config, vol.pixel_spacing)
    return boxes


def preprocess_study(
    study: AssembledStudy,
    config: ModelConfig,
    pair_indices: Sequence[int] | None = None,
    boxes: dict[str, CropBox] | None = None,
    device: torch.device | None = None,
) -> StudyInput:
    """Network input for the slice triplets of a study (all pairs, or those given).

    Parameters
    ----------
    study:
        The assembled study; ``study.pairs`` say which slice of each phase forms a triplet.
    config:
        The model's configuration (phases, window, size, crop).
    pair_indices:
        Which pairs (indices into ``study.pairs``); all when None.
    boxes:
        Crop boxes from :func:`study_boxes` (computed when None).
    device:
        Where the input is made and kept (None: the CPU); see :func:`preprocess_slices`.

    Returns
    -------
    StudyInput
    """
    check_study(study, config)
    chosen = list(range(len(study.pairs))) if pair_indices is None else [int(i) for i in pair_indices]
    for i in chosen:
        if not 0 <= i < len(study.pairs):
            raise StudyInputError(f"slice pair {i} does not exist (the study has {len(study.pairs)})")
    check_finite(study, config, chosen)
    boxes = boxes or study_boxes(study, config)
    size = config.input_size
    x = torch.empty((len(chosen), config.n_phases, 1, size, size), dtype=torch.float32, device=device)
    for j, p in enumerate(config.phases):
        vol = study.volumes[p]
        idx = [study.pairs[i].index[p] for i in chosen]
        x[:, j] = preprocess_slices(rows_of(vol.hu, idx), config, vol.pixel_spacing, box=boxes[p],
                                    device=device)
    return StudyInput(x, chosen, boxes)
