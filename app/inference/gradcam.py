"""Grad-CAM per pathway, mapped back onto the original slices, one normalisation per study.

For each phase the map is Grad-CAM (Selvaraju et al.) of that pathway's last convolutional
block (:meth:`MultiPhaseNet.pathway_layers`): ``ReLU(Σ_c w_c A_c)`` with ``w_c`` the spatial
mean of ∂score/∂A_c, the score being the logit of the explained class (responder by default;
``"predicted"`` explains each slice's own predicted class).

How it is computed
------------------
:class:`CamHooks` registers a forward hook on every pathway layer for the duration of a
``with`` block and removes them on exit, whatever happens. The hook hands the rest of the
network a detached copy of the activation that requires grad, so that ``torch.autograd.grad``
differentiates only the small part after it (pooling, attention, head) — never the trunk — and
needs no parameter gradients (a loaded model has ``requires_grad`` off). Samples are
independent in eval mode, so a whole batch is explained with one backward pass; the hooks
ignore forward passes from other threads (a prediction running at the same time is untouched).

Normalisation
-------------
Raw Grad-CAM values depend on the slice and the pathway; dividing each map by its own maximum
would make a weak slice look as "hot" as a strong one. :func:`gradcam_study` therefore divides
every map of a study by ONE number, ``global_max`` (the largest value over all slices and
phases), so that slices and phases can be compared; raw values are kept on request. The viewed
slice (:func:`gradcam_slice`) can be scaled by the study's ``global_max`` when it is known.

Slices that did not take part in the decision
---------------------------------------------
A lesion-head model decides from the slices in which it sees tumour (``lesion_weighted``
aggregation, :func:`app.inference.result.aggregate`); on the other slices its lesion-masked
pooling explains whatever small blob the mask found, and such a faint, meaningless map could
even set the study's scale and make the heat on the tumour slices invisible (measured on the
demo study with model 2026.3: the hottest map was a non-voting slice, the voting slices' heat
was 12–17 % of the scale). So for a whole study, only the slices that voted are shown
(:attr:`CamResult.shown`); the others get an empty map and ``global_max`` is taken over the
shown ones. The paper's vote uses every slice: nothing is hidden.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np
import torch
from torch import nn

from app.dicom.types import AssembledStudy
from app.inference.config import CLASSES
from app.inference.device import DeviceChoice, DeviceInput, on_gpu_or_cpu, run_batched
from app.inference.model import MultiPhaseNet
from app.inference.preprocess import (
    CropBox,
    StudyInput,
    map_to_slice,
    preprocess_study,
    study_boxes,
)
from app.inference.weights import LoadedModel
from app.progress import NULL_PROGRESS, Progress, sub_progress

Target = Literal["responder", "non-responder", "predicted"]
TARGETS: tuple[str, ...] = ("responder", "non-responder", "predicted")


class CamHooks:
    """Context manager: forward hooks on every pathway layer, removed on exit.

    Inside the block, each forward pass of the owning thread stores the pathway activations in
    :attr:`activations` (phase → tensor ``[B, C, h, w]`` that requires grad).
    """

    def __init__(self, model: MultiPhaseNet) -> None:
        self.model = model
        self.activations: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []
        self._owner = threading.get_ident()

    def _hook(self, phase: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
            if threading.get_ident() != self._owner:
                return None  # another thread's forward pass: leave it alone
            rooted = output.detach().requires_grad_(True)
            self.activations[phase] = rooted
            return rooted

        return hook

    def __enter__(self) -> CamHooks:
        self._owner = threading.get_ident()
        for phase, layer in self.model.pathway_layers().items():
            self._handles.append(layer.register_forward_hook(self._hook(phase)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.activations.clear()


@dataclass
class CamResult:
    """Grad-CAM maps of some slice triplets of a study.

    Attributes
    ----------
    phases:
        Phases (pathways) explained.
    pair_indices:
        Index into ``study.pairs`` of each map.
    maps:
        phase → float32 ``[n, rows, cols]`` on that phase's original slice geometry, divided by
        ``scale`` and clipped to [0, 1].
    scale:
        The one number every map was divided by: ``global_max`` for a whole study (for a
        lesion-head model the robust :func:`display_scale` of the shown maps; stronger heat is
        clipped to 1), or the value passed in for the viewed slice.
    global_max:
        Largest raw value over these maps (all slices and phases).
    raw:
        phase → unnormalised maps like ``maps`` (only when asked for).
    low_res:
        phase → raw maps at the feature map's resolution ``[n, h, w]`` (small; lets a caller
        re-normalise or re-map without recomputing).
    target:
        What was explained (``responder``, ``non-responder`` or ``predicted``).
    explained_class:
        The class explained for each map (differs per slice for ``predicted``).
    probabilities:
        Responder probability of each triplet from the same forward pass.
    device, warnings:
        Where the maps were computed, and why it changed (a GPU failure moved it to the CPU).
    lesion_areas:
        For a lesion-head model, the tumour area (input pixels) the model saw in each triplet.
    shown:
        Per map, whether it is shown: False for slices that did not take part in the decision
        (their map is empty; see the module docstring). Empty means all are shown.
    """

    phases: tuple[str, ...]
    pair_indices: list[int]
    maps: dict[str, np.ndarray]
    scale: float
    global_max: float
    target: str
    explained_class: list[str]
    probabilities: list[float]
    low_res: dict[str, np.ndarray] = field(default_factory=dict)
    raw: dict[str, np.ndarray] | None = None
    device: str = "cpu"
    warnings: list[str] = field(default_factory=list)
    lesion_areas: list[float] | None = None
    shown: list[bool] = field(default_factory=list)

    def map_for(self, phase: str, pair_index: int) -> np.ndarray:
        """The normalised map of ``phase`` for the study's pair ``pair_index``."""
        return self.maps[phase][self.pair_indices.index(pair_index)]


_CamBatch = tuple[dict[str, torch.Tensor], torch.Tensor, list[int], torch.Tensor | None]


def _cam_batch(model: MultiPhaseNet, x: torch.Tensor, target: str) -> _CamBatch:
    """Low-resolution raw Grad-CAM for one batch: phase → ``[B, h, w]``, probabilities, classes,
    and the tumour area seen in each triplet (None without a lesion head)."""
    areas: torch.Tensor | None = None
    with CamHooks(model) as hooks, torch.inference_mode(False), torch.enable_grad():
        if getattr(model, "seg", None) is not None:
            out = model(x, details=True)
            logits, areas = out.logits, out.lesion_area.detach().float().cpu()
        else:
            logits = model(x)
        acts = [hooks.activations[p] for p in model.config.phases]
        probs = torch.softmax(logits.detach().float(), 1)[:, 1]
        if target == "predicted":
            cls = (probs > 0.5).long()
        else:
            cls = torch.full((x.shape[0],), CLASSES.index(target), dtype=torch.long, device=logits.device)
        score = logits.gather(1, cls.to(logits.device)[:, None]).sum()
        grads = torch.autograd.grad(score, acts)
    cams: dict[str, torch.Tensor] = {}
    for phase, a, g in zip(model.config.phases, acts, grads, strict=True):
        weights = g.float().mean(dim=(2, 3), keepdim=True)  # [B, C, 1, 1]
        cams[phase] = torch.relu((weights * a.detach().float()).sum(dim=1)).cpu()
    return cams, probs.cpu(), cls.cpu().tolist(), areas


def _run_cams(loaded: LoadedModel, study: AssembledStudy, inputs: StudyInput, target: str, batch_size: int,
              progress: Progress, notes: list[str]
              ) -> tuple[dict[str, torch.Tensor], list[float], list[int], list[float] | None]:
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if loaded.model.training:
        # dropout and batch statistics would make the maps random and batch-dependent
        raise ValueError("Grad-CAM needs the model in eval mode")

    source = DeviceInput(inputs.x, lambda: preprocess_study(study, loaded.config, inputs.pair_indices,
                                                          inputs.boxes).x)

    def step(start: int, stop: int, choice: DeviceChoice) -> _CamBatch:
        return _cam_batch(loaded.model, source.rows(start, stop, choice), target)

    n = int(inputs.x.shape[0])
    run = run_batched(loaded, n, batch_size, step, during="Grad-CAM", progress=progress)
    notes += run.notes
    cams = {p: torch.cat([out[0][p] for out in run.outputs]) for p in loaded.config.phases}
    probs = [float(v) for out in run.outputs for v in out[1].tolist()]
    classes = [c for out in run.outputs for c in out[2]]
    has_areas = all(out[3] is not None for out in run.outputs)
    areas = [float(v) for out in run.outputs for v in out[3].tolist()] if has_areas else None  # type: ignore[union-attr]
    return cams, probs, classes, areas


def shown_slices(loaded: LoadedModel, probabilities: Sequence[float],
                 lesion_areas: Sequence[float] | None) -> list[bool]:
    """Which slice triplets of a WHOLE study took part in the model's decision (their maps are
    shown): the voting slices of ``lesion_weighted`` aggregation, else all."""
    if lesion_areas is None or not loaded.config.votes_on_lesions:
        return [True] * len(probabilities)
    from app.inference.result import aggregate

    agg = aggregate(list(probabilities), list(lesion_areas), "lesion_weighted", loaded.config.threshold)
    return list(agg.voting)


#: A lesion-head model's study scale: this percentile of the peaks of the shown maps (one peak
#: per phase and slice), not their maximum. Measured on the demo study with model 2026.3: the
#: tumour's edge slice peaked 6-7 times higher than its centre slices, whose heat (about 15 % of
#: the maximum) then fell below the overlay's transparency ramp — no heat on the tumour where a
#: reader looks first. Heat above the scale is drawn at full strength.
DISPLAY_SCALE_PERCENTILE = 90.0


def display_scale(maps: dict[str, np.ndarray], shown: Sequence[bool], robust: bool) -> float:
    """The study's colour scale over the shown maps: their maximum, or for ``robust`` the
    :data:`DISPLAY_SCALE_PERCENTILE` of their per-map peaks (0 when nothing has heat)."""
    rows = np.flatnonzero(np.asarray(shown, dtype=bool))
    peaks = [float(a[k].max()) for a in maps.values() if a.size for k in rows]
    peaks = [v for v in peaks if v > 0]
    if not peaks:
        return 0.0
    return float(np.percentile(peaks, DISPLAY_SCALE_PERCENTILE)) if robust else max(peaks)


def study_scale(loaded: LoadedModel, maps: dict[str, np.ndarray], shown: Sequence[bool]
                ) -> tuple[float, float]:
    """For a whole study's raw maps: empty those not ``shown`` (in place) and return the
    largest shown value and the colour scale (:func:`display_scale`, robust for a lesion-head
    model) — the one policy of :func:`gradcam_study` and the GUI's chunked job."""
    global_max = hide_unused(maps, shown)
    return global_max, display_scale(maps, shown, robust=loaded.config.votes_on_lesions)


def hide_unused(maps: dict[str, np.ndarray], shown: Sequence[bool]) -> float:
    """Empty the maps of the triplets not ``shown`` (in place) and return the largest value of
    the shown ones: the study's scale."""
    keep = np.asarray(shown, dtype=bool)
    for a in maps.values():
        a[~keep] = 0.0
    return max((float(a.max()) for a in maps.values() if a.size), default=0.0)


def _assemble(loaded: LoadedModel, inputs: StudyInput, low: dict[str, torch.Tensor], probs: list[float],
              classes: list[int], target: str, scale: float | None, keep_raw: bool,
              areas: list[float] | None = None, shown: list[bool] | None = None) -> CamResult:
    # map back first, then take the maximum on the slices themselves: the hottest pixel of the
    # study is then exactly 1.0 after normalisation
    stride, offset = loaded.model.feature_geometry()
    size = loaded.config.input_size
    full = {phase: map_to_slice(t, inputs.boxes[phase], size, stride, offset) for phase, t in low.items()}
    if shown is not None:
        global_max, study = study_scale(loaded, full, shown)
        scale = study if scale is None else scale
    else:
        global_max = max((float(a.max()) for a in full.values() if a.size), default=0.0)
    s = float(scale) if scale is not None and scale > 0 else global_max
    raw: dict[str, np.ndarray] | None = {p: a.copy() for p, a in full.items()} if keep_raw else None
    for a in full.values():
        if s > 0:
            np.multiply(a, 1.0 / s, out=a)
            np.clip(a, 0.0, 1.0, out=a)
        else:
            a[:] = 0.0  # nothing drove the class score anywhere: an all-zero map
    return CamResult(
        phases=loaded.config.phases, pair_indices=list(inputs.pair_indices), maps=full, scale=s,
        global_max=global_max, target=target, explained_class=[CLASSES[c] for c in classes],
        probabilities=probs, low_res={p: t.numpy() for p, t in low.items()}, raw=raw,
        device=str(loaded.device), lesion_areas=areas, shown=list(shown) if shown is not None else [])


def gradcam_study(
    loaded: LoadedModel,
    study: AssembledStudy,
    progress: Progress | None = None,
    target: Target = "responder",
    batch_size: int | None = None,
    keep_raw: bool = False,
    pair_indices: Sequence[int] | None = None,
) -> CamResult:
    """Grad-CAM of every pathway for every slice triplet of a study, batched.

    Parameters
    ----------
    loaded:
        The model (as used by :func:`app.inference.predictor.predict`).
    study:
        The assembled study.
    progress:
        Progress per batch; cancellation checked between batches.
    target:
        ``"responder"`` (default: what in the image speaks for response), ``"non-responder"``
        or ``"predicted"`` (each slice's own predicted class).
    batch_size:
        Triplets per pass (default 8 on the CPU, 32 on CUDA).
    keep_raw:
        Also return the unnormalised maps.
    pair_indices:
        Only these pairs (all when None); the crop boxes are still those of the whole study.
        For the whole study, the maps of slices that did not take part in the decision are
        left empty (:func:`shown_slices`); a subset cannot know that and shows all of its maps.

    Returns
    -------
    CamResult
        Maps on each phase's original slice geometry, all divided by the study's
        ``global_max`` (the largest value over the shown maps).
    """
    progress = sub_progress(progress, 0.0, 1.0)
    progress.update(0.0, "preparing slices")
    inputs, notes = on_gpu_or_cpu(
        loaded.device_choice, lambda dev: preprocess_study(study, loaded.config, pair_indices, device=dev),
        "preparing slices")
    bs = batch_size or (32 if loaded.device_choice.is_cuda else 8)
    low, probs, classes, areas = _run_cams(loaded, study, inputs, target, bs, sub_progress(progress, 0.02, 0.95),
                                           notes)
    shown = shown_slices(loaded, probs, areas) if pair_indices is None else None
    result = _assemble(loaded, inputs, low, probs, classes, target, None, keep_raw, areas, shown)
    result.warnings = notes
    progress.update(1.0, "Grad-CAM done")
    return result


def gradcam_slice(
    loaded: LoadedModel,
    study: AssembledStudy,
    pair_index: int,
    target: Target = "responder",
    scale: float | None = None,
    keep_raw: bool = False,
) -> CamResult:
    """Grad-CAM of every pathway for ONE slice triplet — the fast path for the viewed slice.

    Parameters
    ----------
    pair_index:
        Index into ``study.pairs``.
    scale:
        Divide by this (normally ``global_max`` of an earlier :func:`gradcam_study`) so that the
        viewed slice is on the study's scale; by the slice's own maximum when None.

    Returns
    -------
    CamResult
        With one map per phase (``maps[phase][0]``).
    """
    boxes = study_boxes(study, loaded.config)
    inputs, notes = on_gpu_or_cpu(
        loaded.device_choice, lambda dev: preprocess_study(study, loaded.config, [pair_index], boxes, device=dev),
        "preparing slices")
    low, probs, classes, areas = _run_cams(loaded, study, inputs, target, 1, NULL_PROGRESS, notes)
    result = _assemble(loaded, inputs, low, probs, classes, target, scale, keep_raw, areas)
    result.warnings = notes
    return result


def gradcam_on_inputs(model: MultiPhaseNet, x: torch.Tensor, target: Target = "responder",
                      batch_size: int = 16) -> np.ndarray:
    """Raw Grad-CAM of every pathway on the network input's own pixel grid.

    For measuring where a model looks against label maps aligned with its input
    (:func:`app.synthetic.labelmaps.labels_for_inputs`): the feature cells are placed where
    their receptive fields are centred, as on the slices (:func:`map_to_slice` with the whole
    input as the box), but nothing is cropped back or normalised.

    Parameters
    ----------
    model:
        In eval mode, on any device (batches go where the model is).
    x:
        ``[N, P, 1, S, S]`` network input, phases in ``model.config.phases`` order.

    Returns
    -------
    np.ndarray
        float32 ``[N, P, S, S]``, non-negative.
    """
    return explain_inputs(model, x, target, batch_size).maps


@dataclass
class InputCams:
    """:func:`explain_inputs`: the raw maps ``[N, P, S, S]`` and, from the same forward pass,
    each triplet's responder probability and (lesion head) tumour area."""

    maps: np.ndarray
    probabilities: list[float]
    lesion_areas: list[float] | None


def explain_inputs(model: MultiPhaseNet, x: torch.Tensor, target: Target = "responder",
                   batch_size: int = 16) -> InputCams:
    """:func:`gradcam_on_inputs` with the forward pass's outputs (for measuring the maps the
    app shows, which depend on the lesion-weighted vote), without a second forward pass."""
    if model.training:
        raise ValueError("Grad-CAM needs the model in eval mode")
    device = next(model.parameters()).device
    size = int(x.shape[-1])
    stride, offset = model.feature_geometry()
    whole = CropBox.whole(size, size)
    out = np.zeros((x.shape[0], x.shape[1], size, size), dtype=np.float32)
    probs: list[float] = []
    areas: list[float] = []
    for i in range(0, int(x.shape[0]), max(1, batch_size)):
        xb = x[i:i + batch_size].to(device).float()
        cams, p, _cls, a = _cam_batch(model, xb, target)
        for j, phase in enumerate(model.config.phases):
            out[i:i + xb.shape[0], j] = map_to_slice(cams[phase], whole, size, stride, offset)
        probs += [float(v) for v in p.tolist()]
        areas += [float(v) for v in a.tolist()] if a is not None else []
    return InputCams(out, probs, areas if len(areas) == len(probs) else None)


# ------------------------------------------------------------------------------ overlays


COLORMAPS: dict[str, int] = {
    "jet": cv2.COLORMAP_JET,
    "turbo": cv2.COLORMAP_TURBO,
    "inferno": cv2.COLORMAP_INFERNO,
    "hot": cv2.COLORMAP_HOT,
    "viridis": cv2.COLORMAP_VIRIDIS,
}


def overlay_rgb(
    hu_slice: np.ndarray,
    cam: np.ndarray,
    window: tuple[float, float] = (400.0, 0.0),
    opacity: float = 0.5,
    colormap: str = "jet",
) -> np.ndarray:
    """The slice in grey (windowed) with the Grad-CAM map blended over it, as RGB uint8.

    The colour's weight at each pixel is ``opacity × cam``, so where the map is zero the CT
    shows unchanged and only the regions that drove the score are tinted.

    Parameters
    ----------
    hu_slice:
        ``(rows, cols)`` HU.
    cam:
        ``(rows, cols)`` normalised map in [0, 1] (a :class:`CamResult` map).
    window:
        ``(width, level)`` for the grey image.
    opacity:
        Maximum weight of the colour (0..1).
    colormap:
        One of :data:`COLORMAPS`.

    Returns
    -------
    np.ndarray
        ``(rows, cols, 3)`` uint8 RGB.
    """
    if hu_slice.shape != cam.shape:
        raise ValueError(f"slice {hu_slice.shape} and map {cam.shape} differ in size")
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; use one of {sorted(COLORMAPS)}")
    width, level = window
    grey = np.clip((hu_slice.astype(np.float32) - (level - width / 2.0)) / width, 0.0, 1.0)
    grey_rgb = np.repeat((grey * 255.0)[..., None], 3, axis=2)
    c = np.clip(cam.astype(np.float32), 0.0, 1.0)
    heat_bgr = cv2.applyColorMap(np.round(c * 255.0).astype(np.uint8), COLORMAPS[colormap])
    heat = cv2.cvtColor(heat_bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
    alpha = (float(np.clip(opacity, 0.0, 1.0)) * c)[..., None]
    out = grey_rgb * (1.0 - alpha) + heat * alpha
    return np.round(out).astype(np.uint8)


def write_png(path: Any, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG (raises OSError when it cannot be written)."""
    ok = cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot write PNG {path}")


def export_overlays(
    study: AssembledStudy,
    cams: CamResult,
    out_dir: Any,
    opacity: float = 0.5,
    colormap: str = "jet",
    window: tuple[float, float] = (400.0, 0.0),
) -> list[Any]:
    """Write one overlay PNG per slice triplet and phase; returns the paths written.

    Names are ``pair{k:03d}_z{z_ref:.1f}_{phase}.png`` (k = index into ``study.pairs``, which
    is ordered by table position), so files sort by level and say which slice they show.

    Raises
    ------
    OSError
        When the folder or a file cannot be written (full disk, read-only location).
    """
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Any] = []
    for row, k in enumerate(cams.pair_indices):
        pair = study.pairs[k]
        for phase in cams.phases:
            hu = study.volumes[phase].hu[pair.index[phase]]
            rgb = overlay_rgb(hu, cams.maps[phase][row], window=window, opacity=opacity, colormap=colormap)
            path = out / f"pair{k:03d}_z{pair.z_ref:.1f}_{phase}.png"
            write_png(path, rgb)
            written.append(path)
    return written
