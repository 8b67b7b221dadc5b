"""A prediction the register cannot take is shown, kept and recorded at the next start (issue 19,
fault 1)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import fs_faults
import pytest
from fs_faults import fill_disk

from app import paths
from app.cli import main
from app.register import open_register
from app.register.db import head_revision
from app.register.pending import pending_entries, record_or_keep, replay
from app.register.samples import sample_record

# the real-fault fixtures of fs_faults, used by name below
mounts = fs_faults.mounts
small_disk = fs_faults.small_disk


@pytest.fixture(scope="module")
def one_patient(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from app.synthetic.cohort import generate_cohort
    from app.synthetic.options import StudyOptions

    out = tmp_path_factory.mktemp("pending-predict")
    generate_cohort(out, 1, seed=31, options=StudyOptions(matrix=96))
    return next(p for p in out.iterdir() if p.is_dir())


def test_predict_on_a_full_disk_keeps_the_result_and_records_it_at_the_next_start(
        one_patient: Path, tmp_path: Path, small_disk: Callable[[int], Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    disk = small_disk(512)
    db = disk / "reg.sqlite"
    with open_register(db):
        pass
    filler = fill_disk(disk)

    rc = main(["predict", str(one_patient), "--json", "--quiet", "--device", "cpu",
               "--register", str(db), "--confirm"])
    out = capsys.readouterr()
    assert rc == 1
    doc = json.loads(out.out)  # the result the user waited for is still shown, whole
    assert doc["register_id"] is None
    assert doc["prediction"]["total_votes"] > 0
    assert "disk is full" in doc["register_error"]
    assert "kept in" in out.err and "next time" in out.err
    (entry,) = pending_entries()
    assert entry.register == str(db.resolve()) and "disk is full" in entry.reason
    assert entry.record.responder_votes == doc["prediction"]["responder_votes"]

    filler.unlink()  # space again: the next start of any command records it
    rc = main(["register", "--register", str(db), "list", "--json"])
    out = capsys.readouterr()
    assert rc == 0
    assert "now recorded in the register" in out.err
    listed = json.loads(out.out)
    assert listed["total"] == 1
    assert not paths.has_pending_records()
    with open_register(db, read_only=True) as reg:
        (row,) = reg.list_cases()
        got = reg.get_prediction(row.id).record
        assert (got.study_uid, got.created_at, got.slice_results, got.model_sha256) == (
            entry.record.study_uid, entry.record.created_at, entry.record.slice_results,
            doc["prediction"]["model_sha256"])
        assert reg.verify().ok


def _newer_schema(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("UPDATE alembic_version SET version_num = '0999'")
    con.commit()
    con.close()


def test_kept_record_stays_pending_with_the_new_reason_and_is_never_recorded_twice(
        tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    open_register(db).close()
    _newer_schema(db)
    record = sample_record(7)
    saved = record_or_keep(db, record)
    assert saved.case_id is None and saved.pending is not None
    assert "newer version" in saved.message and str(saved.pending_file) in saved.message

    # still impossible: kept, with one more attempt counted
    report = replay()
    assert report.recorded == [] and [e.attempts for e in report.pending] == [2]

    # the register is usable again: recorded once, even if the first replay's removal of the
    # entry was lost (the entry is put back by hand to simulate that crash)
    con = sqlite3.connect(db)
    con.execute("UPDATE alembic_version SET version_num = ?", (head_revision(),))
    con.commit()
    con.close()
    saved_line = paths.pending_records_file().read_text()
    first = replay()
    assert [case for _, case in first.recorded] == [1]
    paths.pending_records_file().write_text(saved_line)
    second = replay()
    assert [case for _, case in second.recorded] == [1]
    with open_register(db) as reg:
        assert reg.count_cases() == 1
        got = reg.get_prediction(1).record
        assert (got.study_uid, got.created_at, got.slice_results) == (
            record.study_uid, record.created_at, record.slice_results)


def test_a_torn_last_line_loses_nothing_before_it(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    open_register(db).close()
    _newer_schema(db)
    record_or_keep(db, sample_record(1))
    with paths.pending_records_file().open("a") as fh:
        fh.write('{"id": "torn", "reg')  # a crash while appending
    assert len(pending_entries()) == 1
    replay()  # the unreadable line is kept as it is, not dropped
    assert paths.pending_records_file().read_text().endswith('{"id": "torn", "reg\n')
    assert len(pending_entries()) == 1


def test_pending_lists_what_waits_and_why(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.sqlite"
    open_register(db).close()
    _newer_schema(db)
    record_or_keep(db, sample_record(3))
    capsys.readouterr()
    assert main(["register", "pending", "--json"]) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    (entry,) = doc["pending"]
    assert entry["study_uid"] == sample_record(3).study_uid
    assert "newer version" in entry["reason"] and entry["attempts"] == 2  # the start replayed it
    assert "still waiting" in out.err


def test_a_record_refused_for_its_content_is_reported_not_kept(tmp_path: Path) -> None:
    """Replaying it could never succeed: the caller shows it, nothing piles up."""
    db = tmp_path / "r.sqlite"
    first = sample_record(1)
    assert record_or_keep(db, first).case_id == 1
    other_patient = dataclasses.replace(sample_record(2), study_uid=first.study_uid)
    saved = record_or_keep(db, other_patient)
    assert saved.case_id is None and saved.pending is None
    assert "another patient" in saved.message and "kept" not in saved.message
    assert not paths.has_pending_records()


def test_a_register_that_is_gone_is_waited_for_not_created_anew(tmp_path: Path) -> None:
    """E.g. a register on a drive that is not mounted at the next start."""
    db = tmp_path / "drive" / "r.sqlite"
    db.parent.mkdir()
    open_register(db).close()
    _newer_schema(db)
    record_or_keep(db, sample_record(4))
    db.unlink()  # the drive's register is not there now
    report = replay()
    assert report.recorded == [] and "there is no register" in report.pending[0].reason
    assert not db.exists()
