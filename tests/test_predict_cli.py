"""``hcc-response predict`` and ``self-test``: the whole flow headless, on a generated study."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main


@pytest.fixture(scope="module")
def one_patient(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from app.synthetic.cohort import generate_cohort
    from app.synthetic.options import StudyOptions

    out = tmp_path_factory.mktemp("predict-cli")
    generate_cohort(out, 1, seed=31, options=StudyOptions(matrix=96))
    return next(p for p in out.iterdir() if p.is_dir())


def test_predict_json_records_and_writes_cams(one_patient: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "reg.sqlite"
    cams = tmp_path / "cams"
    rc = main(["predict", str(one_patient), "--json", "--quiet", "--device", "cpu",
               "--register", str(db), "--cam-dir", str(cams), "--confirm"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    pred = doc["prediction"]
    truth = json.loads((one_patient / "truth.json").read_text())
    assert doc["patient_id"] == truth.get("patient_id", doc["patient_id"])
    assert set(doc["assignment"]) == {"plain", "arterial", "portal"}
    assert pred["total_votes"] == sum(s["votes"] for s in pred["slices"]) > 0
    assert pred["label"] in ("responder", "non-responder")
    # the vote split is consistent with the per-slice calls, and each call with the slice's
    # probability against the model's own slice threshold (not the paper's 0.5)
    from app.inference.weights import default_model_path, read_description

    threshold = read_description(default_model_path()).architecture["threshold"]
    assert pred["responder_votes"] == sum(s["votes"] and s["label"] == "responder" for s in pred["slices"])
    assert all((s["label"] == "responder") == (s["probability"] > threshold) for s in pred["slices"])
    assert len(doc["cam_files"]) == 3 * len(pred["slices"])
    assert all(Path(f).is_file() for f in doc["cam_files"])

    from app.register import open_register

    with open_register(db) as reg:
        detail = reg.get_prediction(doc["register_id"])
        assert detail.record.model_sha256 == pred["model_sha256"]
        assert detail.record.responder_votes == pred["responder_votes"]
        assert reg.verify().ok


def test_predict_refuses_a_changed_model(one_patient: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from app.inference.weights import default_model_path

    model = tmp_path / "m.safetensors"
    shutil.copy(default_model_path(), model)
    rc = main(["predict", str(one_patient), "--quiet", "--model", str(model),
               "--sha256", "0" * 64, "--confirm"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "sha" in err.lower() and "Traceback" not in err


def test_predict_bad_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("not DICOM")
    rc = main(["predict", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1


def _netns_prefix() -> list[str] | None:
    """``unshare`` arguments that cut this process off every network, where allowed."""
    if shutil.which("unshare") is None:
        return None
    for args in (["unshare", "-n"], ["unshare", "-rn"]):
        if subprocess.run([*args, "true"], capture_output=True, timeout=30).returncode == 0:
            return args
    return None


def test_self_test_passes_with_the_network_cut_off(tmp_path: Path) -> None:
    """The offline guarantee at the OS level: no network namespace, the self-test still passes."""
    prefix = _netns_prefix()
    if prefix is None:
        pytest.skip("this machine does not allow a separate network namespace (unshare)")
    env = dict(os.environ, HCC_RESPONSE_HOME=str(tmp_path), QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([*prefix, sys.executable, "-m", "app", "self-test", "--device", "cpu"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "FAIL" not in out.stdout
    assert out.stdout.count("PASS") >= 8
