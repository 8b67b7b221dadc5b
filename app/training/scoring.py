"""Scoring a trained network on prepared slice triplets, the way the app's predictor decides.

Used by the training loop (validation after every epoch) and by :mod:`app.training.evaluate`
(held-out cohorts). Kept apart from :mod:`app.training.trainer` so that evaluation does not
depend on the loop's machinery (DDP, checkpoints, augmentation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from app.inference.patient_head import PatientHead, n_measures
from app.training.dataset import SliceSet


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model  # type: ignore[return-value]


@dataclass
class SliceScores:
    """Per slice triplet: the responder probability, and for a lesion-head model the lesion
    area it saw and its input-resolution measures (None otherwise) — what the app's predictor
    aggregates (:func:`app.inference.result.aggregate`)."""

    probs: np.ndarray
    areas: np.ndarray | None = None
    measures: np.ndarray | None = None


@torch.no_grad()
def predict_scores(model: nn.Module, x: torch.Tensor, phase_idx: list[int], device: torch.device,
                   batch_size: int = 64, amp: bool = False) -> SliceScores:
    """:class:`SliceScores` of every slice triplet of ``x`` ``[N, 3, S, S]`` (eval mode)."""
    model.eval()
    lesion_head = getattr(unwrap(model), "seg", None) is not None
    out = np.empty(x.shape[0], dtype=np.float64)
    areas = np.empty(x.shape[0], dtype=np.float64) if lesion_head else None
    measures = np.empty((x.shape[0], n_measures(len(phase_idx))), dtype=np.float64) if lesion_head else None
    idx_t = torch.tensor(phase_idx)
    for i in range(0, x.shape[0], batch_size):
        xb = x[i:i + batch_size].index_select(1, idx_t.to(x.device))
        xb = xb.to(device, non_blocking=True).float().unsqueeze(2)
        with torch.autocast(device_type=device.type, dtype=amp_dtype(device),
                            enabled=amp and device.type == "cuda"):
            if areas is not None and measures is not None:
                res = model(xb, details=True)
                logits = res.logits
                areas[i:i + xb.shape[0]] = res.lesion_area.float().cpu().numpy()
                measures[i:i + xb.shape[0]] = res.measures.float().cpu().numpy()
            else:
                logits = model(xb)
        out[i:i + xb.shape[0]] = torch.softmax(logits.float(), dim=1)[:, 1].cpu().numpy()
    return SliceScores(out, areas, measures)


def predict_proba(model: nn.Module, x: torch.Tensor, phase_idx: list[int], device: torch.device,
                  batch_size: int = 64, amp: bool = False) -> np.ndarray:
    """Responder probability of every slice triplet of ``x`` ``[N, 3, S, S]`` (eval mode)."""
    return predict_scores(model, x, phase_idx, device, batch_size, amp).probs


def patient_scores(probs: np.ndarray, group: np.ndarray, n_patients: int,
                   areas: np.ndarray | None = None, aggregation: str = "vote",
                   threshold: float = 0.5, *, measures: np.ndarray | None = None,
                   patient_head: PatientHead | None = None,
                   phases: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Per patient: the score (mean probability, lesion-weighted for ``lesion_weighted``, the
    patient head's for ``patient_head``) and the call (1 = responder) —
    :func:`app.inference.result.aggregate` per patient, exactly as the app's predictor
    decides."""
    from app.inference.result import RESPONDER, aggregate

    score = np.zeros(n_patients, dtype=np.float64)
    call = np.zeros(n_patients, dtype=np.int64)
    for i in range(n_patients):
        sel = group == i
        if not sel.any():
            continue
        agg = aggregate([float(p) for p in probs[sel]],
                        [float(a) for a in areas[sel]] if areas is not None else None, aggregation,
                        threshold, measures=measures[sel] if measures is not None else None,
                        patient_head=patient_head, phases=tuple(phases))
        score[i] = agg.vote.mean_probability
        call[i] = int(agg.vote.label == RESPONDER)
    return score, call


def amp_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def val_metrics(probs: np.ndarray, vs: SliceSet, areas: np.ndarray | None = None,
                 aggregation: str = "vote") -> dict[str, float]:
    """Slice-level loss/accuracy and patient-level AUC / accuracy of the model's aggregation
    (the mean probability and majority vote for the paper's; lesion-weighted otherwise)."""
    from app.stats import StatsError, auc

    y = vs.y.numpy()
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    acc = float(np.mean((probs > 0.5) == (y == 1)))
    score, call = patient_scores(probs, vs.group.numpy(), vs.n_patients, areas, aggregation)
    try:
        pauc = auc(vs.patient_labels, score)
    except StatsError:
        pauc = float("nan")
    pacc = float(np.mean(call == vs.patient_labels))
    return {"loss": loss, "accuracy": acc, "auc": pauc, "patient_accuracy": pacc}
