"""DICOM results: the prediction SR and the Grad-CAM captures, written, read back and validated.

A real synthetic study is assembled and predicted with the bundled model; the objects are read
back with pydicom and every value is compared with the prediction they came from.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pydicom
import pytest
from dicom_factory import synthetic_patient

from app import INTENDED_USE, __version__
from app.cli import main
from app.export.errors import ExportError
from app.export.sources import instance_paths
from app.export.sr import content_tree_text, read_prediction_sr
from app.export.writer import choose_levels, export_dicom

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def patient_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_patient(tmp_path_factory.mktemp("export-dicom"), seed=41, matrix=96)


@pytest.fixture(scope="module")
def case(patient_dir: Path) -> dict[str, Any]:
    """The study, its prediction and its Grad-CAM, computed once for the module."""
    from app.dicom.assembly import assemble_folder
    from app.inference.gradcam import gradcam_study
    from app.inference.predictor import predict
    from app.inference.weights import load_bundled_model

    scan, results = assemble_folder(patient_dir, keep_volumes=True)
    study = results[0][1]
    loaded = load_bundled_model(device="cpu")
    result = predict(study, loaded)
    cams = gradcam_study(loaded, study)
    return {"scan": scan, "study": study, "result": result, "cams": cams}


@pytest.fixture(scope="module")
def exported(case: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("dicom-out")
    study = case["study"]
    return export_dicom(study, case["result"], case["cams"],
                        instance_paths(case["scan"], study.assignment.values()), out)


def test_sr_reads_back_every_value(case: dict[str, Any], exported: Any) -> None:
    result, study = case["result"], case["study"]
    ds = pydicom.dcmread(exported.sr_file)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
    sr = read_prediction_sr(ds)
    assert sr.label == result.label
    assert (sr.responder_votes, sr.total_votes) == (result.responder_votes, result.total_votes)
    assert sr.mean_probability == pytest.approx(result.mean_probability, abs=1e-6)
    assert sr.tie == result.tie and sr.tie_rule == result.tie_rule
    assert (sr.model_name, sr.model_version) == (result.model_name, result.model_version)
    assert sr.model_sha256 == result.model_sha256 and len(sr.model_sha256) == 64
    assert sr.weights_kind == result.weights_kind
    assert sr.device == result.device
    assert sr.software_version == f"HCC Response {__version__}"
    assert sr.intended_use == INTENDED_USE
    assert sr.warnings == result.warnings
    assert sr.series_uids == study.assignment
    for phase in study.phases:
        used = [study.volumes[phase].sop_instance_uids[p.index[phase]] for p in study.pairs]
        assert sr.source_images[phase] == list(dict.fromkeys(used))
    # the SR sits in the patient's study, with the patient's identity copied from the source
    source = pydicom.dcmread(next(iter(instance_paths(case["scan"], study.assignment.values()).values())))
    for attr in ("PatientID", "PatientName", "StudyInstanceUID", "StudyDate", "AccessionNumber"):
        assert ds.get(attr) == source.get(attr), attr
    assert ds.CompletionFlag == "COMPLETE" and ds.VerificationFlag == "UNVERIFIED"
    # every source series is listed in the evidence a PACS uses to link SR and images
    evidence = {s.SeriesInstanceUID for st in ds.CurrentRequestedProcedureEvidenceSequence
                for s in st.ReferencedSeriesSequence}
    assert evidence == set(study.assignment.values())


def test_text_outside_latin_1_survives_the_round_trip(case: dict[str, Any], tmp_path: Path) -> None:
    """Source files in ISO_IR 100 (Latin-1), model texts with an em dash and Greek letters."""
    import dataclasses

    study = case["study"]
    result = dataclasses.replace(case["result"], model_name="site-model β",
                                 weights_kind="random-initialised — not trained",
                                 warnings=["the model's weights are random-initialised — not "
                                           "trained: the result is meaningless"])
    exp = export_dicom(study, result, case["cams"],
                       instance_paths(case["scan"], study.assignment.values()), tmp_path)
    ds = pydicom.dcmread(exp.sr_file)
    sr = read_prediction_sr(ds)
    assert (sr.model_name, sr.weights_kind) == ("site-model β", "random-initialised — not trained")
    assert sr.warnings == result.warnings
    source = pydicom.dcmread(next(iter(instance_paths(case["scan"], study.assignment.values()).values())))
    assert ds.PatientName == source.PatientName


def test_sr_content_tree_as_text(exported: Any) -> None:
    text = content_tree_text(pydicom.dcmread(exported.sr_file))
    first = text.splitlines()[0]
    assert first.startswith('CONTAINER (18748-4, LN, "Diagnostic Imaging Report")')
    assert text.count('CONTAINER (SRCSER, 99HCCR, "Source series")') == 3
    assert "Algorithm Name" in text and "sha256=" in text


def test_captures_are_flagged_and_cite_their_slices(case: dict[str, Any], exported: Any) -> None:
    study = case["study"]
    assert exported.pair_indices == choose_levels(len(study.pairs))
    assert len(exported.capture_files) == 3
    sr = pydicom.dcmread(exported.sr_file)
    for n, (path, k) in enumerate(zip(exported.capture_files, exported.pair_indices, strict=True), 1):
        sc = pydicom.dcmread(path)
        assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
        assert sc.BurnedInAnnotation == "YES"
        assert sc.PhotometricInterpretation == "RGB" and sc.SamplesPerPixel == 3
        assert sc.pixel_array.shape == (sc.Rows, sc.Columns, 3)
        assert sc.StudyInstanceUID == sr.StudyInstanceUID and sc.PatientID == sr.PatientID
        assert sc.SeriesInstanceUID == exported.capture_series_uid != sr.SeriesInstanceUID
        assert sc.InstanceNumber == n
        pair = study.pairs[k]
        cited = [r.ReferencedSOPInstanceUID for r in sc.SourceImageSequence]
        assert cited == [study.volumes[p].sop_instance_uids[pair.index[p]] for p in study.phases]
        assert "Grad-CAM" in sc.DerivationDescription


def test_capture_shows_overlay_colour_bar_and_text(case: dict[str, Any], exported: Any) -> None:
    import numpy as np

    sc = pydicom.dcmread(exported.capture_files[1])
    rgb = sc.pixel_array.astype(int)
    # the colour bar: a column whose colour runs from red (top, 1.0) to blue (bottom, 0)
    reds = np.where((rgb[..., 0] > 200) & (rgb[..., 2] < 60))
    blues = np.where((rgb[..., 2] > 100) & (rgb[..., 0] < 30) & (rgb[..., 1] < 30))
    assert reds[0].size and blues[0].size and reds[0].min() < blues[0].max()
    # burned-in white text in the band above the panels
    band = rgb[: rgb.shape[0] // 5]
    white = band.min(axis=2) > 128  # anti-aliased white glyphs on the black band
    assert white.sum() > 100 and (band.max(axis=2)[~white] < 129).all()


def test_dciodvfy_finds_no_error(exported: Any) -> None:
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed; "
                    "scripts/install_dicom_tools.sh installs it where apt-get works")
    for path in exported.files:
        run = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
        report = run.stdout + run.stderr
        errors = [line for line in report.splitlines() if line.startswith("Error")]
        assert not errors, f"{path.name}: {errors}"
        # the only warnings allowed are about our own local coding scheme
        warnings = [line for line in report.splitlines()
                    if line.startswith("Warning") and "99HCCR" not in line]
        assert not warnings, f"{path.name}: {warnings}"


def test_missing_source_file_leaves_nothing_behind(case: dict[str, Any], tmp_path: Path) -> None:
    study = case["study"]
    files = instance_paths(case["scan"], study.assignment.values())
    moved = dict(files)
    gone = study.volumes["arterial"].sop_instance_uids[study.pairs[-1].index["arterial"]]
    moved[gone] = tmp_path / "deleted.dcm"  # the file is no longer where the scan found it
    out = tmp_path / "out"
    with pytest.raises(ExportError, match="cannot read source image"):
        export_dicom(study, case["result"], case["cams"], moved, out)
    assert not out.exists() or not any(out.iterdir())


def test_unwritable_destination_is_a_clear_error(case: dict[str, Any], tmp_path: Path) -> None:
    study = case["study"]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError, match="cannot write to"):
        export_dicom(study, case["result"], case["cams"],
                     instance_paths(case["scan"], study.assignment.values()), blocker / "dicom")


def test_failure_while_moving_into_place_removes_the_partial_set(
        case: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    study = case["study"]
    real_replace = os.replace
    calls = {"n": 0}

    def replace_then_fail(src: Any, dst: Any) -> None:  # simulated full disk on the third file
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr("app.export.writer.os.replace", replace_then_fail)
    out = tmp_path / "out"
    with pytest.raises(ExportError, match="No space left"):
        export_dicom(study, case["result"], case["cams"],
                     instance_paths(case["scan"], study.assignment.values()), out)
    assert list(out.iterdir()) == []


def test_level_without_a_map_is_refused(case: dict[str, Any], tmp_path: Path) -> None:
    study = case["study"]
    with pytest.raises(ExportError, match="no Grad-CAM map"):
        export_dicom(study, case["result"], case["cams"],
                     instance_paths(case["scan"], study.assignment.values()), tmp_path,
                     levels=[len(study.pairs) + 5])


def test_not_a_prediction_sr_is_refused(patient_dir: Path) -> None:
    ds = pydicom.dcmread(next(patient_dir.rglob("*.dcm")))
    with pytest.raises(ExportError, match="not an HCC Response prediction SR"):
        read_prediction_sr(ds)


@pytest.mark.parametrize(("n", "count", "expected"), [
    (0, 3, []), (2, 3, [0, 1]), (8, 3, [2, 4, 6]), (30, 3, [7, 15, 22]), (10, 1, [5]),
])
def test_choose_levels(n: int, count: int, expected: list[int]) -> None:
    assert choose_levels(n, count) == expected


def test_predict_cli_writes_dicom_and_audits_it(patient_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    db, out = tmp_path / "reg.sqlite", tmp_path / "pacs-out"
    rc = main(["predict", str(patient_dir), "--json", "--quiet", "--device", "cpu", "--confirm",
               "--register", str(db), "--dicom-out", str(out)])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    exp = doc["dicom_export"]
    assert sorted(Path(f).name for f in [exp["sr_file"], *exp["capture_files"]]) == sorted(
        p.name for p in out.iterdir())
    sr = read_prediction_sr(pydicom.dcmread(exp["sr_file"]))
    assert sr.label == doc["prediction"]["label"]
    assert sr.responder_votes == doc["prediction"]["responder_votes"]

    from app.register import open_register

    with open_register(db) as reg:
        # the SR says everything the prediction was shown and recorded with, not only the
        # model's own warnings (the images' - a gap, lossy compression - among them)
        recorded = reg.get_prediction(doc["register_id"]).record.warnings
        assert sr.warnings == recorded
        assert set(doc["warnings"]) <= set(recorded) and len(recorded) > len(doc["prediction"]["warnings"])
        events = reg.events(prediction_id=doc["register_id"], kind="dicom_export")
        assert len(events) == 1
        assert events[0].payload["sr_sop_uid"] == exp["sr_sop_uid"]
        assert reg.verify().ok


def test_predict_cli_bad_dicom_out_is_exit_2(patient_dir: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(["predict", str(patient_dir), "--quiet", "--device", "cpu", "--confirm",
               "--dicom-out", str(blocker / "sub")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "cannot write to" in err and "Traceback" not in err
