"""Fitting the patient head (:mod:`app.inference.patient_head`) of a trained lesion-head model.

The network is not retrained: its slice outputs on a scored cohort become one feature vector
per patient, a logistic regression (L2 penalty by cross-validation,
:class:`app.training.ladder.Logistic`) is fitted on them, and the patient call's threshold is
chosen — balanced sensitivity and specificity (:func:`app.training.threshold.best_balanced`) —
on a calibration cohort the regression was not fitted on, or on its out-of-fold probabilities
when none is given. The test cohort is never used here.

Which cohort to fit on was measured (docs/learning.md): for demo model 2026.3, a regression on
the 600 patients the network trained on, judged on 300 fresh patients (seed 104), reached an AUC
of 0.729 with all features against 0.705 for the network's own score; fitted on 240 fresh
patients only (cross-validation within seed 104) it reached 0.70 — the number of patients
matters more than whether the network saw them. Since recipe 2026.6 the head has more measures
of the tumour (spread, rim, number of lesions) and leaves the network's own score out by default:
with those measures, that score — optimistic on the patients the network trained on — made the
fit worse on fresh patients (docs/learning.md, "Heads that see more of the tumour").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app import stats
from app.inference.config import ModelConfig
from app.inference.patient_head import PatientHead, feature_names, named_features, patient_features
from app.training.evaluate import ScoredCohort
from app.training.ladder import Logistic
from app.training.threshold import ThresholdChoice, best_balanced


class HeadFitError(ValueError):
    """The cohort cannot give a patient head (no lesion-head outputs, one class only, ...)."""


def network_only(config: ModelConfig) -> ModelConfig:
    """``config`` without a patient head: how a cohort is scored to fit (or choose) one — the
    network's own outputs, whatever head the file already has."""
    return dataclasses.replace(config, aggregation="lesion_weighted", patient_head=None)


def cohort_features(scored: ScoredCohort) -> np.ndarray:
    """``[patients, len(feature_names(phases))]``: each patient's features from a cohort scored
    by a lesion-head model (:func:`app.training.evaluate.score_slices`)."""
    areas, measures = scored.extra.get("lesion_area"), scored.extra.get("measures")
    if areas is None or measures is None or not scored.phases:
        raise HeadFitError("the cohort was not scored by a lesion-head model: a patient head needs "
                           "its lesion areas and measures")
    rows = []
    for i in range(len(scored.patient_ids)):
        sel = scored.slice_group == i
        if not sel.any():
            raise HeadFitError(f"patient {scored.patient_ids[i]} has no slice")
        rows.append(patient_features(scored.slice_probs[sel], areas[sel], measures[sel], scored.phases))
    return np.vstack(rows)


@dataclass(frozen=True)
class HeadFit:
    """A fitted patient head and the figures that justify it (all on non-test patients)."""

    head: PatientHead
    fit_patients: int
    fit_auc_out_of_fold: float
    calibration_auc: float | None
    threshold: ThresholdChoice
    fitted_towards: str = "0/1 labels"

    def as_dict(self) -> dict[str, Any]:
        return {"head": self.head.to_dict(), "fit_patients": self.fit_patients,
                "fitted_towards": self.fitted_towards,
                "fit_auc_out_of_fold": self.fit_auc_out_of_fold,
                "calibration_auc": self.calibration_auc, "threshold": self.threshold.as_dict()}

    def summary(self) -> str:
        cal = (f"; calibration AUC {self.calibration_auc:.3f}" if self.calibration_auc is not None else "")
        t = self.threshold
        return (f"patient head on {len(self.head.features)} features fitted on {self.fit_patients} "
                f"patients towards {self.fitted_towards} (out-of-fold AUC "
                f"{self.fit_auc_out_of_fold:.3f}{cal}); threshold {t.threshold:g}: sensitivity "
                f"{t.sensitivity:.3f}, specificity {t.specificity:.3f} on {t.chosen_on}")


def fit_patient_head(fit: ScoredCohort, fit_name: str, *, features: Sequence[str] | None = None,
                     calibration: ScoredCohort | None = None, calibration_name: str = "",
                     seed: int = 0, soft_targets: np.ndarray | None = None,
                     soft_target_name: str = "soft targets") -> HeadFit:
    """Fit the regression on ``fit`` and choose its threshold (see the module docstring).

    ``features`` is a subset of :func:`~app.inference.patient_head.feature_names` (default:
    the ``measures`` set of :func:`~app.inference.patient_head.named_features`, every measure
    but the network's own score). ``soft_targets``: one probability per patient of ``fit`` that
    the regression is fitted towards instead of the 0/1 label (``soft_target_name``, e.g. a
    synthetic cohort's ``p_true``, as ``train --soft-target-column``); AUCs and the threshold
    still use the labels.
    """
    names = feature_names(fit.phases)
    chosen = tuple(features) if features else named_features("measures", fit.phases)
    unknown = [f for f in chosen if f not in names]
    if unknown:
        raise HeadFitError(f"unknown patient feature(s) {', '.join(unknown)}; expected some of {', '.join(names)}")
    cols = [names.index(f) for f in chosen]
    y = np.asarray(fit.patient_labels, dtype=np.int64)
    if y.min() == y.max():
        raise HeadFitError(f"{fit_name} has patients of one class only: no patient head can be fitted")
    x = cohort_features(fit)[:, cols]
    try:
        reg = Logistic.fit_cv(x, y, seed=seed, target=soft_targets)
    except ValueError as exc:
        raise HeadFitError(f"{fit_name}: {soft_target_name}: {exc}") from exc
    oof = Logistic.out_of_fold(x, y, reg.l2, seed=seed, target=soft_targets)
    head = PatientHead(chosen, tuple(reg.mean), tuple(reg.scale), tuple(reg.weights), reg.bias, 0.5,
                       f"{fit_name} ({y.size} patients)")
    if calibration is not None:
        y_cal = np.asarray(calibration.patient_labels, dtype=np.int64)
        probs = np.array([head.probability(f, fit.phases) for f in cohort_features(calibration)])
        cal_auc: float | None = stats.auc(y_cal, probs)
        where = f"calibration cohort {calibration_name} ({y_cal.size} patients)"
    else:
        y_cal, probs, cal_auc = y, oof, None
        where = f"out-of-fold probabilities of {fit_name} ({y.size} patients)"
    try:
        choice = best_balanced(y_cal, lambda t: (probs > t).astype(np.int64), where)
    except ValueError as exc:
        raise HeadFitError(f"{where}: {exc}") from exc
    towards = "0/1 labels" if soft_targets is None else soft_target_name
    return HeadFit(dataclasses.replace(head, threshold=choice.threshold), int(y.size), stats.auc(y, oof),
                   cal_auc, choice, towards)
