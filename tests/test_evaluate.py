"""Evaluation reports, model comparison, the ablation grid and the CLI end to end on a small
synthetic DICOM cohort (the app's own scan → assembly → preprocessing path)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from app import stats
from app.training.ablation import build_grid, format_tables, run_ablation, variant_name
from app.training.evaluate import (
    ScoredCohort,
    bayes_optimal,
    compare_scored,
    evaluate_scored,
    format_report,
    write_report,
)


def _scored(seed: int, n_pat: int = 40, signal: float = 1.5) -> ScoredCohort:
    rng = np.random.default_rng(seed)
    y = (np.arange(n_pat) % 3 == 0).astype(np.int64)
    n_sl = rng.integers(3, 8, n_pat)
    group = np.repeat(np.arange(n_pat), n_sl)
    latent = rng.normal(size=n_pat) + signal * y
    logits = latent[group] + rng.normal(scale=0.8, size=group.size)
    probs = 1 / (1 + np.exp(-(logits - 0.7)))
    return ScoredCohort([f"P{i}" for i in range(n_pat)], y, probs, group)


def test_patient_aggregation_matches_the_predictor() -> None:
    from app.inference.result import RESPONDER, majority_vote

    sc = ScoredCohort(["a", "b", "c"], np.array([1, 0, 1]),
                      np.array([0.9, 0.8, 0.1, 0.2, 0.3, 0.6, 0.4, 0.45, 0.7]),
                      np.array([0, 0, 0, 1, 1, 2, 2, 2, 2]))
    np.testing.assert_allclose(sc.patient_mean_prob, [0.6, 0.25, (0.6 + 0.4 + 0.45 + 0.7) / 4])
    np.testing.assert_allclose(sc.patient_vote_fraction, [2 / 3, 0.0, 0.5])
    # patient c: a 2:2 tie decided by the mean probability 0.5375 → responder
    assert sc.patient_call.tolist() == [1, 0, 1]
    for i, probs in enumerate(([0.9, 0.8, 0.1], [0.2, 0.3], [0.6, 0.4, 0.45, 0.7])):
        assert sc.patient_call[i] == int(majority_vote(probs).label == RESPONDER)


def test_evaluate_scored_levels_and_report(tmp_path: Path) -> None:
    sc = _scored(0)
    rep = evaluate_scored(sc, n_boot=200, seed=1, model_name="m1")
    assert rep.patient.n == 40 and rep.slice.n == sc.slice_probs.size
    assert rep.patient.auc.auc == pytest.approx(stats.auc(sc.patient_labels, sc.patient_mean_prob))
    assert rep.slice.bootstrap.unit == "group"
    m = stats.binary_metrics(sc.patient_labels, sc.patient_call)
    assert rep.patient.bootstrap.intervals["accuracy"].value == pytest.approx(m["accuracy"])
    p_true = 1 / (1 + np.exp(-(np.where(sc.patient_labels == 1, 1.0, -1.0))))
    rep.bayes = bayes_optimal(sc.patient_labels, p_true)
    other = _scored(0, signal=0.2)
    rep.comparison = compare_scored(sc, other)
    assert rep.comparison["auc1"] > rep.comparison["auc2"]
    text = format_report(rep)
    assert "patient-level (n = 40" in text and "DeLong test vs second model" in text
    assert "Bayes-optimal AUC" in text
    # the rule in the report is the one the result panel names (one table, app.inference.config)
    assert rep.patient.note.startswith("score = mean over the slices; call = majority vote")
    assert "(probability > 0.5)" in rep.patient.note and rep.patient.note in text
    paths = write_report(rep, tmp_path / "out", evaluate_scored(other, n_boot=50))
    doc = json.loads(paths["json"].read_text())
    assert doc["patient_level"]["auc_delong"]["auc"] == pytest.approx(rep.patient.auc.auc)
    assert "second_model" in doc
    img = cv2.imread(str(paths["roc_patient"]))
    assert img is not None and img.shape[2] == 3


def test_compare_refuses_different_patients() -> None:
    a = _scored(0)
    b = _scored(1)
    b.patient_ids = [p + "x" for p in b.patient_ids]
    with pytest.raises(stats.StatsError, match="different patients"):
        compare_scored(a, b)


def test_grid_has_the_papers_variants() -> None:
    grid = build_grid(("phases",))
    assert [v.name for v in grid] == ["C", "A", "V", "AC", "AV", "CV", "three-phase"]
    full = build_grid()
    names = [v.name for v in full]
    assert "three-phase (vgg19)" in names and "three-phase (resnet50)" in names
    assert "three-phase (no attention)" in names and "AV (no attention)" in names
    assert len(names) == len(set((v.phases, v.backbone, v.attention) for v in full))
    assert variant_name(("plain", "portal"), "resnet18", True) == "CV"


def test_ablation_runs_and_formats_table() -> None:
    from test_training import tiny_config, toy_cohort

    from app.training.dataset import split_prepared

    data = split_prepared(toy_cohort(18, 4, n_slices=3), 0.4, seed=0)
    grid = [v for v in build_grid(("phases",)) if v.name in ("A", "V")]
    grid = [type(v)(v.table, v.phases, "tiny", v.attention) for v in grid]
    res = run_ablation(data, tiny_config(max_iterations=30, early_stop_on="auc"), grid,
                       n_boot=50)
    assert [r.variant.name for r in res.rows] == ["A (tiny)", "V (tiny)"]
    # the toy signal lives in the arterial phase only: the portal-only model cannot see it
    auc = {r.variant.name: r.auc.auc for r in res.rows}
    assert auc["A (tiny)"] > auc["V (tiny)"]
    table = format_tables(res)
    assert "Phase combinations (paper Table 2)" in table and "AUC (95% CI)" in table


@pytest.mark.slow
def test_cli_train_and_evaluate_on_dicom_cohort(tmp_path: Path) -> None:
    from app.cli import main
    from app.synthetic.cohort import generate_cohort
    from app.synthetic.options import StudyOptions

    cohort = generate_cohort(tmp_path / "cohort", 6, seed=5, options=StudyOptions(matrix=48))
    csv_path = cohort.labels_csv
    model = tmp_path / "m.safetensors"
    cache = tmp_path / "cache"
    common = ["--backbone", "tiny", "--input-size", "32", "--cache-dir", str(cache)]
    rc = main(["train", str(csv_path), "--out", str(model), *common, "--max-iterations", "3",
               "--batch-size", "4", "--val-fraction", "0.34", "--weights-kind", "synthetic",
               "--weight-decay", "1e-4", "--soft-target-column", "p_true", "--max-minutes", "60",
               "--test", str(csv_path), "--json"])
    assert rc == 0 and model.is_file()
    assert len(list(cache.glob("*.npz"))) == 6  # every study prepared once and cached
    from app.inference.weights import read_description

    desc = read_description(model)
    assert desc.weights_kind == "trained on synthetic phantoms"
    assert desc.architecture["input_size"] == 32
    assert "weight decay 0.0001" in desc.notes and "soft targets (the cohort's 'p_true'" in desc.notes
    assert desc.metrics["test"]["patients"] == 6
    assert desc.training_data["split"]["train"]["patients"] + \
        desc.training_data["split"]["val"]["patients"] == 6

    out = tmp_path / "eval"
    rc = main(["evaluate", str(csv_path), "--model", str(model), "--model2", str(model),
               "--out-dir", str(out), "--n-boot", "50", "--cache-dir", str(cache)])
    assert rc == 0
    doc = json.loads((out / "evaluation.json").read_text())
    assert doc["comparison"]["p_value"] == 1.0  # a model against itself
    assert doc["bayes_optimal"] is not None
    assert (out / "roc_patient.png").is_file() and (out / "evaluation.txt").is_file()

    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,study_dir\nA,x\n")
    assert main(["evaluate", str(bad), "--model", str(model)]) == 2
