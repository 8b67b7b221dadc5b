"""The ladder's non-network rungs: logistic regression and features measured under the labels."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from app.inference.config import ModelConfig
from app.synthetic import labelmaps as lm
from app.synthetic.options import StudyOptions
from app.synthetic.outcome import LatentFeatures
from app.synthetic.study import build_patient, write_study
from app.training import ladder
from app.training.ladder import FEATURES, Logistic


def _simulated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) * np.array([1.0, 5.0, 2.0]) + np.array([0.0, 10.0, -3.0])
    logit = 1.5 * (x[:, 0] - 0.0) - 0.2 * (x[:, 1] - 10.0) + 0.3
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return x, y, logit


def test_logistic_recovers_the_generating_model() -> None:
    x, y, _ = _simulated(20000, 1)
    m = Logistic.fit(x, y, l2=0.0)
    w = m.weights / m.scale  # back to the raw features' units
    assert w == pytest.approx([1.5, -0.2, 0.0], abs=0.06)
    xt, _yt, logit = _simulated(500, 2)
    assert np.corrcoef(m.decision(xt), logit)[0, 1] > 0.99


def test_logistic_imputes_missing_values_and_survives_constant_columns() -> None:
    x, y, _ = _simulated(400, 3)
    x = np.hstack([x, np.ones((400, 1))])
    x[::7, 0] = np.nan
    m = Logistic.fit_cv(x, y)
    p = m.predict_proba(x)
    assert np.all(np.isfinite(p)) and m.weights[3] == 0.0
    assert m.l2 in (1e-3, 1e-2, 1e-1, 1.0)


def test_soft_targets_fit_the_probabilities_behind_noisy_labels() -> None:
    # 150 cases: the Bernoulli draw's noise is large; fitted towards the true probabilities the
    # regression lands closer to the generating weights, with folds and AUC still on the labels
    x, y, logit = _simulated(150, 6)
    p = 1.0 / (1.0 + np.exp(-logit))
    true_w = np.array([1.5, -0.2, 0.0])
    hard = Logistic.fit_cv(x, y, grid=(1e-3,))
    soft = Logistic.fit_cv(x, y, grid=(1e-3,), target=p)
    err = {name: float(np.linalg.norm(m.weights / m.scale - true_w)) for name, m in (("hard", hard), ("soft", soft))}
    assert err["soft"] < 0.75 * err["hard"], err  # ignoring the target would make them equal
    oof = Logistic.out_of_fold(x, y, soft.l2, target=p)
    assert oof.shape == (150,) and np.all((oof > 0) & (oof < 1))
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\]"):
        Logistic.fit_cv(x, y, target=p * 2.0)
    with pytest.raises(ValueError, match="150 probabilities"):
        Logistic.out_of_fold(x, y, 0.01, target=p[:10])


def test_cross_validation_penalises_pure_noise_more() -> None:
    rng = np.random.default_rng(4)
    noise = rng.normal(size=(200, 40))
    y = (rng.random(200) < 0.4).astype(np.int64)
    x, y_sig, _ = _simulated(200, 5)
    assert Logistic.fit_cv(noise, y).l2 > Logistic.fit_cv(x, y_sig).l2


def test_tumour_features_on_a_drawn_slice() -> None:
    labels = np.full((2, 3, 10, 10), lm.BACKGROUND, dtype=np.uint8)
    labels[:, :, 2:8, 2:8] = lm.LIVER
    labels[0, :, 3:5, 3:6] = lm.LESION     # 6 px viable tumour on slice 0
    labels[0, :, 5, 3] = lm.NECROSIS       # 1 px necrosis
    labels[0, :, 5, 4] = lm.CAPSULE        # 1 px capsule
    hu = np.zeros(labels.shape, dtype=np.float32)
    for j, d in enumerate((-10.0, 40.0, -20.0)):
        hu[:, j][labels[:, j] == lm.LIVER] = 60.0
        hu[:, j][labels[:, j] == lm.LESION] = 60.0 + d
    f = dict(zip(FEATURES, ladder.tumour_features(hu, labels, [4.0] * 3, 5.0, ("plain", "arterial", "portal")),
                 strict=True))
    assert (f["d_plain_hu"], f["d_arterial_hu"], f["d_portal_hu"]) == pytest.approx((-10.0, 40.0, -20.0))
    assert f["diameter_mm"] == pytest.approx(2.0 * np.sqrt(8 * 4.0 / np.pi))
    assert f["necrosis_share"] == pytest.approx(1 / 8) and f["capsule_share"] == pytest.approx(1 / 8)
    assert f["log_volume_ml"] == pytest.approx(np.log1p(8 * 4.0 * 5.0 / 1000.0))
    assert f["oil_share"] == 0.0 and f["thrombus_ml"] == 0.0 and f["arterial_sd_hu"] == pytest.approx(0.0)


LESION = LatentFeatures(largest_diameter_mm=70.0, n_lesions=1, necrosis_fraction=0.4,
                        arterial_enhancement_hu=65.0, washout_hu=25.0, heterogeneity=0.1,
                        capsule=False, tace_oil=False, pvtt=False)


def test_measured_features_follow_the_truth(tmp_path: Path) -> None:
    opts = StudyOptions(matrix=96, convention="ge", label_maps=True)
    draw = build_patient(41, 0, opts, features=LESION)
    study_dir = tmp_path / draw.patient_id
    write_study(draw, opts, study_dir)
    cfg = ModelConfig(backbone="tiny", input_size=64, crop="body")
    cache = tmp_path / "cache.npz"
    small = ModelConfig(backbone="tiny", input_size=32, crop="none")
    both = ladder.measure_study(ladder.MeasureJob(study_dir, (cfg, small), (cache, None)))
    assert isinstance(both, list) and len(both) == 2
    m, m_small = both
    assert np.array_equal(m.full, m_small.full, equal_nan=True)  # full resolution: same pairs
    assert not np.array_equal(m.inputs, m_small.inputs, equal_nan=True)
    full = dict(zip(FEATURES, m.full, strict=True))
    inputs = dict(zip(FEATURES, m.inputs, strict=True))
    assert full["d_arterial_hu"] == pytest.approx(65.0, abs=8.0)
    assert full["d_portal_hu"] == pytest.approx(-25.0, abs=8.0)
    assert 0.6 * 65.0 < inputs["d_arterial_hu"] < 1.1 * 65.0  # blended at the border at 64 px
    for f in (full, inputs):
        assert f["diameter_mm"] == pytest.approx(70.0, rel=0.15)
        assert 0.05 < f["necrosis_share"] < 0.4
    assert m.histogram.shape == (3 * ladder.HIST_BINS,) and m.histogram.sum() == pytest.approx(3.0)
    # the cache is what a second run reads: it works without the study folder
    shutil.rmtree(study_dir)
    again = ladder.measure_study(ladder.MeasureJob(study_dir, (cfg,), (cache,)))
    assert isinstance(again, list) and np.array_equal(again[0].full, m.full, equal_nan=True)


def test_a_study_without_label_maps_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    opts = StudyOptions(matrix=48, convention="siemens")
    draw = build_patient(41, 1, opts)
    write_study(draw, opts, tmp_path / "s")
    result = ladder.measure_study(ladder.MeasureJob(tmp_path / "s", (ModelConfig(backbone="tiny", input_size=32),)))
    assert isinstance(result, str) and "no label maps" in result
