"""Evaluation of a model on a labelled cohort: slice- and patient-level statistics, reports.

Scores come from the same preprocessed slice triplets the trainer uses (one code path from
DICOM to tensor, :mod:`app.training.cohort`). For every patient:

* each slice triplet gets a responder probability (softmax of the two logits) and a call
  (responder when the probability is > 0.5, :func:`app.inference.result.slice_label`);
* the **patient call** is the majority of the slice calls, the paper's B-voting, with the
  predictor's tie rule — :func:`app.inference.result.majority_vote` itself, so that evaluation
  decides exactly as ``predict`` does;
* the **patient score** used for the ROC/AUC is the mean slice probability — it orders patients
  more finely than the vote fraction, which has many ties with ~30 slices.

Statistics (:mod:`app.stats`): AUC with DeLong 95 % CI, accuracy, sensitivity,
specificity, precision and F1 with 1,000-resample stratified bootstrap CIs, at patient level and
at slice level. Slice-level bootstrap resamples whole patients, because the slices of one
patient are correlated; the slice-level DeLong CI treats slices as independent and is therefore
too narrow — it is reported for comparison with the paper, labelled as such.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from app import stats
from app.inference.config import AGGREGATION_RULES, ModelConfig
from app.inference.patient_head import PatientHead, n_measures
from app.progress import NULL_PROGRESS, Progress
from app.training.cam_metrics import CamMassReport, format_cam_mass
from app.training.cohort import PreparedCohort, has_column, phase_indices, probability_column
from app.training.dataset import SliceSet


@dataclass
class ScoredCohort:
    """Per-slice probabilities and per-patient aggregates of one model on one cohort."""

    patient_ids: list[str]
    patient_labels: np.ndarray
    slice_probs: np.ndarray
    slice_group: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    aggregation: str = "vote"
    threshold: float = 0.5
    #: for ``patient_head`` aggregation: the fitted head and the model's phases
    patient_head: PatientHead | None = None
    phases: tuple[str, ...] = ()

    @property
    def slice_labels(self) -> np.ndarray:
        return self.patient_labels[self.slice_group]

    @property
    def _aggregated(self) -> tuple[np.ndarray, np.ndarray]:
        from app.training.scoring import patient_scores

        return patient_scores(self.slice_probs, self.slice_group, len(self.patient_ids),
                              self.extra.get("lesion_area"), self.aggregation, self.threshold,
                              measures=self.extra.get("measures"), patient_head=self.patient_head,
                              phases=self.phases)

    @property
    def patient_mean_prob(self) -> np.ndarray:
        """The patient score: mean slice probability, or lesion-area weighted for a model with
        ``lesion_weighted`` aggregation, or the patient head's probability (what its prediction
        reports)."""
        if self.aggregation != "vote":
            return self._aggregated[0]
        n = len(self.patient_ids)
        cnt = np.bincount(self.slice_group, minlength=n)
        return np.bincount(self.slice_group, weights=self.slice_probs, minlength=n) / \
            np.maximum(cnt, 1)

    @property
    def patient_vote_fraction(self) -> np.ndarray:
        n = len(self.patient_ids)
        cnt = np.bincount(self.slice_group, minlength=n)
        votes = np.bincount(self.slice_group, weights=(self.slice_probs > self.threshold).astype(float),
                            minlength=n)
        return votes / np.maximum(cnt, 1)

    @property
    def patient_call(self) -> np.ndarray:
        """The predictor's patient call (1 = responder): its majority vote, the lesion-weighted
        vote, or the patient head's call, by the model's aggregation."""
        from app.inference.result import RESPONDER, majority_vote

        if self.aggregation != "vote" or self.threshold != 0.5:
            return self._aggregated[1]

        out = np.zeros(len(self.patient_ids), dtype=np.int64)
        for i in range(len(self.patient_ids)):
            probs = self.slice_probs[self.slice_group == i]
            if probs.size:
                out[i] = int(majority_vote([float(p) for p in probs]).label == RESPONDER)
        return out


def score_slices(model: nn.Module, config: ModelConfig, data: SliceSet, *,
                 device: str | torch.device = "cpu", batch_size: int = 64,
                 progress: Progress = NULL_PROGRESS) -> ScoredCohort:
    """Responder probability of every slice triplet of ``data`` under ``model`` (eval mode)."""
    from app.training.scoring import predict_scores
    from app.training.trainer import resolve_device

    dev = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    model = model.to(dev).eval()
    pidx = phase_indices(config.phases)
    n = len(data)
    probs = np.empty(n, dtype=np.float64)
    lesion_head = config.head == "lesion"
    areas = np.empty(n, dtype=np.float64) if lesion_head else None
    measures = np.empty((n, n_measures(config.n_phases)), dtype=np.float64) if lesion_head else None
    chunk = max(batch_size * 8, 1)
    for i in range(0, n, chunk):
        progress.check()
        scores = predict_scores(model, data.x[i:i + chunk], pidx, dev, batch_size)
        probs[i:i + chunk] = scores.probs
        if areas is not None and scores.areas is not None:
            areas[i:i + chunk] = scores.areas
        if measures is not None and scores.measures is not None:
            measures[i:i + chunk] = scores.measures
        progress.update(min(1.0, (i + chunk) / max(n, 1)), f"scored {min(n, i + chunk)}/{n}")
    extra = {"lesion_area": areas, "measures": measures} if areas is not None and measures is not None else {}
    return ScoredCohort(list(data.patient_ids), np.asarray(data.patient_labels), probs,
                        data.group.numpy().astype(np.int64), extra, config.aggregation,
                        config.threshold, config.patient_head, config.phases)


@dataclass
class LevelReport:
    """Statistics at one level (patient or slice)."""

    level: str
    n: int
    n_pos: int
    auc: stats.AUCResult
    bootstrap: stats.BootstrapResult
    roc: stats.RocCurve
    threshold: float
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "n": self.n, "n_pos": self.n_pos,
                "auc_delong": self.auc.as_dict(), "bootstrap": self.bootstrap.as_dict(),
                "threshold": self.threshold, "note": self.note, "roc": self.roc.as_dict()}


@dataclass
class EvaluationReport:
    """Patient- and slice-level evaluation of one model, optionally compared with a second."""

    model_name: str
    patient: LevelReport
    slice: LevelReport
    comparison: dict[str, Any] | None = None
    bayes: dict[str, Any] | None = None
    cohort: dict[str, Any] = field(default_factory=dict)
    #: Grad-CAM mass inside the liver and the lesions, when the cohort has label maps.
    cam_mass: CamMassReport | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model_name, "cohort": self.cohort,
                "patient_level": self.patient.as_dict(), "slice_level": self.slice.as_dict(),
                "comparison": self.comparison, "bayes_optimal": self.bayes,
                "gradcam_mass": self.cam_mass.as_dict() if self.cam_mass is not None else None}


def _patient_threshold(scored: ScoredCohort) -> float:
    """The threshold of the patient's call: the patient head's own, else the slices' (their
    vote decides)."""
    return scored.patient_head.threshold if scored.patient_head is not None else scored.threshold


def _patient_rule(scored: ScoredCohort) -> str:
    """How the patient score and call were made, in words, as predict() makes them."""
    rule = AGGREGATION_RULES[scored.aggregation]
    inputs = ""
    if scored.patient_head is not None:
        inputs = f" (logistic regression on {', '.join(scored.patient_head.features)})"
    return (f"score = {rule.probability}{inputs}; call = {rule.call_text(_patient_threshold(scored))}, as "
            "predict() does")


def evaluate_scored(scored: ScoredCohort, *, n_boot: int = 1000, seed: int = 0,
                    level: float = 0.95, model_name: str = "model") -> EvaluationReport:
    """Patient- and slice-level statistics of a scored cohort (see the module docstring)."""
    y_p = scored.patient_labels
    s_p = scored.patient_mean_prob
    c_p = scored.patient_call
    patient = LevelReport(
        "patient", int(y_p.size), int(y_p.sum()), stats.delong_ci(y_p, s_p, level),
        stats.bootstrap_metrics(y_p, s_p, c_p, n_boot=n_boot, seed=seed, level=level),
        stats.roc_curve(y_p, s_p), _patient_threshold(scored), _patient_rule(scored))
    y_s = scored.slice_labels
    s_s = scored.slice_probs
    slice_ = LevelReport(
        "slice", int(y_s.size), int(y_s.sum()), stats.delong_ci(y_s, s_s, level),
        stats.bootstrap_metrics(y_s, s_s, (s_s > scored.threshold).astype(np.int64), n_boot=n_boot,
                                seed=seed, level=level, groups=scored.slice_group),
        stats.roc_curve(y_s, s_s), scored.threshold,
        "bootstrap resamples whole patients; the DeLong CI treats slices as independent and "
        "is too narrow")
    return EvaluationReport(model_name, patient, slice_)


def compare_scored(a: ScoredCohort, b: ScoredCohort, level: float = 0.95) -> dict[str, Any]:
    """DeLong's paired test of two models' patient-level AUCs on the same patients."""
    if a.patient_ids != b.patient_ids:
        raise stats.StatsError("the two models were scored on different patients")
    t = stats.delong_test(a.patient_labels, a.patient_mean_prob, b.patient_mean_prob, level)
    return {"test": "DeLong paired, patient level (mean slice probability)", **t.as_dict()}


def bayes_optimal(labels: np.ndarray, p_true: np.ndarray, level: float = 0.95
                  ) -> dict[str, Any]:
    """AUC that the generating probabilities themselves reach on this cohort.

    For a synthetic cohort the label was drawn from ``p_true``; no image model can rank the
    patients better on average, so this is the ceiling a model's AUC is judged against.
    """
    r = stats.delong_ci(labels, p_true, level)
    return {"auc": r.auc, "ci_low": r.ci_low, "ci_high": r.ci_high,
            "source": "AUC of the generator's p_true against the drawn labels"}


def cohort_bayes_optimal(prepared: PreparedCohort, labels: np.ndarray, column: str = "p_true"
                         ) -> dict[str, Any] | None:
    """:func:`bayes_optimal` of a scored cohort whose CSV carries the generator's probability
    (``labels`` in the prepared studies' order), None for a cohort without it (a real one)."""
    if not has_column(prepared, column):
        return None
    return bayes_optimal(labels, probability_column(prepared, column))


# --------------------------------------------------------------------------------------------
# output


def _fmt_iv(iv: stats.Interval) -> str:
    if math.isnan(iv.value):
        return "n/a"
    return f"{iv.value:.3f} ({iv.ci_low:.3f}–{iv.ci_high:.3f})"


def format_report(rep: EvaluationReport) -> str:
    """A readable plain-text report."""
    lines = [f"Evaluation of {rep.model_name}"]
    if rep.cohort:
        lines.append("cohort: " + ", ".join(f"{k} {v}" for k, v in rep.cohort.items()
                                            if not isinstance(v, (dict, list))))
    for lv in (rep.patient, rep.slice):
        a = lv.auc
        lines += ["", f"{lv.level}-level (n = {lv.n}, responders {lv.n_pos})",
                  f"  AUC {a.auc:.3f} (95 % CI {a.ci_low:.3f}–{a.ci_high:.3f}, DeLong, "
                  f"SE {a.se:.3f})",
                  f"  AUC bootstrap CI: {_fmt_iv(lv.bootstrap.intervals['auc'])}"]
        for k in stats.METRICS:
            lines.append(f"  {k:<12} {_fmt_iv(lv.bootstrap.intervals[k])}")
        lines.append(f"  ({lv.bootstrap.n_boot} stratified bootstrap resamples by "
                     f"{lv.bootstrap.unit}; {lv.note})")
    if rep.bayes:
        b = rep.bayes
        ratio = rep.patient.auc.auc / b["auc"] if b["auc"] > 0 else float("nan")
        lines += ["", f"Bayes-optimal AUC of this cohort: {b['auc']:.3f} "
                      f"({b['ci_low']:.3f}–{b['ci_high']:.3f}); model / Bayes = {ratio:.3f}"]
    if rep.cam_mass is not None:
        lines += ["", format_cam_mass(rep.cam_mass).rstrip("\n")]
    if rep.comparison:
        c = rep.comparison
        lines += ["", f"DeLong test vs second model: AUC {c['auc1']:.3f} vs {c['auc2']:.3f}, "
                      f"difference {c['diff']:+.3f} (95 % CI {c['ci_low']:+.3f} to "
                      f"{c['ci_high']:+.3f}), z = {c['z']:.2f}, p = {c['p_value']:.4f}"]
    return "\n".join(lines) + "\n"


def write_report(rep: EvaluationReport, out_dir: str | Path,
                 second: EvaluationReport | None = None) -> dict[str, Path]:
    """Write ``evaluation.json``, ``evaluation.txt`` and the ROC PNGs into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "evaluation.json", "text": out / "evaluation.txt",
             "roc_patient": out / "roc_patient.png", "roc_slice": out / "roc_slice.png"}
    doc = rep.as_dict()
    if second is not None:
        doc["second_model"] = second.as_dict()
    paths["json"].write_text(json.dumps(doc, indent=1, default=_json_default), encoding="utf-8")
    text = format_report(rep)
    if second is not None:
        text += "\n" + format_report(second)
    paths["text"].write_text(text, encoding="utf-8")
    for lvl, key in (("patient", "roc_patient"), ("slice", "roc_slice")):
        curves = []
        for r in (rep, second):
            if r is None:
                continue
            lv = r.patient if lvl == "patient" else r.slice
            curves.append((f"{r.model_name[:24]} AUC {lv.auc.auc:.3f}", lv.roc))
        stats.draw_roc_png(curves, paths[key], title=f"ROC, {lvl} level")
    return paths


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, float) and not math.isfinite(o):
        return None
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
