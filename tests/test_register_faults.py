"""A full disk or a read-only location gives a clear error, nothing half-written, and the
caller's prediction can be saved again (RELIABILITY.md 24)."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from app.register import (
    RegisterFullError,
    RegisterReadOnlyError,
    open_register,
)
from app.register import db as regdb
from app.register.register import Register
from app.register.samples import sample_record

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def test_full_disk_is_a_clear_error_and_the_record_can_be_saved_again(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    reg = open_register(path)
    first = reg.add_prediction(sample_record(0))
    with reg.engine.connect() as c:
        pages = int(c.exec_driver_sql("PRAGMA page_count").scalar())

    # Simulate a full disk: SQLite answers SQLITE_FULL exactly as on a full file system once
    # the database may not grow beyond its current size.
    def _limit(dbapi_con: Any, _rec: Any) -> None:
        dbapi_con.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(reg.engine, "connect", _limit)
    reg.engine.dispose()  # new connections get the limit
    big = dataclasses.replace(sample_record(1, n_slices=400),
                              warnings=["x" * 2000 for _ in range(20)])
    snapshot = dataclasses.replace(big)
    with pytest.raises(RegisterFullError, match="disk is full"):
        reg.add_prediction(big)
    assert big == snapshot  # the caller still holds the prediction, unchanged
    assert reg.count_cases() == 1  # nothing of it was written
    reg.close()

    # space again (a fresh register object has no limit): the same record saves fine
    with open_register(path) as again:
        second = again.add_prediction(big)
        assert again.get_prediction(second).record.warnings == big.warnings
        assert again.get_prediction(first).record == dataclasses.replace(
            sample_record(0), liver_range_mm={k: list(v) for k, v in
                                              sample_record(0).liver_range_mm.items()})
        report = again.verify()
        assert report.ok, report.problems


def test_read_only_register_reads_but_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with open_register(path) as reg:
        pid = reg.add_prediction(sample_record(0))
    before = path.read_bytes()
    with open_register(path, read_only=True) as ro:
        assert [r.id for r in ro.list_cases()] == [pid]
        assert ro.verify().ok
        rec = sample_record(1)
        with pytest.raises(RegisterReadOnlyError, match="read-only"):
            ro.add_prediction(rec)
        with pytest.raises(RegisterReadOnlyError):
            ro.record_outcome(pid, "PR")
        assert ro.export_csv(tmp_path / "out.csv").rows == 1
    assert path.read_bytes() == before
    with open_register(path) as rw:  # saved again where it can be written
        rw.add_prediction(rec)
        assert rw.count_cases() == 2


def test_sqlite_read_only_error_is_translated(tmp_path: Path) -> None:
    """Not our own read-only flag: SQLite itself refusing the write (a read-only file)."""
    path = tmp_path / "r.sqlite"
    open_register(path).close()
    reg = Register(path, regdb.make_engine(path, read_only=True))  # believes it may write
    try:
        with pytest.raises(RegisterReadOnlyError, match="read-only location"):
            reg.add_prediction(sample_record(0))
        assert reg.count_cases() == 0
    finally:
        reg.close()


@pytest.mark.skipif(IS_ROOT or os.name != "posix", reason="root ignores file permissions")
def test_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(RegisterReadOnlyError):
            open_register(folder / "r.sqlite")
    finally:
        folder.chmod(stat.S_IRWXU)


def test_missing_parent_is_created(tmp_path: Path) -> None:
    with open_register(tmp_path / "a" / "b" / "r.sqlite") as reg:
        assert reg.count_cases() == 0
