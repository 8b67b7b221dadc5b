"""De-identified export of a case's three phases (issue 19, 9): DICOM PS3.15 basic profile.

The source study is a synthetic three-phase CT into which every attribute of PS3.15 Table
E.1-1 that pydicom's dictionary knows is written with a recognisable value (plus private
attributes and an overlay comment); the export must remove or replace each of them, remap
UIDs consistently and leave the pixels alone.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from app.cli import main
from app.dicom.deidentify import basic_profile
from app.register import open_register
from app.register.samples import sample_record

SECRET_TEXT = "SECRET-ANNA-MEIER"


def _secret_value(vr: str, n: int) -> object:
    """A value of ``vr`` that is recognisably the source's (never a dummy the profile writes)."""
    if vr in ("PN",):
        return "MEIER^ANNA"
    if vr == "CS":
        return "SECRET_ANNA"
    if vr in ("LO", "SH", "LT", "ST", "UT", "UC", "AE", "UR"):
        return SECRET_TEXT[:16] if vr in ("SH", "AE") else SECRET_TEXT
    if vr == "DA":
        return "20210317"
    if vr == "TM":
        return "101112"
    if vr == "DT":
        return "20210317101112"
    if vr == "AS":
        return "061Y"
    if vr in ("IS", "DS"):
        return "7"
    if vr == "UI":
        return f"1.2.826.0.1.3680043.10.543.{n}"
    if vr in ("US", "SS", "UL", "SL", "UV", "SV"):
        return 7
    if vr in ("FL", "FD"):
        return 7.5
    if vr == "AT":
        return 0x00100010
    if vr in ("OB", "OW", "UN", "OD", "OF", "OL", "OV"):
        return b"SECRETSECRET"
    if vr == "SQ":
        item = Dataset()
        item.CodeValue = "SECRET"
        item.CodeMeaning = SECRET_TEXT
        return DicomSequence([item])
    raise KeyError(vr)


def _profile_attributes_written(ds: Dataset) -> dict[int, object]:
    """Write every table attribute pydicom knows (and the file does not have) into ``ds``."""
    written = {}
    for n, row in enumerate(basic_profile()):
        if "x" in row.tag.lower() or row.tag[:4] in ("0000", "0002", "fffa", "fffc"):
            continue  # repeating groups, command and file meta elements, signatures, padding
        tag = int(row.tag, 16)
        if tag in ds or tag == 0x7FE00010:
            continue
        try:
            vr = dictionary_VR(tag).split(" or ")[0]
            value = _secret_value(vr, n)
        except KeyError:
            continue
        ds.add_new(tag, vr, value)
    listed = {int(r.tag, 16) for r in basic_profile() if "x" not in r.tag.lower()}
    for elem in ds:
        if int(elem.tag) in listed:
            written[int(elem.tag)] = elem.value
    return written


@pytest.fixture(scope="module")
def case_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str],
                                                                   dict[int, object]]:
    """A three-phase study with every Table E.1-1 attribute set; phase → series UID."""
    from app.synthetic.cohort import generate_cohort
    from app.synthetic.options import StudyOptions

    out = tmp_path_factory.mktemp("deid-src")
    generate_cohort(out / "gen", 1, seed=3, options=StudyOptions(matrix=64))
    study = next(p for p in (out / "gen").iterdir() if p.is_dir())
    folder = out / "study"
    shutil.copytree(study, folder)
    truth = json.loads((folder / "truth.json").read_text()) if (folder / "truth.json").exists() \
        else {}
    series: dict[str, str] = {}
    written: dict[int, object] = {}
    for f in sorted(folder.rglob("*.dcm")) or sorted(p for p in folder.rglob("*")
                                                     if p.is_file() and p.suffix != ".json"):
        ds = pydicom.dcmread(f)
        written = _profile_attributes_written(ds)
        block = ds.private_block(0x0029, "HOSPITAL PRIVATE", create=True)
        block.add_new(0x01, "LO", SECRET_TEXT)
        ds.add_new(0x60004000, "LT", SECRET_TEXT)  # Overlay Comments, group 60xx
        ds.save_as(f)
        series.setdefault(str(ds.SeriesDescription or ds.SeriesNumber), ds.SeriesInstanceUID)
    del truth
    assert len(series) == 3
    return folder, series, written


def _record_case(db: Path, folder: Path, series: dict[str, str]) -> int:
    phases = dict(zip(("plain", "arterial", "portal"), sorted(series.values()), strict=True))
    record = dataclasses.replace(sample_record(0), series_uids=phases,
                                 source_folder=str(folder))
    with open_register(db) as reg:
        return reg.add_prediction(record)


@pytest.fixture
def recorded(case_source: tuple[Path, dict[str, str], dict[int, object]],
             tmp_path: Path) -> tuple[Path, int]:
    """A register in ``tmp_path`` holding the source study as one case: (register, case id)."""
    folder, series, _ = case_source
    db = tmp_path / "r.sqlite"
    return db, _record_case(db, folder, series)


def _read_all(folder: Path) -> list[Dataset]:
    return [pydicom.dcmread(f) for f in sorted(folder.rglob("*.dcm"))]


def test_every_table_e1_1_attribute_is_removed_or_replaced(
        case_source: tuple[Path, dict[str, str], dict[int, object]], tmp_path: Path,
        recorded: tuple[Path, int], capsys: pytest.CaptureFixture[str]) -> None:
    folder, _series, written = case_source
    assert len(written) > 300  # the source really carries the table, not a handful of tags
    db, case = recorded
    out = tmp_path / "export"
    rc = main(["register", "--register", str(db), "export-images", str(case), str(out),
               "--deidentify", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0
    exported = _read_all(out)
    sources = {pydicom.dcmread(f).SOPInstanceUID: pydicom.dcmread(f)
               for f in sorted(folder.rglob("*")) if f.is_file() and f.suffix != ".json"}
    assert len(exported) == len(sources) == sum(doc["files"].values())

    kept = []
    for ds in exported:
        for tag, value in written.items():
            if tag in ds and ds[tag].value == value and ds[tag].value not in ("", None):
                kept.append(f"{keyword_for_tag(tag) or hex(tag)}")
        assert not any(e.tag.is_private for e in ds), "private attributes must be removed"
        assert 0x60004000 not in ds
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert ds.PatientID == doc["patient_key"]
        assert SECRET_TEXT not in str(ds) and "MEIER" not in str(ds)
    assert not kept, f"Table E.1-1 attributes left unchanged: {sorted(set(kept))}"


def test_uids_are_remapped_consistently_and_pixels_kept(
        case_source: tuple[Path, dict[str, str], dict[int, object]], tmp_path: Path,
        recorded: tuple[Path, int], capsys: pytest.CaptureFixture[str]) -> None:
    folder, series, _ = case_source
    db, case = recorded
    first, second = tmp_path / "a", tmp_path / "b"
    for dest in (first, second):
        assert main(["register", "--register", str(db), "export-images", str(case), str(dest),
                     "--deidentify"]) == 0
    capsys.readouterr()
    a, b = _read_all(first), _read_all(second)
    src = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.suffix != ".json":
            ds = pydicom.dcmread(f)
            src[(ds.SeriesInstanceUID, int(ds.InstanceNumber))] = ds
    # one study, one new series per phase, new instance UIDs, file meta matching
    assert len({ds.StudyInstanceUID for ds in a}) == 1
    assert a[0].StudyInstanceUID not in {s.StudyInstanceUID for s in src.values()}
    assert len({ds.SeriesInstanceUID for ds in a}) == 3
    assert not {ds.SeriesInstanceUID for ds in a} & set(series.values())
    assert len({ds.SOPInstanceUID for ds in a}) == len(a)
    assert all(ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID for ds in a)
    frames_src = {s.FrameOfReferenceUID for s in src.values()}
    assert len({ds.FrameOfReferenceUID for ds in a}) == len(frames_src)
    # the same register exports the same UIDs again (a study centre can link two exports)
    assert [ds.SOPInstanceUID for ds in a] == [ds.SOPInstanceUID for ds in b]
    # pixels untouched: every exported slice equals one source slice
    src_pixels = {s.pixel_array.tobytes() for s in src.values()}
    assert all(ds.pixel_array.tobytes() in src_pixels for ds in a)
    assert all(np.array_equal(x.pixel_array, y.pixel_array) for x, y in zip(a, b, strict=True))
    with open_register(db, read_only=True) as reg:
        assert len(reg.events(prediction_id=case, kind="image_export")) == 2


def test_export_refuses_without_deidentify_or_into_an_existing_folder(
        tmp_path: Path, recorded: tuple[Path, int], capsys: pytest.CaptureFixture[str]) -> None:
    db, case = recorded
    with pytest.raises(SystemExit):  # argparse: --deidentify is required
        main(["register", "--register", str(db), "export-images", str(case), str(tmp_path / "x")])
    (tmp_path / "taken").mkdir()
    rc = main(["register", "--register", str(db), "export-images", str(case),
               str(tmp_path / "taken"), "--deidentify"])
    assert rc == 2 and "exists already" in capsys.readouterr().err
    assert list((tmp_path / "taken").iterdir()) == []
    assert not list(tmp_path.glob("*.partial"))


def test_register_tab_exports_the_selected_case_deidentified(
        case_source: tuple[Path, dict[str, str], dict[int, object]], tmp_path: Path,
        recorded: tuple[Path, int], qtbot) -> None:  # type: ignore[no-untyped-def]
    """The GUI action: select the case, the button becomes available, the export is written."""
    from app.ui.register_tab import RegisterTab

    folder = case_source[0]
    db, case = recorded
    with open_register(db) as reg:
        tab = RegisterTab(reg)
        qtbot.addWidget(tab)
        qtbot.waitUntil(lambda: not tab.jobs.busy, timeout=10000)
        assert not tab.images_button.isEnabled()
        assert tab.select_id(case)
        assert tab.images_button.isEnabled()
        assert tab.export_images(case, tmp_path) is not None  # a job in a worker
        qtbot.waitUntil(lambda: not tab.jobs.busy, timeout=120000)
        written = tmp_path / f"case-{case}-deidentified"
        assert "de-identified images written" in tab.status.text()
        exported = _read_all(written)
        assert len(exported) == len([f for f in folder.rglob("*")
                                     if f.is_file() and f.suffix != ".json"])
        assert all(ds.PatientIdentityRemoved == "YES" for ds in exported)
