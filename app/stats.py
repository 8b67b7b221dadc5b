"""Evaluation statistics: AUC (rank / Mann–Whitney), DeLong variance, CI and paired test,
stratified bootstrap CIs for threshold metrics, ROC curve points and the Youden threshold.

numpy + scipy only (no scikit-learn, which is not a dependency). A core module below every
package that needs it: training's evaluation and the register's local performance view use the
same functions. Everything works on plain
arrays: ``y`` is 0/1 (1 = responder, the positive class), ``scores`` are higher-means-positive.

Conventions (decided here, documented in the evaluation report):

* AUC is the Mann–Whitney probability ``P(score_pos > score_neg) + ½ P(tie)``, i.e. the area
  under the empirical ROC curve with ties drawn as diagonal segments (the same number as the
  trapezoidal area and as pROC's / scikit-learn's AUC).
* DeLong variance uses the structural components of DeLong, DeLong & Clarke-Pearson (1988),
  computed with the midrank algorithm of Sun & Xu (2014), O(n log n).
* The DeLong 95 % CI is "plain" by default (AUC ± z·SE, clipped to [0, 1]), which is what pROC
  and MedCalc print and hence comparable with the paper; ``method="logit"`` builds the interval
  on logit(AUC) (delta method), which keeps it inside (0, 1) and covers better near AUC = 1.
* Bootstrap CIs are percentile intervals over ``n_boot`` (default 1,000) resamples that keep
  the number of positives and negatives fixed (stratified), seeded, so that a replicate never
  lacks a class. With ``groups`` (e.g. patient ids for slice-level data) whole groups are
  resampled, so that correlated slices of one patient stay together and the interval is not
  falsely narrow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from app.errors import InputError

#: Names of the threshold metrics, in report order.
METRICS: tuple[str, ...] = ("accuracy", "sensitivity", "specificity", "precision", "f1")


class StatsError(InputError):
    """The data cannot support the statistic (one class only, length mismatch, NaN scores)."""


# --------------------------------------------------------------------------------------------
# input checks


def _as_labels_scores(y: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert; both classes must be present for any ROC statistic."""
    y_arr = np.asarray(y)
    s_arr = np.asarray(scores, dtype=np.float64)
    if y_arr.ndim != 1 or s_arr.ndim != 1 or y_arr.shape != s_arr.shape:
        raise StatsError(f"labels and scores must be 1-D of equal length "
                         f"(got {y_arr.shape} and {s_arr.shape})")
    if not np.all(np.isin(y_arr, (0, 1))):
        raise StatsError("labels must be 0 (non-responder) or 1 (responder)")
    if not np.all(np.isfinite(s_arr)):
        raise StatsError("scores contain NaN or infinite values")
    y_arr = y_arr.astype(np.int8)
    n_pos = int(y_arr.sum())
    if n_pos == 0 or n_pos == y_arr.size:
        raise StatsError(f"ROC statistics need both classes (got {n_pos} responders among "
                         f"{y_arr.size})")
    return y_arr, s_arr


# --------------------------------------------------------------------------------------------
# AUC and DeLong


def auc(y: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve from ranks (Mann–Whitney U / (m·n)).

    Parameters
    ----------
    y:
        0/1 labels, 1 = positive (responder).
    scores:
        Higher means more likely positive.

    Returns
    -------
    float
        ``P(score_pos > score_neg) + ½ P(tie)``; ties get midranks, so the value equals the
        trapezoidal area under the empirical ROC curve.
    """
    y_arr, s_arr = _as_labels_scores(y, scores)
    return _auc_unchecked(y_arr, s_arr)


def expected_auc(p_true: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """The AUC ``scores`` reach, averaged over the labels a cohort with true probabilities
    ``p_true`` could draw (synthetic cohorts only: their generator knows ``p_true``).

    Every ordered pair (i, j) counts with the chance that i is a responder and j is not,
    ``p_i (1 - p_j)``; the value is the weighted share of pairs ranked right (ties ½). Two
    models compared on a few hundred patients differ by the noise of the drawn labels as much as
    by their ranking; this removes the labels' part, so a choice between feature sets is not
    made on the luck of one draw. (A ratio of expectations, not the expectation of the ratio:
    they agree closely for cohorts of this size.)
    """
    prob = np.asarray(p_true, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if prob.shape != s.shape or prob.size < 2:
        raise ValueError("expected_auc needs as many probabilities as scores, at least two")
    if not (np.isfinite(prob).all() and np.isfinite(s).all()) or prob.min() < 0 or prob.max() > 1:
        raise ValueError("expected_auc needs finite scores and probabilities in [0, 1]")
    pair = prob[:, None] * (1.0 - prob[None, :])
    np.fill_diagonal(pair, 0.0)
    right = (s[:, None] > s[None, :]) + 0.5 * (s[:, None] == s[None, :])
    return float((pair * right).sum() / pair.sum())


def _auc_unchecked(y: np.ndarray, s: np.ndarray) -> float:
    ranks = rankdata(s)  # midranks for ties
    pos = y == 1
    m = int(pos.sum())
    n = y.size - m
    return float((ranks[pos].sum() - m * (m + 1) / 2.0) / (m * n))


def delong_placements(y: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray
                      ) -> tuple[float, np.ndarray, np.ndarray]:
    """DeLong's structural components (placement values) by the midrank algorithm.

    ``V10[i]`` is the fraction of negatives that positive ``i`` outranks (ties count ½),
    ``V01[j]`` the fraction of positives that outrank negative ``j``; both average to the AUC.

    Returns
    -------
    (auc, V10, V01)
    """
    y_arr, s_arr = _as_labels_scores(y, scores)
    pos = y_arr == 1
    x = s_arr[pos]
    yy = s_arr[~pos]
    m, n = x.size, yy.size
    tz = rankdata(np.concatenate([x, yy]))
    tx = rankdata(x)
    ty = rankdata(yy)
    # Midrank among all minus midrank among positives = number of negatives below (+½ ties).
    v10 = (tz[:m] - tx) / n
    v01 = 1.0 - (tz[m:] - ty) / m
    return float(v10.mean()), v10, v01


@dataclass(frozen=True)
class AUCResult:
    """AUC with its DeLong standard error and confidence interval."""

    auc: float
    se: float
    ci_low: float
    ci_high: float
    level: float
    method: str
    n_pos: int
    n_neg: int

    def as_dict(self) -> dict[str, float | int | str]:
        return {"auc": self.auc, "se": self.se, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "level": self.level, "method": self.method, "n_pos": self.n_pos,
                "n_neg": self.n_neg}


def _z(level: float) -> float:
    from scipy.stats import norm

    if not 0.0 < level < 1.0:
        raise StatsError(f"confidence level must lie in (0, 1), got {level}")
    return float(norm.ppf(0.5 + level / 2.0))


def delong_variance(y: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray
                    ) -> tuple[float, float]:
    """Return ``(auc, variance)`` with DeLong's variance ``S10/m + S01/n``."""
    a, v10, v01 = delong_placements(y, scores)
    m, n = v10.size, v01.size
    s10 = float(np.var(v10, ddof=1)) if m > 1 else 0.0
    s01 = float(np.var(v01, ddof=1)) if n > 1 else 0.0
    return a, s10 / m + s01 / n


def delong_ci(y: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray,
              level: float = 0.95, method: str = "plain") -> AUCResult:
    """AUC with DeLong standard error and a ``level`` confidence interval.

    Parameters
    ----------
    method:
        ``"plain"`` (default): AUC ± z·SE clipped to [0, 1], as pROC/MedCalc report it (so the
        numbers compare with the paper's). ``"logit"``: the interval is built on logit(AUC)
        with SE/(AUC(1−AUC)) and transformed back; it stays inside (0, 1). At AUC = 0 or 1 the
        logit is undefined and the plain interval is returned (its SE is 0 there).
    """
    if method not in ("plain", "logit"):
        raise StatsError(f"unknown CI method {method!r} (plain or logit)")
    a, var = delong_variance(y, scores)
    se = math.sqrt(max(var, 0.0))
    z = _z(level)
    y_arr = np.asarray(y)
    n_pos = int((y_arr == 1).sum())
    if method == "logit" and 0.0 < a < 1.0:
        lg = math.log(a / (1.0 - a))
        se_lg = se / (a * (1.0 - a))
        lo = 1.0 / (1.0 + math.exp(-(lg - z * se_lg)))
        hi = 1.0 / (1.0 + math.exp(-(lg + z * se_lg)))
    else:
        lo, hi = max(0.0, a - z * se), min(1.0, a + z * se)
    return AUCResult(a, se, lo, hi, level, method, n_pos, y_arr.size - n_pos)


@dataclass(frozen=True)
class DeLongTest:
    """DeLong's paired test of two AUCs on the same cases (H0: AUC1 = AUC2)."""

    auc1: float
    auc2: float
    diff: float
    se: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    correlation: float
    n_pos: int
    n_neg: int

    def as_dict(self) -> dict[str, float | int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def delong_test(y: Sequence[int] | np.ndarray, scores1: Sequence[float] | np.ndarray,
                scores2: Sequence[float] | np.ndarray, level: float = 0.95) -> DeLongTest:
    """Compare two correlated ROC curves (two models scored on the same cases).

    The covariance of the two AUC estimates comes from the covariance of their placement
    values: ``S = S10/m + S01/n`` (2×2); ``z = (A1 − A2) / sqrt(S11 + S22 − 2 S12)``, two-sided
    normal p-value. When both models give identical placements the variance is 0: the test
    returns z = 0, p = 1 (no evidence of a difference) instead of dividing by zero.
    """
    a1, v10a, v01a = delong_placements(y, scores1)
    a2, v10b, v01b = delong_placements(y, scores2)
    m, n = v10a.size, v01a.size
    s10 = np.cov(np.vstack([v10a, v10b]), ddof=1) if m > 1 else np.zeros((2, 2))
    s01 = np.cov(np.vstack([v01a, v01b]), ddof=1) if n > 1 else np.zeros((2, 2))
    s = s10 / m + s01 / n
    var = float(s[0, 0] + s[1, 1] - 2.0 * s[0, 1])
    se = math.sqrt(max(var, 0.0))
    diff = a1 - a2
    if se > 0.0:
        z = diff / se
        p = math.erfc(abs(z) / math.sqrt(2.0))
    else:
        z, p = 0.0, 1.0
    denom = math.sqrt(max(s[0, 0] * s[1, 1], 0.0))
    corr = float(s[0, 1] / denom) if denom > 0 else float("nan")
    zc = _z(level)
    return DeLongTest(a1, a2, diff, se, z, p, diff - zc * se, diff + zc * se, corr, m, n)


# --------------------------------------------------------------------------------------------
# ROC curve and thresholds


@dataclass(frozen=True)
class RocCurve:
    """Empirical ROC curve: one point per distinct threshold, from (0, 0) to (1, 1).

    ``thresholds[k]`` is the score at or above which a case is called positive to reach
    ``(fpr[k], tpr[k])``; the first point uses +inf (nobody positive).
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray

    def area(self) -> float:
        """Trapezoidal area (equals :func:`auc` of the same data)."""
        return float(np.trapezoid(self.tpr, self.fpr))

    def as_dict(self) -> dict[str, list[float]]:
        return {"fpr": self.fpr.tolist(), "tpr": self.tpr.tolist(),
                "thresholds": [float(t) if np.isfinite(t) else None  # type: ignore[misc]
                               for t in self.thresholds]}


def roc_curve(y: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> RocCurve:
    """ROC curve points for every distinct score used as threshold (``score >= t`` positive)."""
    y_arr, s_arr = _as_labels_scores(y, scores)
    order = np.argsort(-s_arr, kind="mergesort")
    s_sorted = s_arr[order]
    y_sorted = y_arr[order]
    # The last index of each run of equal scores: ties move the curve diagonally at once.
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], s_sorted.size - 1]
    tp = np.cumsum(y_sorted)[last]
    fp = (last + 1) - tp
    m = int(y_arr.sum())
    n = y_arr.size - m
    tpr = np.r_[0.0, tp / m]
    fpr = np.r_[0.0, fp / n]
    thr = np.r_[np.inf, s_sorted[last]]
    return RocCurve(fpr=fpr, tpr=tpr, thresholds=thr)


def youden_threshold(y: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray
                     ) -> float:
    """The threshold that maximises Youden's J = sensitivity + specificity − 1.

    Ties in J are broken towards the higher threshold (the more specific call). Meant to be
    chosen on validation data and then applied unchanged to test data; choosing it on the test
    set would bias every threshold metric upwards.
    """
    curve = roc_curve(y, scores)
    j = curve.tpr - curve.fpr
    k = int(np.argmax(j[1:])) + 1  # skip the +inf point (nobody positive)
    return float(curve.thresholds[k])


# --------------------------------------------------------------------------------------------
# threshold metrics and bootstrap


def binary_metrics(y: Sequence[int] | np.ndarray, pred: Sequence[int] | np.ndarray
                   ) -> dict[str, float]:
    """Accuracy, sensitivity (recall), specificity, precision (PPV) and F1 of 0/1 calls.

    A ratio whose denominator is zero (e.g. precision when nothing was called positive) is NaN,
    never silently 0 or 1.
    """
    y_arr = np.asarray(y).astype(np.int64)
    p_arr = np.asarray(pred).astype(np.int64)
    if y_arr.shape != p_arr.shape or y_arr.ndim != 1:
        raise StatsError("labels and predictions must be 1-D of equal length")
    vals = _metrics_vectorised(y_arr[None, :], p_arr[None, :])
    return {k: float(v[0]) for k, v in vals.items()}


def _metrics_vectorised(y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    """Row-wise metrics for a (replicates × cases) stack of labels and predictions."""
    tp = ((y == 1) & (p == 1)).sum(axis=1).astype(np.float64)
    tn = ((y == 0) & (p == 0)).sum(axis=1).astype(np.float64)
    fp = ((y == 0) & (p == 1)).sum(axis=1).astype(np.float64)
    fn = ((y == 1) & (p == 0)).sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = (tp + tn) / (tp + tn + fp + fn)
        sens = tp / (tp + fn)
        spec = tn / (tn + fp)
        prec = tp / (tp + fp)
        f1 = 2.0 * tp / (2.0 * tp + fp + fn)
    return {"accuracy": acc, "sensitivity": sens, "specificity": spec, "precision": prec,
            "f1": f1}


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval."""

    value: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high}


@dataclass
class BootstrapResult:
    """Percentile bootstrap CIs for AUC and the threshold metrics."""

    intervals: dict[str, Interval]
    n_boot: int
    level: float
    seed: int
    unit: str  # "case" or "group"
    n_invalid: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"n_boot": self.n_boot, "level": self.level, "seed": self.seed,
                "resampling_unit": self.unit, "n_invalid": dict(self.n_invalid),
                **{k: v.as_dict() for k, v in self.intervals.items()}}


def _stratified_draws(rng: np.random.Generator, labels: np.ndarray, n_boot: int) -> np.ndarray:
    """Indices (n_boot × len(labels)) resampled with replacement within each label stratum."""
    idx_pos = np.flatnonzero(labels == 1)
    idx_neg = np.flatnonzero(labels == 0)
    draw_pos = idx_pos[rng.integers(0, idx_pos.size, size=(n_boot, idx_pos.size))]
    draw_neg = idx_neg[rng.integers(0, idx_neg.size, size=(n_boot, idx_neg.size))]
    return np.concatenate([draw_pos, draw_neg], axis=1)


def bootstrap_metrics(y: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray,
                      pred: Sequence[int] | np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95, groups: Sequence[object] | np.ndarray | None = None
                      ) -> BootstrapResult:
    """Stratified percentile-bootstrap CIs for AUC, accuracy, sensitivity, specificity,
    precision and F1.

    Parameters
    ----------
    y, scores, pred:
        Labels (0/1), continuous scores (for AUC) and 0/1 calls (for the threshold metrics) of
        the same cases.
    n_boot:
        Number of resamples (the paper: 1,000).
    seed:
        Seed of the resampling; the same inputs and seed give the same intervals.
    groups:
        Optional cluster id per case (patient id for slice-level data). Whole groups are then
        resampled, stratified by the group's label (which must be constant within a group),
        because slices of one patient are not independent.

    Returns
    -------
    BootstrapResult
        Point estimates are those of the original data; intervals are the
        ``(1−level)/2`` and ``(1+level)/2`` percentiles. Replicates where a metric is undefined
        (NaN) are left out of that metric's interval and counted in ``n_invalid``.
    """
    y_arr, s_arr = _as_labels_scores(y, scores)
    p_arr = np.asarray(pred).astype(np.int8)
    if p_arr.shape != y_arr.shape:
        raise StatsError("predictions must have the same length as the labels")
    if n_boot < 1:
        raise StatsError("n_boot must be at least 1")
    _z(level)  # validates the level
    rng = np.random.default_rng(seed)

    if groups is None:
        draws = _stratified_draws(rng, y_arr, n_boot)
        unit = "case"
        replicate_index = [draws[b] for b in range(n_boot)]
    else:
        g_arr = np.asarray(groups)
        if g_arr.shape != y_arr.shape:
            raise StatsError("groups must have the same length as the labels")
        uniq, inverse = np.unique(g_arr, return_inverse=True)
        g_label = np.zeros(uniq.size, dtype=np.int8)
        for gi in range(uniq.size):
            labs = np.unique(y_arr[inverse == gi])
            if labs.size != 1:
                raise StatsError(f"group {uniq[gi]!r} mixes labels; a patient has one label")
            g_label[gi] = labs[0]
        if g_label.min() == g_label.max():
            raise StatsError("bootstrap by group needs groups of both classes")
        members = [np.flatnonzero(inverse == gi) for gi in range(uniq.size)]
        gdraws = _stratified_draws(rng, g_label, n_boot)
        unit = "group"
        replicate_index = [np.concatenate([members[g] for g in gdraws[b]]) for b in range(n_boot)]

    point = binary_metrics(y_arr, p_arr)
    point["auc"] = _auc_unchecked(y_arr, s_arr)
    boot: dict[str, list[float]] = {k: [] for k in ("auc", *METRICS)}
    # Same-length replicates (case resampling) are evaluated as one matrix; group resampling
    # gives replicates of varying length and is evaluated one by one.
    if groups is None:
        mat = np.stack(replicate_index)
        vals = _metrics_vectorised(y_arr[mat], p_arr[mat])
        for k in METRICS:
            boot[k] = vals[k].tolist()
        boot["auc"] = [_auc_unchecked(y_arr[r], s_arr[r]) for r in mat]
    else:
        for r in replicate_index:
            vals = _metrics_vectorised(y_arr[r][None, :], p_arr[r][None, :])
            for k in METRICS:
                boot[k].append(float(vals[k][0]))
            boot["auc"].append(_auc_unchecked(y_arr[r], s_arr[r]))

    lo_q, hi_q = 100.0 * (1.0 - level) / 2.0, 100.0 * (1.0 + level) / 2.0
    intervals: dict[str, Interval] = {}
    n_invalid: dict[str, int] = {}
    for k in ("auc", *METRICS):
        arr = np.asarray(boot[k], dtype=np.float64)
        ok = arr[np.isfinite(arr)]
        n_invalid[k] = int(arr.size - ok.size)
        if ok.size == 0:
            intervals[k] = Interval(point[k], float("nan"), float("nan"))
        else:
            intervals[k] = Interval(point[k], float(np.percentile(ok, lo_q)),
                                    float(np.percentile(ok, hi_q)))
    return BootstrapResult(intervals, n_boot, level, seed, unit, n_invalid)


# --------------------------------------------------------------------------------------------
# ROC curve as PNG (OpenCV drawing; no matplotlib dependency)

_COLOURS_BGR: tuple[tuple[int, int, int], ...] = (
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
    (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23),
)


def draw_roc_png(curves: Sequence[tuple[str, RocCurve]], path: str | Path, *, size: int = 560,
                 title: str = "ROC") -> Path:
    """Draw one or more ROC curves with a legend into a PNG file.

    OpenCV is already a dependency of the app, so the report needs no plotting library.

    Parameters
    ----------
    curves:
        ``(legend label, curve)`` pairs, e.g. ``("three-phase AUC 0.81", curve)``.
    path:
        Output PNG path (parent folders are created).
    """
    import cv2

    margin_l, margin_b, margin_t, margin_r = 70, 60, 40, 20
    w = h = int(size)
    img = np.full((h, w, 3), 255, dtype=np.uint8)
    x0, y0 = margin_l, h - margin_b
    x1, y1 = w - margin_r, margin_t
    pw, ph = x1 - x0, y0 - y1

    def to_px(fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
        px = x0 + np.asarray(fx) * pw
        py = y0 - np.asarray(fy) * ph
        return np.stack([px, py], axis=1).round().astype(np.int32)

    font = cv2.FONT_HERSHEY_SIMPLEX
    for t in np.linspace(0.0, 1.0, 6):
        gx = int(round(x0 + t * pw))
        gy = int(round(y0 - t * ph))
        cv2.line(img, (gx, y0), (gx, y1), (235, 235, 235), 1, cv2.LINE_AA)
        cv2.line(img, (x0, gy), (x1, gy), (235, 235, 235), 1, cv2.LINE_AA)
        cv2.putText(img, f"{t:.1f}", (gx - 12, y0 + 18), font, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
        cv2.putText(img, f"{t:.1f}", (x0 - 32, gy + 4), font, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.rectangle(img, (x0, y1), (x1, y0), (0, 0, 0), 1)
    cv2.line(img, (x0, y0), (x1, y1), (160, 160, 160), 1, cv2.LINE_AA)  # chance diagonal
    cv2.putText(img, "1 - specificity", (x0 + pw // 2 - 55, h - 18), font, 0.5, (0, 0, 0), 1,
                cv2.LINE_AA)
    cv2.putText(img, "sensitivity", (6, y1 - 12), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, title, (x0 + 90, 24), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (label, curve) in enumerate(curves):
        colour = _COLOURS_BGR[i % len(_COLOURS_BGR)]
        pts = to_px(curve.fpr, curve.tpr)
        cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, colour, 2, cv2.LINE_AA)
        ly = y0 - 12 - 18 * (len(curves) - 1 - i)
        cv2.line(img, (x0 + pw // 2 - 20, ly - 4), (x0 + pw // 2, ly - 4), colour, 2)
        cv2.putText(img, label[:40], (x0 + pw // 2 + 6, ly), font, 0.42, (0, 0, 0), 1,
                    cv2.LINE_AA)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", img)
    if not ok:  # pragma: no cover - encoder failure is an environment fault
        raise OSError(f"could not encode ROC PNG for {out}")
    out.write_bytes(buf.tobytes())
    return out
