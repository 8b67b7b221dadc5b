"""One Patient ID used by different people: separate patients and a warning (issue 14, item 6).

Real DICOM files written by the test (pydicom): two people given the same Patient ID, told
apart by name or by birth date, were merged into one patient in the browser.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from dicom_factory import SeriesSpec, uid, write_series

from app.dicom.assembly import AssemblyError, check_set
from app.dicom.patients import patient_id_collisions, separate_patients
from app.dicom.scan import scan_folder


def _study(folder: Path, *, name: str, birth: str, study_uid: str | None = None,
           n_series: int = 1, pid: str = "P001") -> str:
    """Series of one study for one person; returns the study UID."""
    study_uid = study_uid or uid()
    for k in range(n_series):
        files = write_series(folder / f"{study_uid[-6:]}_{k}", SeriesSpec(
            n=3, series_number=2 + k, study_uid=study_uid, patient_id=pid, patient_name=name))
        for path in files:
            ds = pydicom.dcmread(path)
            ds.PatientBirthDate = birth
            ds.save_as(path)
    return study_uid


def _people(folder: Path) -> tuple[list[tuple[str, str, int]], list[str]]:
    scan = scan_folder(folder)
    warnings = separate_patients(scan)
    return [(p.patient_id, p.patient_name, len(p.studies)) for p in scan.patients], warnings


def test_same_id_different_names_are_two_patients_with_a_warning(tmp_path: Path) -> None:
    _study(tmp_path, name="Doe^Jane", birth="19600101")
    _study(tmp_path, name="Roe^Richard", birth="19700202")
    people, warnings = _people(tmp_path)
    assert sorted(people) == [("P001", "Doe^Jane", 1), ("P001", "Roe^Richard", 1)]
    assert len(warnings) == 1
    assert "'P001' is used by 2 different people" in warnings[0]
    assert "Doe^Jane, born 19600101" in warnings[0] and "Roe^Richard" in warnings[0]
    scan = scan_folder(tmp_path)
    separate_patients(scan)
    assert patient_id_collisions(scan) == {"P001": 2}
    assert all(warnings[0] in s.warnings for s in scan.series)  # shown by scan and the browser


def test_same_id_same_name_different_birth_dates_are_two_patients(tmp_path: Path) -> None:
    _study(tmp_path, name="Doe^Jane", birth="19600101")
    _study(tmp_path, name="Doe^Jane", birth="19810303")
    people, warnings = _people(tmp_path)
    assert people == [("P001", "Doe^Jane", 1), ("P001", "Doe^Jane", 1)]
    assert len(warnings) == 1 and "19810303" in warnings[0]


def test_one_person_with_two_studies_stays_one_patient(tmp_path: Path) -> None:
    """Case and trailing name components do not make another person; nor does a missing date."""
    _study(tmp_path, name="Doe^Jane", birth="19600101")
    _study(tmp_path, name="DOE^JANE^^", birth="19600101")
    _study(tmp_path, name="Doe^Jane", birth="")
    people, warnings = _people(tmp_path)
    assert [(pid, n) for pid, _name, n in people] == [("P001", 3)]
    assert warnings == []


def test_a_study_mixing_two_people_is_warned_and_not_assembled(tmp_path: Path) -> None:
    study_uid = _study(tmp_path, name="Doe^Jane", birth="19600101", n_series=2)
    _study(tmp_path / "other", name="Roe^Richard", birth="19700202", study_uid=study_uid)
    scan = scan_folder(tmp_path)
    warnings = separate_patients(scan)
    assert len(warnings) == 1 and "mixes series of different people" in warnings[0]
    study = scan.studies[0]
    assert len(study.series) == 3
    chosen = dict(zip(("plain", "arterial", "portal"), study.series, strict=True))
    with pytest.raises(AssemblyError, match="different people with the same Patient ID"):
        check_set(chosen)


def test_assembled_study_carries_the_warning(tmp_path: Path) -> None:
    """``assemble_folder`` separates the patients; each study's result says why."""
    from app.dicom.assembly import assemble_folder

    _study(tmp_path, name="Doe^Jane", birth="19600101")
    _study(tmp_path, name="Roe^Richard", birth="19700202")
    scan, results = assemble_folder(tmp_path)
    assert len(scan.patients) == 2
    assert len(results) == 2  # three-phase assembly fails here (one series): the error is kept
    for study, _outcome in results:
        assert any("is used by 2 different people" in w for s in study.series for w in s.warnings)


pytest.importorskip("PySide6")


@pytest.mark.gui
def test_browser_shows_separate_patients_and_the_warning(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from app.ui.study_browser import StudyBrowser

    _study(tmp_path, name="Doe^Jane", birth="19600101")
    _study(tmp_path, name="Roe^Richard", birth="19700202")
    scan = scan_folder(tmp_path)
    separate_patients(scan)
    browser = StudyBrowser()
    qtbot.addWidget(browser)
    browser.set_scan(scan)
    tops = [browser.tree.topLevelItem(i) for i in range(browser.tree.topLevelItemCount())]
    assert len(tops) == 2
    assert sorted(t.text(0) for t in tops) == ["⚠ Doe^Jane  [P001]", "⚠ Roe^Richard  [P001]"]
    assert all("used by 2 different people" in t.toolTip(0) for t in tops)
    assert "Patient ID P001 is used by 2 different people" in browser.summary.text()


@pytest.mark.parametrize("extra", [[], ["--no-assemble"]])
def test_scan_cli_lists_two_patients_with_the_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]) -> None:
    import json

    from app.cli import main

    _study(tmp_path, name="Doe^Jane", birth="19600101")
    _study(tmp_path, name="Roe^Richard", birth="19700202")
    main(["scan", str(tmp_path), "--json", *extra])
    doc = json.loads(capsys.readouterr().out)
    assert sorted((p["patient_id"], p["patient_name"]) for p in doc["patients"]) == [
        ("P001", "Doe^Jane"), ("P001", "Roe^Richard")]
    text = json.dumps(doc)
    assert "is used by 2 different people" in text


def test_register_refuses_a_second_person_under_one_id(tmp_path: Path) -> None:
    """The register would file the second person's case under the first one's name."""
    import dataclasses

    from app.register import RegisterInputError, open_register
    from app.register.samples import sample_record

    def rec(i: int, name: str, birth: str):  # type: ignore[no-untyped-def]
        return dataclasses.replace(sample_record(i), patient_id="P9", patient_name=name,
                                   birth_date=birth)

    with open_register(tmp_path / "r.sqlite") as reg:
        first = reg.add_prediction(rec(0, "Doe^Jane", "19600101"))
        # the same person written differently, or with the date unknown: one patient
        assert reg.add_prediction(rec(1, "DOE^JANE^", "1960-01-01")) > first
        assert reg.add_prediction(rec(2, "", "")) > first
        with pytest.raises(RegisterInputError, match="belongs to another person.*Roe"):
            reg.add_prediction(rec(3, "Roe^Richard", "19600101"))
        with pytest.raises(RegisterInputError, match="birth date 1960-01-01, not 1981-03-03"):
            reg.add_prediction(rec(4, "Doe^Jane", "19810303"))
        assert reg.count_cases() == 3
