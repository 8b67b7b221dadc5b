"""Schema migrations (RELIABILITY.md 21): create at head, back up then upgrade an older
register, refuse a newer one unchanged, refuse files that are not registers."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.register import (
    NotARegisterError,
    RegisterNewerSchemaError,
    RegisterReadOnlyError,
    open_register,
)
from app.register import db as regdb
from app.register.models import Base
from app.register.samples import sample_record


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _indexes(path: Path) -> set[str]:
    con = sqlite3.connect(path)
    try:
        return {r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='index' AND name LIKE 'ix_%'")}
    finally:
        con.close()


def _make_0001_register(path: Path, n: int) -> None:
    """A register as the first release wrote it: schema 0001 only, with some cases in it."""
    engine = regdb.make_engine(path)
    regdb.migrate(engine, "0001")
    engine.dispose()
    # The current code writes rows that schema 0001 already accepts (0002 only adds indexes;
    # 0003's column is left out of a row that has nothing to say in it).
    con = sqlite3.connect(path)
    assert con.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "0001"
    con.close()
    from app.register.register import Register

    engine = regdb.make_engine(path)
    reg = Register(path, engine)
    for i in range(n):
        reg.add_prediction(sample_record(i))
    reg.close()


def test_new_register_is_created_at_head(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "r.sqlite"
    with open_register(path) as reg:
        assert reg.schema_revision() == regdb.head_revision() == "0003"
        assert reg.upgraded_from is None and reg.backup_path is None
        assert len(reg.meta("pseudonym_key") or "") == 64
    assert _indexes(path) >= {"ix_predictions_created_at", "ix_predictions_model"}


def test_empty_file_becomes_a_register(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    path.touch()
    with open_register(path) as reg:
        assert reg.schema_revision() == "0003"


def test_create_false_refuses_a_missing_file(tmp_path: Path) -> None:
    from app.register import RegisterInputError

    with pytest.raises(RegisterInputError, match="no register"):
        open_register(tmp_path / "absent.sqlite", create=False)
    assert not (tmp_path / "absent.sqlite").exists()


def test_models_match_the_migrated_schema(tmp_path: Path) -> None:
    """The ORM models and the migrations describe the same schema (no drift)."""
    path = tmp_path / "r.sqlite"
    open_register(path).close()
    engine = regdb.make_engine(path)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_older_register_is_backed_up_then_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "register.sqlite"
    _make_0001_register(path, 4)
    assert _indexes(path) == set()
    before = _digest(path)
    with open_register(path) as reg:
        assert reg.upgraded_from == "0001"
        backup = reg.backup_path
        assert backup is not None and backup.parent == tmp_path
        assert backup.name.startswith("register.bak-0001-") and backup.suffix == ".sqlite"
        assert reg.schema_revision() == "0003"
        assert reg.count_cases() == 4
        assert [e.kind for e in reg.events()][-1] == "schema_upgrade"
        assert reg.verify().ok
        assert {reg.get_prediction(i).record.decided_by for i in range(1, 5)} == {""}
    assert "ix_predictions_created_at" in _indexes(path)
    # the backup is the register as it was: schema 0001, same cases, untouched by the upgrade
    con = sqlite3.connect(backup)
    try:
        assert con.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "0001"
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 4
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
    assert _digest(path) != before
    # opening again does not back up again
    with open_register(path) as reg:
        assert reg.upgraded_from is None
    assert len(list(tmp_path.glob("register.bak-*"))) == 1


def test_newer_register_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with open_register(path) as reg:
        reg.add_prediction(sample_record(0))
    con = sqlite3.connect(path)
    con.execute("UPDATE alembic_version SET version_num = '0099'")
    con.commit()
    con.close()
    before = _digest(path)
    files_before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(RegisterNewerSchemaError, match=r"newer version .*\(schema 0099\).*up to 0003"):
        open_register(path)
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == files_before  # no backup, no WAL left


@pytest.mark.parametrize("content", [b"%PDF-1.4 not a database at all" * 10, b"\x00" * 4096])
def test_non_sqlite_file_is_refused_unchanged(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "r.sqlite"
    path.write_bytes(content)
    with pytest.raises(NotARegisterError):
        open_register(path)
    assert path.read_bytes() == content


def test_other_programs_database_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    con.commit()
    con.close()
    before = _digest(path)
    with pytest.raises(NotARegisterError, match="another program"):
        open_register(path)
    assert _digest(path) == before


def test_read_only_open_cannot_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    _make_0001_register(path, 1)
    before = _digest(path)
    with pytest.raises(RegisterReadOnlyError, match="upgrade"):
        open_register(path, read_only=True)
    assert _digest(path) == before


def test_two_programs_opening_an_older_register_at_once(tmp_path: Path) -> None:
    """Both open fine; the schema is upgraded once and the upgrade is logged once."""
    import threading

    path = tmp_path / "register.sqlite"
    _make_0001_register(path, 2)
    results: list[object] = []

    def opener() -> None:
        try:
            with open_register(path) as reg:
                results.append(reg.schema_revision())
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == ["0003"] * 3
    with open_register(path) as reg:
        assert len(reg.events(kind="schema_upgrade")) == 1
        assert reg.verify().ok
    assert not list(tmp_path.glob("*.partial"))


def test_rule_of_the_score_is_kept_and_covered_by_the_record_hash(tmp_path: Path) -> None:
    """Schema 0003: a prediction records how its score was made; records written before the
    column existed still verify, and changing the column afterwards breaks the record's hash."""
    from dataclasses import replace

    path = tmp_path / "register.sqlite"
    _make_0001_register(path, 2)
    with open_register(path) as reg:
        new_id = reg.add_prediction(replace(sample_record(7), decided_by="patient_head"))
        assert reg.get_prediction(new_id).record.decided_by == "patient_head"
        assert reg.verify().ok
    con = sqlite3.connect(path)  # a hand edit, bypassing the app's append-only triggers
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='trigger' "
                               "AND tbl_name='predictions'").fetchall():
        con.execute(f"DROP TRIGGER {name}")
    con.execute("UPDATE predictions SET decided_by = 'vote' WHERE id = 1")
    con.execute("UPDATE predictions SET decided_by = '' WHERE id = ?", (new_id,))
    con.commit()
    con.close()
    with open_register(path) as reg:
        report = reg.verify()
    assert not report.ok
    assert {"case 1 was altered after it was recorded",
            f"case {new_id} was altered after it was recorded"} <= set(report.problems)
    assert "case 2 was altered after it was recorded" not in report.problems
