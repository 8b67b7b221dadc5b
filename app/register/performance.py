"""Local performance of each model version against the outcomes entered at this site.

The site's own validation, offline: once RECIST outcomes exist, the register computes per model
version the AUC with its 95 % CI (DeLong), and sensitivity, specificity and accuracy with 95 %
Wilson intervals, next to the figures the paper reported for its validation set.

Decisions (documented for the user in the performance view):

* The positive class is a responder, RECIST CR or PR; SD and PD are non-responders.
* The AUC is computed from the prediction's score (the mean per-slice probability); the
  threshold metrics from its label (the majority vote), i.e. the decision the user was shown.
* A study predicted several times by the same model version counts once (its latest prediction),
  so that re-runs do not weigh a patient twice.

The statistics are small and numpy-only on purpose: ``app.register`` sits below
``app.training`` in the layers and must stay light (no torch, no scikit-learn).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select

from app.register.models import Outcome, Prediction
from app.register.records import RESPONDER_CATEGORIES

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class ReferenceFigures:
    """What the paper reported (validation set, n = 48) for one model."""

    model: str
    auc: float
    auc_ci: tuple[float, float]
    accuracy: float
    sensitivity: float
    specificity: float
    n: int = 48
    source: str = "Liao et al. 2024, CSBJ, validation set"


#: The paper's validation figures (see ``/work/shared/paper-method.md``), by phase combination.
PAPER_REFERENCE: dict[str, ReferenceFigures] = {
    r.model: r
    for r in (
        ReferenceFigures("portal", 0.719, (0.620, 0.818), 0.671, 0.706, 0.794),
        ReferenceFigures("plain", 0.688, (0.633, 0.743), 0.640, 0.692, 0.777),
        ReferenceFigures("arterial", 0.708, (0.626, 0.790), 0.637, 0.698, 0.650),
        ReferenceFigures("arterial+portal", 0.740, (0.675, 0.805), 0.682, 0.810, 0.816),
        ReferenceFigures("arterial+plain", 0.719, (0.684, 0.754), 0.689, 0.715, 0.742),
        ReferenceFigures("plain+portal", 0.760, (0.716, 0.804), 0.664, 0.760, 0.780),
        ReferenceFigures("three-phase", 0.802, (0.753, 0.851), 0.725, 0.829, 0.803),
    )
}

#: The app runs the three-phase model; its paper figures are the default comparison.
DEFAULT_REFERENCE = PAPER_REFERENCE["three-phase"]


@dataclass(frozen=True)
class PerformanceRow:
    """Local performance of one model version.

    Metrics are None where the data cannot support them (AUC needs both classes, sensitivity
    needs a responder, specificity a non-responder).
    """

    model_name: str
    model_version: str
    n: int
    n_responders: int
    auc: float | None
    auc_ci: tuple[float, float] | None
    sensitivity: float | None
    sensitivity_ci: tuple[float, float] | None
    specificity: float | None
    specificity_ci: tuple[float, float] | None
    accuracy: float | None
    accuracy_ci: tuple[float, float] | None
    reference: ReferenceFigures = DEFAULT_REFERENCE


def auc_delong(y: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray
               ) -> tuple[float, float]:
    """AUC (Mann–Whitney, ties count one half) and its DeLong standard error.

    The computation is :func:`app.stats.delong_variance` (midrank algorithm, O(n log n), no
    pairwise matrix), shared with the training evaluation so both report the same numbers.

    Raises
    ------
    ValueError
        When ``y`` lacks one of the classes or the lengths differ.
    """
    from app.stats import StatsError, delong_variance  # scipy: only when performance is asked

    try:
        auc, var = delong_variance(y, scores)
    except StatsError as exc:
        raise ValueError(exc.message) from exc
    return auc, math.sqrt(max(var, 0.0))


def wilson_ci(successes: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion (stays inside [0, 1], sane for small n)."""
    if total <= 0:
        raise ValueError("no observations")
    p = successes / total
    denom = 1.0 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def performance_row(model_name: str, model_version: str, y: Sequence[int],
                    predicted: Sequence[int], scores: Sequence[float],
                    reference: ReferenceFigures = DEFAULT_REFERENCE) -> PerformanceRow:
    """Metrics of one model version from outcomes ``y`` (1 = CR/PR), labels and scores."""
    ya = np.asarray(y, dtype=np.int8)
    pa = np.asarray(predicted, dtype=np.int8)
    n = int(len(ya))
    n_pos = int(ya.sum())
    n_neg = n - n_pos
    tp = int(((ya == 1) & (pa == 1)).sum())
    tn = int(((ya == 0) & (pa == 0)).sum())
    auc = auc_ci = None
    if n_pos and n_neg:
        auc, se = auc_delong(ya, scores)
        if n_pos >= 2 and n_neg >= 2:  # DeLong's variance is degenerate (0) below that
            auc_ci = (max(0.0, auc - Z_95 * se), min(1.0, auc + Z_95 * se))
    sens = tp / n_pos if n_pos else None
    spec = tn / n_neg if n_neg else None
    acc = (tp + tn) / n if n else None
    return PerformanceRow(
        model_name=model_name,
        model_version=model_version,
        n=n,
        n_responders=n_pos,
        auc=auc,
        auc_ci=auc_ci,
        sensitivity=sens,
        sensitivity_ci=wilson_ci(tp, n_pos) if n_pos else None,
        specificity=spec,
        specificity_ci=wilson_ci(tn, n_neg) if n_neg else None,
        accuracy=acc,
        accuracy_ci=wilson_ci(tp + tn, n) if n else None,
        reference=reference,
    )


def performance_rows(conn: Connection) -> list[PerformanceRow]:
    """:func:`performance_row` for every model version, from the cases with a current outcome
    (a study predicted several times by one model version counts once: its latest prediction).
    """
    latest = (select(func.max(Outcome.id)).where(Outcome.prediction_ref == Prediction.id)
              .correlate(Prediction).scalar_subquery())
    stmt = (select(Prediction.id, Prediction.study_ref, Prediction.model_name,
                   Prediction.model_version, Prediction.label, Prediction.score,
                   Outcome.category)
            .join(Outcome, Outcome.id == latest).order_by(Prediction.id))
    rows = conn.execute(stmt).all()
    per_study: dict[tuple[str, str, int], Any] = {}
    for r in rows:  # ordered by id: the latest prediction of a study wins
        per_study[(r.model_name, r.model_version, r.study_ref)] = r
    groups: dict[tuple[str, str], list[Any]] = {}
    for (name, version, _), r in per_study.items():
        groups.setdefault((name, version), []).append(r)
    result = []
    for (name, version), rs in sorted(groups.items()):
        y = [1 if r.category in RESPONDER_CATEGORIES else 0 for r in rs]
        pred = [1 if r.label == "responder" else 0 for r in rs]
        result.append(performance_row(name, version, y, pred, [r.score for r in rs]))
    return result
