"""The patient head: input-resolution measures, patient features, the fitted regression in the
model's configuration and file, its aggregation, and `hcc-response fit-patient-head`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from app.inference.config import ConfigError, ModelConfig
from app.inference.model import build_model, count_components
from app.inference.patient_head import (
    PatientHead,
    PatientHeadError,
    feature_names,
    measure_names,
    n_measures,
    named_features,
    patient_features,
)
from app.inference.result import NON_RESPONDER, RESPONDER, aggregate

pytestmark = pytest.mark.usefixtures("torch_one_thread")
PHASES = ("plain", "arterial", "portal")
LESION = ModelConfig(backbone="small", input_size=32, extra_channels=16, hidden=16, dropout=0.0,
                     shared_trunk=True, head="lesion", aggregation="lesion_weighted")


def _head(features: tuple[str, ...] = ("slice_score", "contrast_arterial"), threshold: float = 0.4) -> PatientHead:
    n = len(features)
    return PatientHead(features, (0.0,) * n, (1.0,) * n, tuple(1.0 for _ in range(n)), -0.5, threshold, "unit")


def test_measures_are_taken_under_hard_masks_at_the_input_resolution() -> None:
    x = torch.rand(2, 3, 1, 32, 32)
    seg = torch.zeros(2, 4, 8, 8)
    seg[0, 2] = 5.0  # slice 0: lesion everywhere (tumour 5 against 0)
    seg[0, 3] = 4.0  # ... with some necrosis probability in it
    seg[1, 1] = 5.0  # slice 1: liver everywhere, no lesion
    m = build_model(LESION).input_measures(x, seg)
    assert m.shape == (2, len(measure_names(PHASES)))
    soft = torch.tensor([0.0, 0.0, 5.0, 4.0]).softmax(0)
    torch.testing.assert_close(m[0, :3], x[0, :, 0].mean(dim=(1, 2)), rtol=1e-3, atol=1e-4)  # lesion
    torch.testing.assert_close(m[0, 3:6], torch.zeros(3))  # no liver in slice 0
    assert float(m[0, 6]) == 32 * 32 and float(m[0, 7]) == pytest.approx(float(soft[3]), rel=1e-3)
    torch.testing.assert_close(m[1, 3:6], x[1, :, 0].mean(dim=(1, 2)), rtol=1e-3, atol=1e-4)  # liver
    assert float(m[1, 6]) == 0.0 and float(m[1, 0]) == 0.0
    # viable tumour (lesion 5 > necrosis 4): the spread is the inputs' standard deviation; the
    # whole slice is one lesion, its rim the one-pixel border; slice 1 has none of these
    names = measure_names(PHASES)
    spread = m[0, names.index("viable_spread_plain"):names.index("viable_spread_portal") + 1]
    torch.testing.assert_close(spread, x[0, :, 0].std(dim=(1, 2), unbiased=False), rtol=1e-3, atol=1e-4)
    rim = m[0, names.index("rim_intensity_plain"):names.index("rim_intensity_portal") + 1]
    torch.testing.assert_close(rim, torch.zeros(3))  # the crop's edge is not the lesion's edge
    assert float(m[0, names.index("lesion_components")]) == 1.0
    assert float(m[1, names.index("lesion_components")]) == 0.0 and float(m[1, names.index("viable_spread_arterial")]) == 0.0


def test_the_rim_is_the_lesions_border_and_necrosis_has_no_spread() -> None:
    x = torch.rand(1, 3, 1, 32, 32)
    seg = torch.zeros(1, 4, 32, 32)
    seg[0, 1] = 5.0  # liver around
    seg[0, :, 8:24, 8:24] = torch.tensor([0.0, 0.0, 5.0, 0.0])[:, None, None]  # a square lesion
    seg[0, 3, 12:20, 12:20] = 9.0  # with a necrotic core
    m = build_model(LESION).input_measures(x, seg)[0]
    names = measure_names(PHASES)
    ring = torch.zeros(32, 32)
    ring[8:24, 8:24] = 1
    ring[9:23, 9:23] = 0
    viable = torch.zeros(32, 32)
    viable[8:24, 8:24] = 1
    viable[12:20, 12:20] = 0
    xi = x[0, :, 0]
    rim = m[names.index("rim_intensity_plain"):names.index("rim_intensity_portal") + 1]
    torch.testing.assert_close(rim, (xi * ring).sum(dim=(1, 2)) / ring.sum(), rtol=1e-3, atol=1e-4)
    spread = m[names.index("viable_spread_plain"):names.index("viable_spread_portal") + 1]
    expected = torch.stack([xi[k][viable > 0].std(unbiased=False) for k in range(3)])
    torch.testing.assert_close(spread, expected, rtol=1e-3, atol=1e-4)
    assert float(m[names.index("lesion_pixels")]) == 256 and float(m[names.index("necrotic_share")]) == pytest.approx(0.25, abs=0.01)


def test_separate_lesions_are_counted_specks_are_not() -> None:
    mask = torch.zeros(3, 16, 16)
    mask[0, 2:6, 2:6] = 1  # two lesions of 16 pixels, apart
    mask[0, 10:14, 9:13] = 1
    mask[1, 2:6, 2:6] = 1  # touching at a corner: one (8-connected) lesion
    mask[1, 6:10, 6:10] = 1
    mask[1, 14, 0] = 1  # a one-pixel speck: not a lesion
    mask[2, 0:16, 7] = 1  # a long thin lesion across the slice: one
    mask[2, 0, 0:7] = 1
    assert count_components(mask).tolist() == [2.0, 1.0, 1.0]
    assert count_components(mask, min_pixels=1).tolist() == [2.0, 2.0, 1.0]
    assert count_components(torch.zeros(2, 8, 8)).tolist() == [0.0, 0.0]


def test_lesion_forward_reports_the_measures_without_gradient() -> None:
    torch.manual_seed(0)
    model = build_model(LESION).eval()
    out = model(torch.rand(3, 3, 1, 32, 32), details=True)
    assert out.measures.shape == (3, n_measures(3)) == (3, 15) and not out.measures.requires_grad
    assert bool(torch.isfinite(out.measures).all())


def test_patient_features_by_hand() -> None:
    probs = [0.5, 0.8, 0.2]
    grid_areas = [0.0, 30.0, 10.0]
    # per slice: lesion intensity x3, liver intensity x3, lesion pixels, necrotic share,
    # viable spread x3, rim intensity x3, lesion components
    measures = np.array([
        [0.0, 0.0, 0.0, 0.4, 0.5, 0.45, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.5, 0.9, 0.6, 0.4, 0.5, 0.45, 60.0, 0.5, 0.02, 0.10, 0.04, 0.5, 0.8, 0.7, 1.0],
        [0.6, 0.7, 0.5, 0.4, 0.6, 0.45, 20.0, 0.1, 0.06, 0.02, 0.04, 0.6, 0.7, 0.6, 3.0],
    ])
    f = dict(zip(feature_names(PHASES), patient_features(probs, grid_areas, measures, PHASES), strict=True))
    logit = [math.log(p / (1 - p)) for p in probs]
    assert f["slice_score"] == pytest.approx(0.75 * logit[1] + 0.25 * logit[2])
    assert f["contrast_arterial"] == pytest.approx(0.75 * 0.4 + 0.25 * 0.1)
    assert f["contrast_plain"] == pytest.approx(0.75 * 0.1 + 0.25 * 0.2)
    assert f["log_total_area"] == pytest.approx(math.log(81.0))
    assert f["log_largest_area"] == pytest.approx(math.log(61.0))
    assert f["necrotic_share"] == pytest.approx(0.75 * 0.5 + 0.25 * 0.1)
    assert f["tumour_slices"] == 2.0  # 20 ≥ 0.25 × 60; the empty slice does not count
    assert f["lesion_portal"] == pytest.approx(0.75 * 0.6 + 0.25 * 0.5)
    assert f["spread_arterial"] == pytest.approx(0.75 * 0.10 + 0.25 * 0.02)
    assert f["rim_portal"] == pytest.approx(0.75 * 0.1 + 0.25 * 0.1)  # capsule brighter than its lesion
    assert f["rim_arterial"] == pytest.approx(0.75 * -0.1 + 0.25 * 0.0)
    assert f["lesion_count"] == 3.0  # the most separate lesions in one slice
    # the first eleven features keep their places: heads fitted before the rest still read them
    assert feature_names(PHASES)[:11] == (
        "slice_score", "contrast_plain", "contrast_arterial", "contrast_portal", "log_total_area",
        "log_largest_area", "necrotic_share", "tumour_slices", "lesion_plain", "lesion_arterial", "lesion_portal")
    # no tumour seen anywhere: uniform weights, zero areas, still finite
    empty = patient_features(probs, [0.0] * 3, np.zeros((3, 15)), PHASES)
    assert np.isfinite(empty).all() and empty[feature_names(PHASES).index("tumour_slices")] == 0.0
    with pytest.raises(PatientHeadError, match="do not match"):
        patient_features(probs, grid_areas, measures[:2], PHASES)


def test_head_probability_and_its_round_trip() -> None:
    head = PatientHead(("contrast_arterial", "slice_score"), (0.1, 0.0), (0.2, 2.0), (1.5, -0.5), 0.25, 0.35, "x")
    f = np.zeros(len(feature_names(PHASES)))
    f[feature_names(PHASES).index("contrast_arterial")] = 0.5
    f[0] = 1.0
    z = 1.5 * (0.5 - 0.1) / 0.2 - 0.5 * 1.0 / 2.0 + 0.25
    assert head.probability(f, PHASES) == pytest.approx(1 / (1 + math.exp(-z)))
    assert PatientHead.from_dict(json.loads(json.dumps(head.to_dict()))) == head
    with pytest.raises(PatientHeadError, match="unknown patient head key"):
        PatientHead.from_dict({**head.to_dict(), "extra": 1})
    with pytest.raises(PatientHeadError, match="2 features but"):
        PatientHead.from_dict({**head.to_dict(), "weights": [1.0]})
    with pytest.raises(PatientHeadError, match="positive scales"):
        PatientHead.from_dict({**head.to_dict(), "scale": [0.0, 1.0]})
    with pytest.raises(PatientHeadError, match="not computed for phases"):
        head.check_phases(("plain", "portal"))


def test_config_carries_the_head_only_for_its_aggregation() -> None:
    cfg = ModelConfig.from_dict({**LESION.to_dict(), "aggregation": "patient_head",
                                 "patient_head": _head().to_dict()})
    assert cfg.patient_head == _head() and cfg.votes_on_lesions
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert "patient_head" not in LESION.to_dict()  # files without a head read as before
    with pytest.raises(ConfigError, match="needs a fitted patient head"):
        ModelConfig.from_dict({**LESION.to_dict(), "aggregation": "patient_head"})
    with pytest.raises(ConfigError, match="only used by aggregation 'patient_head'"):
        ModelConfig.from_dict({**LESION.to_dict(), "patient_head": _head().to_dict()})
    with pytest.raises(ConfigError, match="needs head 'lesion'"):
        ModelConfig(aggregation="patient_head", patient_head=_head())
    with pytest.raises(ConfigError, match="not computed for phases"):
        ModelConfig.from_dict({**LESION.to_dict(), "phases": ["plain", "portal"],
                               "aggregation": "patient_head", "patient_head": _head().to_dict()})
    with pytest.raises(ConfigError, match="invalid patient head"):
        ModelConfig.from_dict({**LESION.to_dict(), "aggregation": "patient_head", "patient_head": {"features": []}})


def test_aggregate_with_the_head_keeps_the_lesion_vote_but_the_head_decides() -> None:
    probs = [0.2, 0.9, 0.8, 0.3, 0.1]
    areas = [0.0, 40.0, 30.0, 5.0, 0.0]
    measures = np.zeros((5, n_measures(3)))
    measures[1:3, 1] = 0.9  # arterial lesion intensity on the tumour slices
    measures[1:3, 6] = 50.0
    for threshold, label in ((0.99, NON_RESPONDER), (0.01, RESPONDER)):
        head = _head(threshold=threshold)
        agg = aggregate(probs, areas, "patient_head", 0.5, measures=measures, patient_head=head, phases=PHASES)
        lw = aggregate(probs, areas, "lesion_weighted", 0.5)
        assert agg.voting == lw.voting and agg.rule == "patient_head" and not agg.vote.tie
        assert (agg.vote.responder_votes, agg.vote.total_votes) == (2, 2)
        expected = head.probability(patient_features(probs, areas, measures, PHASES), PHASES)
        assert agg.vote.mean_probability == pytest.approx(expected) and agg.vote.label == label
    blind = aggregate(probs, [0.0] * 5, "patient_head", 0.5, measures=np.zeros((5, n_measures(3))), patient_head=_head(),
                      phases=PHASES)
    assert blind.rule == "patient_head" and "no tumour" in blind.note
    with pytest.raises(ValueError, match="needs lesion areas, measures"):
        aggregate(probs, areas, "patient_head", 0.5)


def test_fit_finds_the_signal_and_chooses_its_threshold_off_the_fitting_patients() -> None:
    from app.training.evaluate import ScoredCohort
    from app.training.patient_head_fit import HeadFitError, cohort_features, fit_patient_head

    rng = np.random.default_rng(0)

    def cohort(n: int) -> ScoredCohort:
        y = (rng.random(n) < 0.4).astype(np.int64)
        group = np.repeat(np.arange(n), 4)
        probs = rng.uniform(0.2, 0.8, group.size)  # the slice score carries nothing here
        measures = rng.uniform(0.3, 0.5, (group.size, n_measures(3)))
        measures[:, 6] = 30.0
        measures[:, 1] += 0.15 * y[group] + rng.normal(0, 0.05, group.size)  # arterial contrast does
        return ScoredCohort([f"P{i}" for i in range(n)], y, probs, group,
                            {"lesion_area": np.full(group.size, 20.0), "measures": measures},
                            "lesion_weighted", 0.5, None, PHASES)

    fit, cal = cohort(120), cohort(80)
    assert cohort_features(fit).shape == (120, len(feature_names(PHASES)))
    result = fit_patient_head(fit, "fit.csv", calibration=cal, calibration_name="cal.csv")
    assert result.fit_auc_out_of_fold > 0.85 and result.calibration_auc is not None and result.calibration_auc > 0.85
    assert "calibration cohort cal.csv (80 patients)" in result.threshold.chosen_on
    assert min(result.threshold.sensitivity, result.threshold.specificity) > 0.7
    assert result.head.threshold == result.threshold.threshold
    # by default every measure, not the network's own score (optimistic on its training patients)
    assert result.head.features == named_features("measures", PHASES) == feature_names(PHASES)[1:]
    assert named_features("first", PHASES) == feature_names(PHASES)[:11] and named_features("all", PHASES) == feature_names(PHASES)
    with pytest.raises(PatientHeadError, match="unknown feature set 'most'"):
        named_features("most", PHASES)
    assert result.fitted_towards == "0/1 labels"
    # towards a per-patient probability (a synthetic cohort's p_true): said in the fit and its card
    towards_p = fit_patient_head(fit, "fit.csv", calibration=cal, calibration_name="cal.csv",
                                 soft_targets=np.where(fit.patient_labels == 1, 0.8, 0.2),
                                 soft_target_name="p_true")
    assert towards_p.fitted_towards == "p_true" and towards_p.as_dict()["fitted_towards"] == "p_true"
    assert "towards p_true" in towards_p.summary() and towards_p.calibration_auc > 0.85
    with pytest.raises(HeadFitError, match="fit.csv: p_true: fit target must hold 120 probabilities"):
        fit_patient_head(fit, "fit.csv", soft_targets=np.full(120, 1.5), soft_target_name="p_true")
    oof = fit_patient_head(fit, "fit.csv", features=["contrast_arterial"])
    assert oof.head.features == ("contrast_arterial",) and "out-of-fold" in oof.threshold.chosen_on
    with pytest.raises(HeadFitError, match="unknown patient feature"):
        fit_patient_head(fit, "fit.csv", features=["size"])
    one_class = ScoredCohort(fit.patient_ids, np.zeros(120, np.int64), fit.slice_probs, fit.slice_group,
                             fit.extra, "lesion_weighted", 0.5, None, PHASES)
    with pytest.raises(HeadFitError, match="one class"):
        fit_patient_head(one_class, "fit.csv")
    with pytest.raises(HeadFitError, match="not scored by a lesion-head model"):
        cohort_features(ScoredCohort(fit.patient_ids, fit.patient_labels, fit.slice_probs, fit.slice_group))

    # the evaluation of a model with this head reports the patient call at the head's threshold
    # (not the slices' 0.5, which only decides their vote)
    from app.training.evaluate import evaluate_scored

    with_head = ScoredCohort(cal.patient_ids, cal.patient_labels, cal.slice_probs, cal.slice_group, cal.extra,
                             "patient_head", 0.5, result.head, PHASES)
    patient = evaluate_scored(with_head, n_boot=20).patient
    assert patient.threshold == result.head.threshold != 0.5
    assert f"{result.head.threshold:g}" in patient.note


@pytest.fixture(scope="module")
def lesion_cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Ten phantoms with label maps and an (untrained) lesion-head model file."""
    from app.inference.weights import (
        WEIGHTS_SYNTHETIC,
        ModelDescription,
        save_model,
        write_sha256_file,
    )
    from app.synthetic.cohort import generate_cohort
    from app.synthetic.options import StudyOptions

    tmp = tmp_path_factory.mktemp("head")
    generate_cohort(tmp / "cohort", 10, 11, StudyOptions(matrix=48, convention="siemens", label_maps=True))
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="small", input_size=32, crop="body", extra_channels=16, hidden=16,
                      shared_trunk=True, head="lesion", aggregation="lesion_weighted", threshold=0.45)
    path = tmp / "lesion.safetensors"
    save_model(build_model(cfg).eval(), cfg, ModelDescription(name="t", version="1", weights_kind=WEIGHTS_SYNTHETIC),
               path)
    write_sha256_file(path)
    return tmp / "cohort", path


def test_fit_patient_head_cli_writes_a_model_that_predicts_with_its_head(
        lesion_cohort: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main
    from app.inference.weights import load_model, read_description, recorded_sha256

    cohort, model = lesion_cohort
    labels = [int(line.split(",")[2]) for line in (cohort / "labels.csv").read_text().splitlines()[1:]]
    assert 0 < sum(labels) < len(labels), "the fixture cohort needs both classes"
    out = tmp_path / "with-head.safetensors"
    args = ["fit-patient-head", str(cohort / "labels.csv"), "--model", str(model), "--out", str(out),
            "--test", str(cohort / "labels.csv"), "--cache-dir", str(tmp_path / "cache"), "--workers", "1",
            "--model-version", "2", "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    usable = doc["fit_patients"]  # a phantom whose phases cannot be sorted is excluded, and said
    assert 8 <= usable <= 10 and doc["test"]["patients"] == usable
    loaded = load_model(out, expected_sha256=recorded_sha256(out))
    cfg = loaded.config
    assert cfg.aggregation == "patient_head" and cfg.patient_head is not None
    assert cfg.patient_head.features == named_features("measures", PHASES)
    assert cfg.threshold == 0.45 and cfg.patient_head.threshold == doc["threshold"]["threshold"]
    desc = read_description(out)
    assert desc.version == "2" and "Patient head" in desc.notes and desc.metrics["patient_head"]["fit_patients"] == usable
    # the network is the same: identical slice probabilities
    src = load_model(model)
    x = torch.rand(2, 3, 1, 32, 32)
    torch.testing.assert_close(loaded.model(x), src.model(x), rtol=1e-2, atol=1e-3)  # float16 file

    study = sorted(p for p in cohort.iterdir() if p.is_dir())[-1]
    assert main(["predict", str(study), "--model", str(out), "--json", "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out)
    result = res["prediction"]
    assert result["decided_by"] == "patient_head"
    assert result["label"] in (RESPONDER, NON_RESPONDER)


def test_fit_patient_head_cli_soft_targets(lesion_cohort: tuple[Path, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    cohort, model = lesion_cohort
    common = ["fit-patient-head", str(cohort / "labels.csv"), "--model", str(model),
              "--cache-dir", str(tmp_path / "cache"), "--workers", "1"]
    out = tmp_path / "soft.safetensors"
    assert main([*common, "--out", str(out), "--soft-target-column", "p_true", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fitted_towards"] == "p_true"
    # a column the CSV lacks: a plain error naming it, and no file
    missing = tmp_path / "none.safetensors"
    assert main([*common, "--out", str(missing), "--soft-target-column", "p_model"]) == 2
    err = capsys.readouterr().err
    assert "labels.csv" in err and "'p_model' is missing" in err and "Traceback" not in err
    assert not missing.exists()
    # a named feature set, a list, and a name that is no feature (refused before any scoring)
    first = tmp_path / "first.safetensors"
    assert main([*common, "--out", str(first), "--features", "first", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["head"]["features"] == list(named_features("first", PHASES))
    assert main([*common, "--out", str(first), "--features", "rim_portal, lesion_count", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["head"]["features"] == ["rim_portal", "lesion_count"]
    assert main([*common, "--out", str(missing), "--features", "rim_portal,size"]) == 2
    err = capsys.readouterr().err
    assert "unknown feature(s) size" in err and "measures, all, first" in err and "Traceback" not in err
    assert not missing.exists()


def test_fit_patient_head_refuses_a_paper_head_model(tmp_path: Path, lesion_cohort: tuple[Path, Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main
    from app.inference.weights import WEIGHTS_SYNTHETIC, ModelDescription, save_model

    cfg = ModelConfig(backbone="tiny", input_size=32, extra_channels=16, hidden=16)
    path = tmp_path / "paper.safetensors"
    save_model(build_model(cfg).eval(), cfg, ModelDescription(name="t", version="1", weights_kind=WEIGHTS_SYNTHETIC), path)
    cohort, _ = lesion_cohort
    rc = main(["fit-patient-head", str(cohort / "labels.csv"), "--model", str(path), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "paper's head" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_a_patient_head_model_on_the_gpu_branch_matches_the_cpu(tmp_path: Path) -> None:
    """The CUDA branch (channels-last, float16 autocast) of a patient-head prediction, run on
    the CPU: the measures are taken in float32 whatever the autocast, and the patient's
    probability matches the CPU's."""
    from app.inference.arrays import phantom_arrays, study_from_arrays
    from app.inference.device import gpu_branch_on_cpu, place_model
    from app.inference.predictor import predict
    from app.inference.weights import WEIGHTS_SYNTHETIC, ModelDescription, load_model, save_model

    torch.manual_seed(2)
    cfg = ModelConfig.from_dict({**LESION.to_dict(), "input_size": 48, "aggregation": "patient_head",
                                 "patient_head": _head(("slice_score", "contrast_arterial", "log_total_area")).to_dict()})
    path = tmp_path / "head.safetensors"
    save_model(build_model(cfg).eval(), cfg, ModelDescription(name="t", version="1", weights_kind=WEIGHTS_SYNTHETIC),
               path)
    study = study_from_arrays(phantom_arrays(6, 64, seed=4))
    reference = predict(study, load_model(path, "cpu"))
    loaded = load_model(path, "cpu")
    place_model(loaded, gpu_branch_on_cpu())
    res = predict(study, loaded, batch_size=4, precision="auto")
    assert not res.device_fallback and res.precision == "fp16"
    assert res.decided_by == reference.decided_by == "patient_head"
    assert res.mean_probability == pytest.approx(reference.mean_probability, abs=0.05)
    assert [s.votes for s in res.slices] == [s.votes for s in reference.slices]
