"""Two patients whose studies share one StudyInstanceUID can each be predicted (issue 19, 8)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from app.cli import main


@pytest.fixture(scope="module")
def shared_uid_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, list[str]]:
    """Two synthetic patients in one folder; the second's study UID rewritten to the first's."""
    from app.synthetic.cohort import generate_cohort
    from app.synthetic.options import StudyOptions

    out = tmp_path_factory.mktemp("shared-uid")
    generate_cohort(out / "gen", 2, seed=5, options=StudyOptions(matrix=96))
    a, b = sorted(p for p in (out / "gen").iterdir() if p.is_dir())
    files_a = sorted(p for p in a.rglob("*") if p.is_file() and p.suffix != ".json")
    uid = pydicom.dcmread(files_a[0], stop_before_pixels=True).StudyInstanceUID
    folder = out / "both"
    shutil.copytree(a, folder / a.name)
    shutil.copytree(b, folder / b.name)
    patients = []
    for f in sorted((folder / b.name).rglob("*")):
        if f.is_file() and f.suffix != ".json":
            ds = pydicom.dcmread(f)
            ds.StudyInstanceUID = uid
            ds.save_as(f)
    for d in (a, b):
        first = next(p for p in sorted(d.rglob("*")) if p.is_file() and p.suffix != ".json")
        patients.append(str(pydicom.dcmread(first, stop_before_pixels=True).PatientID))
    assert patients[0] != patients[1]
    return folder, uid, patients


def test_study_uid_alone_is_refused_with_the_way_out(
        shared_uid_folder: tuple[Path, str, list[str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    folder, uid, patients = shared_uid_folder
    rc = main(["predict", str(folder), "--study", uid, "--quiet", "--confirm"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--patient" in err and all(p in err for p in patients)


def test_each_patient_can_be_predicted(shared_uid_folder: tuple[Path, str, list[str]],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    folder, uid, patients = shared_uid_folder
    rc = main(["predict", str(folder), "--study", uid, "--patient", patients[1], "--json",
               "--quiet", "--device", "cpu", "--confirm"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    doc = json.loads(out.out)
    assert doc["patient_id"] == patients[1] and doc["study_uid"] == uid
    assert doc["prediction"]["total_votes"] > 0
    rc = main(["predict", str(folder), "--study", uid, "--patient", "nobody", "--quiet"])
    assert rc == 2 and "no study of patient 'nobody'" in capsys.readouterr().err
