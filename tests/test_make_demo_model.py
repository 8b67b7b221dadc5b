"""`scripts/make_demo_model.sh` end to end at toy size: the recipe that regenerates the shipped
model must keep working (cohorts with label maps, training, the patient head, evaluation with
Grad-CAM mass), and with no RECIPE it must run the shipped file's lesion recipe."""

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
    from app.inference.weights import load_model, read_description, recorded_sha256

    out = tmp_path / "model.safetensors"
    env = {**os.environ, "PY": sys.executable, "WORK": str(tmp_path / "work"), "OUT": str(out),
           "EVAL_DIR": str(tmp_path / "eval"), "DEVICE": "auto", "WORKERS": "1",
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
    desc = read_description(out)
    assert "Lesion recipe" in desc.notes and "patient head" in desc.notes.lower()
    assert desc.metrics["test"]["patients"] >= 5
    evaluation = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert "gradcam_mass" in evaluation
