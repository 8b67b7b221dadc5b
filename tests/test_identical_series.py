"""Identical series assigned to different phases need confirmation, even with ``--phase``
(issue 14, item 5).

Three copies of one portal-venous series under new UIDs, forced onto the three phases, were
predicted without a word. The files here are real DICOM: a synthetic study's portal series
rewritten three times by pydicom with new Series and SOP Instance UIDs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from app.dicom.assembly import assemble_folder
from app.dicom.studies import confirmation_problem, open_study

PREFIX = "1.2.826.0.1.3680043.8.498."


def _portal_files(cohort: Path) -> list[Path]:
    truth = json.loads(next(cohort.glob("*/truth.json")).read_text())
    portal = next(u for u, t in truth["series"].items() if t["phase"] == "portal")
    return sorted(p for p in cohort.rglob("*.dcm")
                  if pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID == portal)


def _write_copies(files: list[Path], out: Path, n: int) -> list[str]:
    """``n`` copies of one series under new Series/SOP Instance UIDs; returns their UIDs."""
    uids = []
    for k in range(n):
        series_uid = generate_uid(prefix=PREFIX)
        uids.append(series_uid)
        folder = out / f"copy{k}"
        folder.mkdir(parents=True)
        for i, path in enumerate(files):
            ds = pydicom.dcmread(path)
            ds.SeriesInstanceUID = series_uid
            ds.SOPInstanceUID = generate_uid(prefix=PREFIX)
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.SeriesNumber = 10 + k
            ds.SeriesDescription = f"PV copy {k}"
            ds.save_as(folder / f"IM{i:04d}.dcm")
    return uids


@pytest.fixture(scope="module")
def triplicate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A folder holding one portal-venous series three times (new UIDs), and their UIDs."""
    from app.synthetic.cohort import generate_cohort
    from app.synthetic.options import StudyOptions

    cohort = tmp_path_factory.mktemp("cohort") / "c"
    generate_cohort(cohort, 1, seed=11, options=StudyOptions(matrix=64, z_coverage_mm=160))
    out = tmp_path_factory.mktemp("triplicate")
    uids = _write_copies(_portal_files(cohort), out, 3)
    return out, uids


def _force(uids: list[str]) -> dict[str, str]:
    return dict(zip(("plain", "arterial", "portal"), uids, strict=True))


def test_identical_series_forced_onto_three_phases_need_confirmation(
        triplicate: tuple[Path, list[str]]) -> None:
    folder, uids = triplicate
    study = open_study(folder, _force(uids))
    assert study.assignment == _force(uids)
    assert len(study.identical_phases) == 3  # plain=arterial, plain=portal, arterial=portal
    assert all("identical images" in m for m in study.identical_phases)
    assert set(study.identical_phases) <= set(study.warnings)
    assert set(study.identical_phases) <= set(study.confirmation_reasons)
    assert study.needs_confirmation
    # the override does not settle it: confirmation is still asked for
    problem = confirmation_problem(study, _force(uids))
    assert problem is not None and "identical images" in problem


def test_scan_json_lists_the_identical_phases(triplicate: tuple[Path, list[str]]) -> None:
    from app.dicom.assembly import assembly_document

    folder, uids = triplicate
    _scan, results = assemble_folder(folder, _force(uids), keep_volumes=False)
    (study_info, outcome), = results
    doc = assembly_document(study_info, outcome)
    assert doc["needs_confirmation"]
    assert any("identical images" in w for w in doc["warnings"])


def test_different_phases_are_not_called_identical(tmp_path: Path) -> None:
    """The ordinary study: three acquisitions, no identical-images reason."""
    from app.synthetic.cohort import generate_cohort
    from app.synthetic.options import StudyOptions

    cohort = tmp_path / "c"
    generate_cohort(cohort, 1, seed=12, options=StudyOptions(matrix=64, z_coverage_mm=160))
    study = open_study(cohort)
    assert study.identical_phases == []
    assert not any("identical images" in r for r in study.confirmation_reasons)
    assert confirmation_problem(study, dict(study.assignment)) is None


def test_predict_refuses_identical_series_even_with_phase(
        triplicate: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    """``predict --phase`` on three copies exits 2 naming the identical images."""
    from app.cli import main

    folder, uids = triplicate
    phase = ",".join(f"{p}={u}" for p, u in _force(uids).items())
    code = main(["predict", str(folder), "--phase", phase])
    err = capsys.readouterr().err
    assert code == 2
    assert "identical images" in err


pytest.importorskip("PySide6")


@pytest.mark.gui
def test_app_asks_confirmation_for_identical_series_chosen_by_hand(  # type: ignore[no-untyped-def]
        qtbot, main_window, triplicate: tuple[Path, list[str]]) -> None:
    """In the app: the three copies set by hand on the three phases -> banner, Predict off."""
    w = main_window
    folder, uids = triplicate
    steps: list[str] = []
    w.stepDone.connect(steps.append)
    w.import_folder(folder)
    qtbot.waitUntil(lambda: "imported" in steps or bool(w.errors), timeout=120_000)
    assert not w.errors
    for phase, uid in _force(uids).items():
        steps.clear()
        shown = w.case.study
        w.browser.overrideRequested.emit(phase, uid)
        if shown is not None and shown.assignment.get(phase) == uid:
            continue
        qtbot.waitUntil(lambda: "assembled" in steps or bool(w.errors), timeout=120_000)
    assert not w.errors
    study = w.case.study
    assert study is not None and study.assignment == _force(uids)
    assert len(study.identical_phases) == 3
    assert w.case.needs_confirmation()
    assert not w.act_predict.isEnabled()
    assert w.browser.banner.isVisibleTo(w.browser)
    assert "identical images" in w.browser.banner_text.text()
