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
from contextlib import nullcontext

import torch

from app.dicom.types import AssembledStudy
from app.inference.device import (
    DeviceChoice,
    cpu_fallback,
    is_cuda_failure,
    is_out_of_memory,
    select_device,
)
from app.inference.preprocess import preprocess_study
from app.inference.result import (
    TIE_RULE,
    PredictionResult,
    SliceResult,
    majority_vote,
    slice_label,
)
from app.inference.weights import LoadedModel
from app.progress import Progress, sub_progress

PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda":
        return None  # float32 on the CPU: reduced precision is not faster there
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    return torch.float16  # "auto" and "fp16"


def batch_to_device(xb: torch.Tensor, choice: DeviceChoice) -> torch.Tensor:
    """A batch on the GPU, channels-last like the model."""
    return xb.to(choice.device, non_blocking=True).contiguous(memory_format=torch.channels_last)


def place_model(loaded: LoadedModel, choice: DeviceChoice) -> None:
    """Put the model on ``choice``'s device, channels-last (faster with oneDNN and cuDNN)."""
    loaded.model.to(choice.device)
    loaded.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    loaded.device_choice = choice


def run_batches(
    loaded: LoadedModel,
    x: torch.Tensor,
    progress: Progress,
    batch_size: int,
    precision: str = "auto",
    text: str = "predicting",
) -> tuple[torch.Tensor, int, str, list[str]]:
    """Responder probabilities for the rows of ``x`` ``[N, P, 1, S, S]``, batch by batch.

    Cancellation is checked before every batch, progress reported after each. CUDA failures
    are handled here: out of memory → halve the batch and retry; anything else (or OOM at batch
    size 1) → move the model to the CPU, record why, and go on.

    Returns
    -------
    (probabilities [N] float32 CPU, final batch size, precision used, notes on fallbacks)
    """
    if loaded.model.training:
        # dropout and batch statistics would make the answer random and batch-dependent
        raise ValueError("prediction needs the model in eval mode")
    n = int(x.shape[0])
    probs = torch.empty(n, dtype=torch.float32)
    notes: list[str] = []
    bs = max(1, int(batch_size))
    used_precision = "fp32"
    i = 0
    progress.update(0.0, text)
    while i < n:
        progress.check()
        with loaded.lock:
            choice = loaded.device_choice
            amp = _autocast_dtype(precision, choice.device)
            try:
                xb = x[i : i + bs]
                if choice.is_cuda:
                    xb = batch_to_device(xb, choice)
                ctx = torch.autocast("cuda", dtype=amp) if amp is not None else nullcontext()
                with torch.inference_mode(), ctx:
                    logits = loaded.model(xb)
                p = torch.softmax(logits.float(), dim=1)[:, 1].cpu()
            except Exception as exc:
                if not (choice.is_cuda and is_cuda_failure(exc)):
                    raise
                if is_out_of_memory(exc) and bs > 1:
                    bs = max(1, bs // 2)
                    notes.append(f"GPU out of memory; batch size reduced to {bs}")
                    torch.cuda.empty_cache()
                    continue
                cpu = cpu_fallback(choice, exc, text)
                place_model(loaded, cpu)
                notes.append(cpu.reason)
                continue
        used_precision = {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[amp]
        probs[i : i + len(p)] = p
        i += len(p)
        progress.update(i / n, f"{text}: {i}/{n} slices")
    return probs, bs, used_precision, notes


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
        The study lacks a phase the model reads, or has no paired slices.
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
            choice = select_device(device)
            try:
                place_model(model, choice)
            except Exception as exc:
                if not (choice.is_cuda and is_cuda_failure(exc)):
                    raise
                choice = cpu_fallback(choice, exc, "moving the model to the GPU")
                place_model(model, choice)
            if choice.fallback:
                notes.append(choice.reason)
    progress.update(0.0, "preparing slices")
    inputs = preprocess_study(study, model.config)
    t1 = time.perf_counter()
    bs = batch_size or (64 if model.device_choice.is_cuda else 16)
    probs, bs, used_precision, batch_notes = run_batches(
        model, inputs.x, sub_progress(progress, 0.02, 1.0), bs, precision)
    notes += batch_notes
    t2 = time.perf_counter()

    slices = []
    for row, k in enumerate(inputs.pair_indices):
        pair = study.pairs[k]
        p = float(probs[row])
        slices.append(SliceResult(
            pair_index=k, z_ref=float(pair.z_ref),
            z_by_phase={ph: float(pair.z_mm[ph]) for ph in model.config.phases if ph in pair.z_mm},
            index_by_phase={ph: int(pair.index[ph]) for ph in model.config.phases},
            probability=p, label=slice_label(p)))
    vote = majority_vote([s.probability for s in slices])

    warnings: list[str] = []
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
    )
