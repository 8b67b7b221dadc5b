"""`scripts/make_demo_model.sh` end to end at toy size: the recipe that regenerates the shipped
model must keep working (cohorts with label maps, training, the patient head, evaluation with
Grad-CAM mass), and with no RECIPE it must run the shipped file's lesion recipe; the recipe's
figures are then read by bench/demo_recipe.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "make_demo_model.sh"


@pytest.mark.skipif(sys.platform == "win32", reason="a bash script")
def test_default_recipe_is_the_shipped_lesion_recipe_end_to_end(tmp_path: Path) -> None:
    from app.inference.patient_head import named_features
    from app.inference.weights import load_model, read_description, recorded_sha256

    out = tmp_path / "model.safetensors"
    env = {**os.environ, "PY": sys.executable, "WORK": str(tmp_path / "work"), "OUT": str(out),
           "EVAL_DIR": str(tmp_path / "work" / "eval"), "DEVICE": "auto", "WORKERS": "1",
           "TRAIN_COHORTS": "101:12", "N_TEST": "6", "N_CAL": "8", "MAX_ITERATIONS": "2",
           "QT_QPA_PLATFORM": "offscreen"}
    env.pop("RECIPE", None)
    r = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "(recipe lesion)" in r.stderr
    loaded = load_model(out, expected_sha256=recorded_sha256(out))
    cfg = loaded.config
    assert (cfg.backbone, cfg.head, cfg.aggregation) == ("small", "lesion", "patient_head")
    assert cfg.liver_gate and cfg.patient_head is not None
    assert cfg.patient_head.features == named_features("measures", cfg.phases)  # 2026.6: not the network's score
    desc = read_description(out)
    assert desc.version == "2026.6"
    assert "Lesion recipe" in desc.notes and "patient head" in desc.notes.lower()
    assert "not the network's own score" in desc.notes
    assert desc.metrics["test"]["patients"] >= 5
    evaluation = json.loads((tmp_path / "work" / "eval" / "evaluation.json").read_text())
    assert "gradcam_mass" in evaluation

    bench = subprocess.run([sys.executable, str(ROOT / "bench" / "demo_recipe.py"), "report",
                            str(tmp_path / "work"), "--elapsed-s", "7300", "--json"],
                           capture_output=True, text=True, timeout=60)
    assert bench.returncode == 0, bench.stderr
    rows = {r["name"]: r for r in json.loads(bench.stdout)}
    auc = evaluation["patient_level"]["auc_delong"]["auc"]
    assert rows["patient AUC"]["value"] == pytest.approx(auc)
    ratio = rows["AUC / Bayes-optimal"]
    assert ratio["met"] == (ratio["value"] >= 0.9)
    shown = evaluation["gradcam_mass"]["displayed_liver_share"]
    assert rows["Grad-CAM liver share, as displayed"]["met"] == (shown >= 0.7)
    assert rows["end to end, minutes (cpu)"]["met"] is False  # 7,300 s is over the 2-hour bound


@pytest.mark.skipif(sys.platform == "win32", reason="a bash script")
def test_an_unknown_lesion_recipe_is_refused_before_any_work(tmp_path: Path) -> None:
    env = {**os.environ, "PY": sys.executable, "WORK": str(tmp_path / "work"), "RECIPE": "lesion",
           "LESION_RECIPE": "2027.1"}
    r = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "LESION_RECIPE must be 2026.6, 2026.5 or 2026.4, not 2027.1" in r.stderr
    assert not (tmp_path / "work").exists()
