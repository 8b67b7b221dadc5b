"""Hostile input through prediction (issue 14, items 3, 5 and 7): non-finite HU or outputs are
refused with a clear message, JSON never holds NaN, ``predict`` shows the assembly warnings
and the rejected files, and ``--json`` refusals print ``{"error": {...}}`` with the exit code."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from app.cli import main
from app.inference.arrays import phantom_arrays, study_from_arrays
from app.inference.config import ModelConfig
from app.inference.model import build_model
from app.inference.predictor import NonFiniteOutput, check_outputs, predict
from app.inference.preprocess import StudyInputError
from app.inference.weights import wrap_model

CFG = ModelConfig(backbone="tiny", input_size=32, extra_channels=16, hidden=16)


def _strict(text: str) -> object:
    """Parse JSON as a strict parser would: NaN/Infinity are not JSON."""
    def refuse(name: str) -> None:
        raise AssertionError(f"JSON holds the non-standard constant {name}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def tiny_model() -> object:
    torch.manual_seed(0)
    return wrap_model(build_model(CFG))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1e6])
def test_predict_refuses_non_finite_or_impossible_hu(tiny_model: object, bad: float) -> None:
    """RescaleSlope NaN gives NaN, RescaleIntercept 1e308 gives inf in float32: a slice like
    that used to vote silently (NaN → non-responder, inf → white → responder)."""
    arrays = phantom_arrays(4, 48, seed=1)
    arrays["portal"][2, 10:20, 10:20] = bad
    study = study_from_arrays(arrays)
    with pytest.raises(StudyInputError, match="portal series has non-finite") as err:
        predict(study, tiny_model, device="cpu")  # type: ignore[arg-type]
    assert "z = " in err.value.message and "nothing was predicted" in err.value.message


def test_finite_study_still_predicts(tiny_model: object) -> None:
    study = study_from_arrays(phantom_arrays(4, 48, seed=1))
    res = predict(study, tiny_model, device="cpu")  # type: ignore[arg-type]
    assert all(math.isfinite(s.probability) for s in res.slices)


def test_non_finite_model_output_is_refused() -> None:
    check_outputs(torch.tensor([0.2, 0.9]), None)
    with pytest.raises(NonFiniteOutput, match="1 of 3"):
        check_outputs(torch.tensor([0.2, float("nan"), 0.9]), None)
    with pytest.raises(NonFiniteOutput):
        check_outputs(torch.tensor([0.2, 0.9]), torch.tensor([1.0, float("inf")]))
    assert NonFiniteOutput("x").exit_code == 1


def test_model_with_nan_output_refuses_the_prediction(tiny_model: object,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A forward pass that returns NaN (a faulty model or device) ends in a refusal."""
    study = study_from_arrays(phantom_arrays(4, 48, seed=1))
    model = tiny_model.model  # type: ignore[attr-defined]
    real = model.forward

    def nan_forward(x: torch.Tensor, *a: object, **k: object) -> torch.Tensor:
        return real(x, *a, **k) * float("nan")

    monkeypatch.setattr(model, "forward", nan_forward)
    with pytest.raises(NonFiniteOutput):
        predict(study, tiny_model, device="cpu")  # type: ignore[arg-type]


def test_print_json_writes_null_for_non_finite_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    from app.commands._common import print_json, reset_json_state

    reset_json_state()
    print_json({"p": float("nan"), "q": [float("inf"), 1.5], "r": np.float32("nan"),
                "s": np.array([1.0, np.nan]), "t": (2.0, -float("inf"))})
    doc = _strict(capsys.readouterr().out)
    assert doc == {"p": None, "q": [None, 1.5], "r": None, "s": [1.0, None], "t": [2.0, None]}


# --------------------------------------------------------------------------------------------
# The command line


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from app.synthetic.cohort import generate_cohort
    from app.synthetic.options import StudyOptions

    out = tmp_path_factory.mktemp("hostile-predict")
    generate_cohort(out, 1, seed=31, options=StudyOptions(matrix=96))
    return next(p for p in out.iterdir() if p.is_dir())


def _portal_slice(folder: Path) -> Path:
    """A file of the middle of the portal series (the one with the most slices named last)."""
    series = sorted(p for p in folder.iterdir() if p.is_dir())[-1]
    files = sorted(series.glob("*.dcm"))
    return files[len(files) // 2]


@pytest.mark.parametrize(("attr", "value", "words"), [
    ("RescaleSlope", "NaN", "RescaleSlope nan"),
    ("RescaleIntercept", "1e308", "RescaleIntercept 1e+308"),
    ("PixelSpacing", ["1e308", "1e308"], "PixelSpacing 1e+308"),
])
def test_predict_shows_the_rejected_slice_and_never_writes_nan(
        patient: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        attr: str, value: object, words: str) -> None:
    folder = tmp_path / "case"
    shutil.copytree(patient, folder)
    bad = _portal_slice(folder)
    ds = pydicom.dcmread(bad)
    setattr(ds, attr, value)
    ds.save_as(bad)
    rc = main(["predict", str(folder), "--json", "--quiet", "--device", "cpu", "--confirm"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    doc = _strict(captured.out)
    assert isinstance(doc, dict)
    # the file is rejected at scan; the series goes on without it, and says so
    assert rc == 0, doc
    pred = doc["prediction"]
    assert all(math.isfinite(s["probability"]) for s in pred["slices"])
    assert math.isfinite(pred["mean_probability"])
    assert any(bad.name in w and words in w for w in doc["warnings"]), doc["warnings"]
    assert any("gap of" in w for w in doc["warnings"]), doc["warnings"]


def test_predict_text_prints_the_warnings(patient: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "case"
    shutil.copytree(patient, folder)
    _portal_slice(folder).unlink()  # a missing slice: the series has a gap
    rc = main(["predict", str(folder), "--quiet", "--device", "cpu", "--confirm"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "warning: portal series #" in out and "gap of" in out


def test_predict_json_refusal_prints_an_error_document(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("not DICOM")
    rc = main(["predict", str(tmp_path), "--json", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 2
    doc = _strict(captured.out)
    assert doc == {"error": {"kind": doc["error"]["kind"], "message": doc["error"]["message"],
                             "exit_code": 2}}
    assert doc["error"]["message"] in captured.err  # the same one line as on stderr
    # without --json, stdout stays empty
    rc = main(["predict", str(tmp_path), "--quiet"])
    assert rc == 2 and capsys.readouterr().out == ""


def test_predict_json_refusal_needing_confirmation(patient: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["predict", str(patient), "--json", "--quiet", "--sha256", "xyz"])
    doc = _strict(capsys.readouterr().out)
    assert rc == 2
    assert doc["error"]["kind"] == "InputError" and "--sha256" in doc["error"]["message"]


def test_internal_error_also_gives_a_json_document(
        patient: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*a: object, **k: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr("app.dicom.assembly.assemble_folder", broken)
    rc = main(["predict", str(patient), "--json", "--quiet"])
    captured = capsys.readouterr()
    doc = _strict(captured.out)
    assert rc == 1
    assert doc["error"]["exit_code"] == 1 and doc["error"]["kind"] == "RuntimeError"
    assert "simulated bug" in doc["error"]["message"]


def test_scan_json_refusals_give_exactly_one_document(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a folder without DICOM: scan writes its report (with the problem), and nothing else
    (tmp_path / "empty").mkdir()
    rc = main(["scan", str(tmp_path / "empty"), "--json"])
    doc = _strict(capsys.readouterr().out)
    assert rc == 2 and doc["problem"] == "no DICOM found" and "error" not in doc
    # a folder that does not exist: no report, so the error document
    rc = main(["scan", str(tmp_path / "missing"), "--json"])
    doc = _strict(capsys.readouterr().out)
    assert rc == 2 and doc["error"]["kind"] == "FolderError"


def test_prediction_on_lossy_compressed_images_says_so(patient: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """RELIABILITY.md 10: a series that was lossy compressed is still predicted on, but the
    prediction tells (and records) that its HU values are approximate."""
    folder = tmp_path / "case"
    shutil.copytree(patient, folder)
    portal = _portal_slice(folder).parent
    for path in portal.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.LossyImageCompression = "01"
        ds.save_as(path)
    rc = main(["predict", str(folder), "--json", "--quiet", "--device", "cpu", "--confirm"])
    doc = _strict(capsys.readouterr().out)
    assert rc == 0, doc
    lossy = [w for w in doc["warnings"] if "lossy compressed" in w]
    assert len(lossy) == 1 and lossy[0].startswith("portal series #"), doc["warnings"]
    assert "HU values are approximate" in lossy[0]
