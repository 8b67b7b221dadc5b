"""Prediction for one patient: every paired slice triplet, then the paper's majority vote.

Each slice triplet (the phases at one table level) is an independent sample with its own
responder probability and label; the patient's label is the majority of the slice labels (the
paper's "B-voting": slices 0,1,1,1,0 → responder).

Decisions
---------
- **Slice label**: responder when its responder probability is > 0.5 (softmax over the two
  logits); exactly 0.5 counts as non-responder.
- **Tie rule** (an even number of slices split evenly — the paper leaves this open): the mean
  responder probability over all slices decides, responder only when it is > 0.5. The mean uses
  the same slices as the vote, keeps the decision deterministic, and uses the confidence the
  vote throws away; ``tie`` is set and a warning says that the vote was tied.
- **Device**: ``auto`` runs on a working CUDA GPU, else the CPU. A GPU that runs out of memory
  gets smaller batches first (halving down to 1); any other CUDA failure, or OOM at batch 1,
  moves the model to the CPU and the prediction continues there; the result records why.
- **Precision and layout**: float32 on the CPU (reduced precision is slower there). On CUDA,
  float16 autocast (``precision="auto"``); ``bench/predict_speed.py`` checks on a GPU that the
  labels equal float32's. Loaded models have BatchNorm folded into their convolutions and
  channels-last weights on every device (1.5–2× faster on the CPU, measured in that bench).
- Forward passes run under ``torch.inference_mode()`` with the model in eval mode; the model is
  loaded once by the caller (:func:`app.inference.weights.load_model`) and reused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from app.dicom.types import AssembledStudy
from app.errors import HCCError
from app.inference.device import (
    DTYPE_NAMES,
    DeviceChoice,
    DeviceInput,
    autocast,
    autocast_dtype,
    on_gpu_or_cpu,
    place_with_fallback,
    run_batched,
    select_device,
)
from app.inference.patient_head import n_measures
from app.inference.preprocess import preprocess_study
from app.inference.result import (
    TIE_RULE,
    PredictionResult,
    SliceResult,
    aggregate,
    slice_label,
)
from app.inference.weights import LoadedModel
from app.progress import Progress, sub_progress

PRECISIONS = ("auto", "fp32", "fp16", "bf16")


@dataclass
class BatchOutputs:
    """What :func:`run_batches` gives back for ``N`` slice triplets.

    ``probabilities`` ``[N]`` (float32, CPU); ``batch_size`` at the end (smaller after GPU
    out-of-memory); ``precision`` used; ``notes`` on fallbacks; for a lesion-head model the
    ``lesion_areas`` ``[N]`` and the input-resolution ``measures`` ``[N, 4P + 3]``, else None.
    """

    probabilities: torch.Tensor
    batch_size: int
    precision: str
    notes: list[str]
    lesion_areas: torch.Tensor | None = None
    measures: torch.Tensor | None = None


def run_batches(
    loaded: LoadedModel,
    x: torch.Tensor | DeviceInput,
    progress: Progress,
    batch_size: int,
    precision: str = "auto",
    text: str = "predicting",
) -> BatchOutputs:
    """Responder probabilities for the rows of ``x`` ``[N, P, 1, S, S]``, batch by batch.

    ``x`` may be a :class:`~app.inference.device.DeviceInput` (input made on the GPU, remade on
    the CPU after a fallback).

    Cancellation is checked before every batch, progress reported after each. GPU failures are
    handled by :func:`app.inference.device.run_batched` (out of memory → halve the batch; any
    other failure on the GPU branch → the CPU, with the reason in the notes).

    Returns
    -------
    BatchOutputs
    """
    if loaded.model.training:
        # dropout and batch statistics would make the answer random and batch-dependent
        raise ValueError("prediction needs the model in eval mode")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    used: list[torch.dtype | None] = [None]
    source = x if isinstance(x, DeviceInput) else DeviceInput(x, x.cpu)

    lesion_head = loaded.config.head == "lesion"

    def step(start: int, stop: int, choice: DeviceChoice) -> torch.Tensor:
        amp = autocast_dtype(precision, choice)
        xb = source.rows(start, stop, choice)
        with torch.inference_mode(), autocast(choice, amp):
            if lesion_head:
                details = loaded.model(xb, details=True)
                logits = details.logits
                extra = [details.lesion_area.float()[:, None], details.measures.float()]
            else:
                logits, extra = loaded.model(xb), []
        used[0] = amp
        # one [n, 1 (+ 1 + measures)] block per batch: a single transfer back to the CPU
        return torch.cat([torch.softmax(logits.float(), dim=1)[:, 1:2], *extra], dim=1).cpu()

    n = int(source.x.shape[0])
    run = run_batched(loaded, n, batch_size, step, during=text, progress=progress)
    width = 1 + (1 + n_measures(loaded.config.n_phases) if lesion_head else 0)
    rows = torch.cat(run.outputs) if run.outputs else torch.empty((0, width), dtype=torch.float32)
    return BatchOutputs(rows[:, 0].contiguous(), run.batch_size, DTYPE_NAMES[used[0]], run.notes,
                        rows[:, 1].contiguous() if lesion_head else None,
                        rows[:, 2:].contiguous() if lesion_head else None)


class NonFiniteOutput(HCCError):
    """The model gave a non-finite probability (or lesion area) for finite input.

    The input was checked finite before the forward pass, so this is a fault of the model or
    the device, not of the user's images: exit status 1, and nothing is shown or recorded (a
    vote with NaN would silently count as a non-responder, and JSON has no NaN).
    """


def check_outputs(probs: torch.Tensor, areas: torch.Tensor | None,
                  measures: torch.Tensor | None = None) -> None:
    """Raise :class:`NonFiniteOutput` unless every probability (and lesion area and measure)
    is finite."""
    bad = int((~torch.isfinite(probs)).sum())
    if areas is not None:
        bad = max(bad, int((~torch.isfinite(areas)).sum()))
    if measures is not None and measures.numel():
        bad = max(bad, int((~torch.isfinite(measures)).any(dim=1).sum()))
    if bad:
        raise NonFiniteOutput(
            f"the model gave a non-finite result for {bad} of {int(probs.numel())} slice "
            "triplets although their input was finite: the model file or the device is faulty; "
            "nothing was predicted")


def predict(
    study: AssembledStudy,
    model: LoadedModel,
    progress: Progress | None = None,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    precision: str = "auto",
) -> PredictionResult:
    """Predict a patient's response from every paired slice triplet of ``study``.

    Parameters
    ----------
    study:
        The assembled study (phases, volumes, paired liver slices).
    model:
        A model from :func:`app.inference.weights.load_model`, reused across calls.
    progress:
        Progress/cancel object: progress per batch, cancellation checked between batches
        (raises :class:`app.errors.Cancelled`; nothing partial is returned).
    batch_size:
        Slice triplets per forward pass (default 16 on the CPU, 64 on CUDA).
    device:
        ``"auto"`` / ``"cpu"`` / ``"cuda"`` to move the model first; None keeps the model's
        current device.
    precision:
        ``"auto"`` (fp16 autocast on CUDA, fp32 on the CPU), ``"fp32"``, ``"fp16"``, ``"bf16"``.

    Returns
    -------
    PredictionResult

    Raises
    ------
    app.inference.preprocess.StudyInputError
        The study lacks a phase the model reads, has no paired slices, or a paired slice has
        non-finite HU.
    NonFiniteOutput
        The model gave a non-finite probability (nothing is returned).
    app.errors.Cancelled
        Cancelled between batches.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    t0 = time.perf_counter()
    progress = sub_progress(progress, 0.0, 1.0)
    notes: list[str] = []
    if device is not None:
        with model.lock:
            notes += place_with_fallback(model, select_device(device))
    progress.update(0.0, "preparing slices")
    inputs, prep_notes = on_gpu_or_cpu(
        model.device_choice, lambda dev: preprocess_study(study, model.config, device=dev),
        "preparing slices")
    notes += prep_notes
    t1 = time.perf_counter()
    bs = batch_size or (64 if model.device_choice.is_cuda else 16)
    source = DeviceInput(inputs.x, lambda: preprocess_study(study, model.config).x)
    out = run_batches(model, source, sub_progress(progress, 0.02, 1.0), bs, precision)
    probs, areas, bs, used_precision = out.probabilities, out.lesion_areas, out.batch_size, out.precision
    notes += out.notes
    t2 = time.perf_counter()
    check_outputs(probs, areas, out.measures)

    area_list = [float(a) for a in areas] if areas is not None else None
    config = model.config
    threshold = config.threshold
    agg = aggregate([float(p) for p in probs], area_list, config.aggregation, threshold,
                    measures=out.measures.numpy().astype(np.float64) if out.measures is not None else None,
                    patient_head=config.patient_head, phases=config.phases)
    vote = agg.vote
    slices = []
    for row, k in enumerate(inputs.pair_indices):
        pair = study.pairs[k]
        p = float(probs[row])
        slices.append(SliceResult(
            pair_index=k, z_ref=float(pair.z_ref),
            z_by_phase={ph: float(pair.z_mm[ph]) for ph in model.config.phases if ph in pair.z_mm},
            index_by_phase={ph: int(pair.index[ph]) for ph in model.config.phases},
            probability=p, label=slice_label(p, threshold),
            lesion_area=area_list[row] if area_list is not None else None,
            votes=agg.voting[row]))

    warnings: list[str] = []
    if agg.note:
        warnings.append(agg.note)
    desc = model.description
    if not desc.is_trained:
        warnings.append(f"the model's weights are {desc.weights_kind}: the result is meaningless")
    if vote.tie:
        warnings.append(f"the slice vote was tied {vote.responder_votes}:{vote.total_votes - vote.responder_votes}; "
                        f"decided by the mean probability {vote.mean_probability:.3f}")
    if study.needs_confirmation:
        reasons = "; ".join(study.confirmation_reasons) or "ambiguous phase assignment"
        warnings.append(f"the study's phase assignment needs confirmation: {reasons}")
    choice = model.device_choice
    if choice.fallback and choice.reason not in notes:
        notes.append(choice.reason)  # the model was already on the CPU after a GPU failure
    warnings += notes
    return PredictionResult(
        label=vote.label,
        responder_votes=vote.responder_votes,
        total_votes=vote.total_votes,
        vote_fraction=vote.vote_fraction,
        mean_probability=vote.mean_probability,
        tie=vote.tie,
        tie_rule=TIE_RULE,
        slices=slices,
        phases=model.config.phases,
        series_uids={p: study.assignment.get(p, study.volumes[p].series_uid) for p in model.config.phases},
        model_name=desc.name,
        model_version=desc.version,
        model_sha256=model.sha256,
        weights_kind=desc.weights_kind,
        device=str(choice.device),
        device_reason=choice.reason,
        device_fallback=choice.fallback,
        precision=used_precision,
        batch_size=bs,
        timings={"preprocess": t1 - t0, "forward": t2 - t1, "total": time.perf_counter() - t0},
        warnings=warnings,
        decided_by=agg.rule,
    )
