"""Evaluation statistics against independent references.

References used (scikit-learn is not installed, so nothing is compared with it):
* brute-force pairwise Mann–Whitney AUC written here, independently of the rank formula;
* DeLong's structural components computed by brute force from the full ψ matrix (DeLong et al.
  1988, eq. for V10/V01 and S10/S01), independently of the midrank algorithm in the module;
* the published Hanley & McNeil (1982, Radiology 143:29, Table 1) CT rating example:
  58 normal / 51 abnormal cases on a 5-point scale, trapezoidal AUC 0.893, SE 0.032;
* the bootstrap variance of the AUC on a large simulated sample.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from app import stats
from app.errors import InputError

# Hanley & McNeil 1982, Table 1: counts per rating 1 (definitely normal) .. 5 (definitely abnormal)
HM_NORMAL = [33, 6, 6, 11, 2]
HM_ABNORMAL = [3, 2, 2, 11, 33]


def _hm_data() -> tuple[np.ndarray, np.ndarray]:
    y = np.r_[np.zeros(sum(HM_NORMAL), int), np.ones(sum(HM_ABNORMAL), int)]
    s = np.r_[np.repeat(np.arange(1, 6), HM_NORMAL), np.repeat(np.arange(1, 6), HM_ABNORMAL)]
    return y, s.astype(float)


def _psi(x: np.ndarray, yneg: np.ndarray) -> np.ndarray:
    """Kernel matrix ψ(X_i, Y_j): 1 if positive i outscored negative j, ½ on a tie."""
    diff = x[:, None] - yneg[None, :]
    return (diff > 0).astype(float) + 0.5 * (diff == 0)


def _brute_auc(y: np.ndarray, s: np.ndarray) -> float:
    return float(_psi(s[y == 1], s[y == 0]).mean())


def _brute_delong_cov(y: np.ndarray, s_list: list[np.ndarray]) -> np.ndarray:
    """DeLong 1988 covariance matrix of k AUCs by the definition of the structural components."""
    v10, v01 = [], []
    for s in s_list:
        psi = _psi(s[y == 1], s[y == 0])
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    v10a, v01a = np.array(v10), np.array(v01)
    m, n = v10a.shape[1], v01a.shape[1]
    a = np.array([r.mean() for r in v10a])
    s10 = (v10a - a[:, None]) @ (v10a - a[:, None]).T / (m - 1)
    s01 = (v01a - a[:, None]) @ (v01a - a[:, None]).T / (n - 1)
    return s10 / m + s01 / n


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def test_auc_matches_bruteforce_with_ties(rng: np.random.Generator) -> None:
    for _ in range(20):
        n = int(rng.integers(5, 60))
        y = rng.integers(0, 2, n)
        y[0], y[1] = 0, 1
        # Rounded scores create many ties, which is where rank shortcuts go wrong.
        s = np.round(rng.normal(size=n) + 0.8 * y, 1)
        assert stats.auc(y, s) == pytest.approx(_brute_auc(y, s), abs=1e-12)


def test_auc_extremes_and_direction() -> None:
    y = np.array([0, 0, 0, 1, 1])
    assert stats.auc(y, [0.1, 0.2, 0.3, 0.8, 0.9]) == 1.0
    assert stats.auc(y, [0.9, 0.8, 0.7, 0.2, 0.1]) == 0.0
    assert stats.auc(y, [0.5] * 5) == 0.5


def test_hanley_mcneil_published_example() -> None:
    y, s = _hm_data()
    res = stats.delong_ci(y, s)
    assert round(res.auc, 3) == 0.893
    # Hanley–McNeil's exponential approximation gives SE 0.032 for this table; DeLong's
    # nonparametric SE of the same data must be close to it.
    assert res.se == pytest.approx(0.032, abs=0.004)
    assert (res.n_pos, res.n_neg) == (51, 58)


def test_delong_variance_matches_structural_components(rng: np.random.Generator) -> None:
    y, s = _hm_data()
    _, var = stats.delong_variance(y, s)
    assert var == pytest.approx(_brute_delong_cov(y, [s])[0, 0], rel=1e-10)
    for _ in range(5):
        yy = rng.integers(0, 2, 40)
        yy[:2] = [0, 1]
        ss = np.round(rng.normal(size=40) + yy, 1)
        _, v = stats.delong_variance(yy, ss)
        assert v == pytest.approx(_brute_delong_cov(yy, [ss])[0, 0], rel=1e-10)


def test_delong_variance_agrees_with_bootstrap_variance(rng: np.random.Generator) -> None:
    n = 600
    y = (rng.random(n) < 0.3).astype(int)
    s = rng.normal(size=n) + 1.0 * y
    _, var = stats.delong_variance(y, s)
    boot = []
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    for _ in range(800):
        idx = np.r_[rng.choice(pos, pos.size), rng.choice(neg, neg.size)]
        boot.append(_brute_auc(y[idx], s[idx]))
    # The bootstrap variance estimates the same quantity with ~5 % sampling error at 800 draws.
    assert np.var(boot, ddof=1) == pytest.approx(var, rel=0.2)


def test_delong_ci_plain_and_logit() -> None:
    y, s = _hm_data()
    plain = stats.delong_ci(y, s, method="plain")
    z = 1.959963984540054
    assert plain.ci_low == pytest.approx(plain.auc - z * plain.se)
    assert plain.ci_high == pytest.approx(plain.auc + z * plain.se)
    logit = stats.delong_ci(y, s, method="logit")
    assert 0.0 < logit.ci_low < logit.auc < logit.ci_high < 1.0
    # The logit interval is asymmetric, longer towards 0.5.
    assert logit.auc - logit.ci_low > logit.ci_high - logit.auc
    perfect = stats.delong_ci([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], method="logit")
    assert (perfect.auc, perfect.ci_low, perfect.ci_high) == (1.0, 1.0, 1.0)
    with pytest.raises(stats.StatsError):
        stats.delong_ci(y, s, method="wald")


def test_delong_test_against_bruteforce_covariance(rng: np.random.Generator) -> None:
    n = 120
    y = (rng.random(n) < 0.3).astype(int)
    latent = rng.normal(size=n) + 1.2 * y
    s1 = latent + rng.normal(scale=0.5, size=n)
    s2 = latent + rng.normal(scale=1.5, size=n)
    res = stats.delong_test(y, s1, s2)
    cov = _brute_delong_cov(y, [s1, s2])
    se = math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert res.auc1 == pytest.approx(_brute_auc(y, s1))
    assert res.auc2 == pytest.approx(_brute_auc(y, s2))
    assert res.se == pytest.approx(se, rel=1e-10)
    assert res.z == pytest.approx((res.auc1 - res.auc2) / se, rel=1e-10)
    assert res.p_value == pytest.approx(math.erfc(abs(res.z) / math.sqrt(2)), rel=1e-10)
    assert res.correlation > 0.3  # both scores share the latent variable


def test_delong_test_identical_and_clearly_different(rng: np.random.Generator) -> None:
    n = 200
    y = (rng.random(n) < 0.4).astype(int)
    good = rng.normal(size=n) + 2.5 * y
    noise = rng.normal(size=n)
    same = stats.delong_test(y, good, good)
    assert (same.z, same.p_value, same.diff) == (0.0, 1.0, 0.0)
    diff = stats.delong_test(y, good, noise)
    assert diff.p_value < 1e-6
    assert diff.ci_low > 0


def test_roc_curve_points_and_area(rng: np.random.Generator) -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.9])
    c = stats.roc_curve(y, s)
    assert c.fpr[0] == 0 and c.tpr[0] == 0 and c.fpr[-1] == 1 and c.tpr[-1] == 1
    assert np.all(np.diff(c.fpr) >= 0) and np.all(np.diff(c.tpr) >= 0)
    # distinct thresholds 0.9, 0.8, 0.4 (two negatives tied), 0.35, 0.1
    np.testing.assert_allclose(c.thresholds[1:], [0.9, 0.8, 0.4, 0.35, 0.1])
    np.testing.assert_allclose(c.tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(c.fpr, [0, 0, 0, 2 / 3, 2 / 3, 1])
    for _ in range(10):
        yy = rng.integers(0, 2, 50)
        yy[:2] = [0, 1]
        ss = np.round(rng.normal(size=50) + yy, 1)
        assert stats.roc_curve(yy, ss).area() == pytest.approx(stats.auc(yy, ss), abs=1e-12)


def test_youden_threshold() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    t = stats.youden_threshold(y, s)
    # At t = 0.7: sens 3/4, spec 4/4 → J 0.75; at 0.4: sens 1, spec 3/4 → J 0.75 (tie);
    # the tie goes to the higher, more specific threshold.
    assert t == 0.7
    m = stats.binary_metrics(y, (s >= t).astype(int))
    assert m["sensitivity"] == 0.75 and m["specificity"] == 1.0


def test_binary_metrics_known_confusion_matrix() -> None:
    # TP 3, FN 1, TN 4, FP 2
    y = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    p = [1, 1, 1, 0, 0, 0, 0, 0, 1, 1]
    m = stats.binary_metrics(y, p)
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["sensitivity"] == pytest.approx(0.75)
    assert m["specificity"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(0.6)
    assert m["f1"] == pytest.approx(2 * 0.6 * 0.75 / (0.6 + 0.75))
    none_called = stats.binary_metrics([1, 0, 0], [0, 0, 0])
    assert math.isnan(none_called["precision"])


def test_bootstrap_seeded_stratified_and_contains_point(rng: np.random.Generator) -> None:
    n = 150
    y = (rng.random(n) < 0.3).astype(int)
    s = rng.normal(size=n) + 1.2 * y
    p = (s > 0.6).astype(int)
    a = stats.bootstrap_metrics(y, s, p, n_boot=300, seed=7)
    b = stats.bootstrap_metrics(y, s, p, n_boot=300, seed=7)
    c = stats.bootstrap_metrics(y, s, p, n_boot=300, seed=8)
    assert a.as_dict() == b.as_dict()
    assert a.intervals["auc"].ci_low != c.intervals["auc"].ci_low
    point = stats.binary_metrics(y, p)
    for k in stats.METRICS:
        iv = a.intervals[k]
        assert iv.value == pytest.approx(point[k])
        assert iv.ci_low <= iv.value <= iv.ci_high
        assert iv.ci_high - iv.ci_low > 0.01
    # Stratified: the class counts are fixed, so sensitivity only moves through resampled
    # positives, and its interval width must match the binomial SE of the positives roughly.
    m = int(y.sum())
    sens = point["sensitivity"]
    expected_width = 2 * 1.96 * math.sqrt(sens * (1 - sens) / m)
    width = a.intervals["sensitivity"].ci_high - a.intervals["sensitivity"].ci_low
    assert width == pytest.approx(expected_width, rel=0.3)
    # The AUC interval agrees with DeLong's on a sample of this size.
    d = stats.delong_ci(y, s)
    assert a.intervals["auc"].ci_low == pytest.approx(d.ci_low, abs=0.04)
    assert a.intervals["auc"].ci_high == pytest.approx(d.ci_high, abs=0.04)


def test_bootstrap_by_group_is_wider_for_clustered_slices(rng: np.random.Generator) -> None:
    # 40 patients × 15 slices whose scores share a strong patient effect: slices are not
    # independent, so resampling slices understates the uncertainty.
    n_pat, n_sl = 40, 15
    y_pat = np.r_[np.zeros(25, int), np.ones(15, int)]
    effect = rng.normal(size=n_pat) + 1.0 * y_pat
    y = np.repeat(y_pat, n_sl)
    groups = np.repeat(np.arange(n_pat), n_sl)
    s = np.repeat(effect, n_sl) + 0.2 * rng.normal(size=n_pat * n_sl)
    p = (s > 0.5).astype(int)
    by_case = stats.bootstrap_metrics(y, s, p, n_boot=300, seed=1)
    by_group = stats.bootstrap_metrics(y, s, p, n_boot=300, seed=1, groups=groups)
    assert by_group.unit == "group"
    w_case = by_case.intervals["auc"].ci_high - by_case.intervals["auc"].ci_low
    w_group = by_group.intervals["auc"].ci_high - by_group.intervals["auc"].ci_low
    assert w_group > 2 * w_case
    bad_groups = groups.copy()
    bad_groups[0] = n_pat - 1  # a responder's slice in a non-responder's group
    with pytest.raises(stats.StatsError, match="mixes labels"):
        stats.bootstrap_metrics(y, s, p, n_boot=10, groups=bad_groups)


def test_input_errors_are_input_errors() -> None:
    with pytest.raises(InputError, match="both classes"):
        stats.auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(InputError, match="equal length"):
        stats.auc([0, 1], [0.1])
    with pytest.raises(InputError, match="NaN"):
        stats.delong_ci([0, 1, 1], [0.1, float("nan"), 0.3])
    with pytest.raises(InputError, match="0 .non-responder. or 1"):
        stats.auc([0, 2], [0.1, 0.2])


def test_roc_png(tmp_path) -> None:
    y, s = _hm_data()
    c = stats.roc_curve(y, s)
    out = stats.draw_roc_png([("H&M AUC 0.893", c), ("chance", stats.roc_curve(y, np.zeros_like(s)))],
                             tmp_path / "sub" / "roc.png", size=400)
    img = cv2.imread(str(out))
    assert img is not None and img.shape == (400, 400, 3)
    # The first curve's colour (BGR 180,119,31) is present in the plot.
    mask = np.all(np.abs(img.astype(int) - np.array([180, 119, 31])) < 20, axis=2)
    assert mask.sum() > 100


def test_expected_auc_is_the_mean_auc_over_label_draws() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 0.95, 40)
    scores = p + rng.normal(0, 0.2, 40)
    draws = []
    for _ in range(4000):
        y = (rng.random(40) < p).astype(int)
        if 0 < y.sum() < 40:
            draws.append(stats.auc(y, scores))
    assert stats.expected_auc(p, scores) == pytest.approx(float(np.mean(draws)), abs=0.01)
    # ranking by the true probabilities beats a noisy ranking; a reversed one falls below 0.5
    assert stats.expected_auc(p, p) > stats.expected_auc(p, scores) > 0.5 > stats.expected_auc(p, -p)
    assert stats.expected_auc(p, np.zeros(40)) == pytest.approx(0.5)  # all tied
    with pytest.raises(ValueError, match="as many probabilities"):
        stats.expected_auc(p, scores[:-1])
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        stats.expected_auc(np.full(40, 1.5), scores)
