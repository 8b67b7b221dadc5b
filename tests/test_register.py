"""The case register: records, outcomes, search, audit chain, backup, export, performance.

RELIABILITY.md 19 (pragmas on every connection), 22 (backup API), 23 (append-only, hash
chained, tampering detected even with the triggers dropped), 26 (pseudonymised export).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import itertools
import sqlite3
import threading
from pathlib import Path

import pytest

from app.register import (
    PredictionRecord,
    Register,
    RegisterInputError,
    open_register,
)
from app.register.export import date_shift_days
from app.register.performance import auc_delong, wilson_ci
from app.register.samples import sample_record


@pytest.fixture
def reg(tmp_path: Path) -> Register:
    r = open_register(tmp_path / "register.sqlite")
    yield r
    r.close()


def _fill(reg: Register, n: int, **kw: object) -> list[int]:
    return [reg.add_prediction(sample_record(i, **kw)) for i in range(n)]  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- 19: pragmas


def test_every_connection_has_wal_full_sync_foreign_keys(reg: Register) -> None:
    """Pragmas hold for every pooled connection, including ones made in other threads."""
    seen: list[tuple[str, int, int, int]] = []

    def probe() -> None:
        with reg.engine.connect() as c:
            seen.append((
                c.exec_driver_sql("PRAGMA journal_mode").scalar(),
                c.exec_driver_sql("PRAGMA synchronous").scalar(),
                c.exec_driver_sql("PRAGMA foreign_keys").scalar(),
                c.exec_driver_sql("PRAGMA busy_timeout").scalar(),
            ))

    # hold several connections at once so that the pool must create new ones
    conns = [reg.engine.connect() for _ in range(3)]
    threads = [threading.Thread(target=probe) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    probe()
    for c in conns:
        c.close()
    assert len(seen) == 4
    for mode, sync, fk, busy in seen:
        assert mode == "wal"
        assert sync == 2  # FULL
        assert fk == 1
        assert busy >= 1000


def test_default_location_is_the_per_user_data_dir(_isolated_home: Path) -> None:
    with open_register() as r:
        assert r.path == _isolated_home / "register.sqlite"
        assert r.path.exists()


# ---------------------------------------------------------------------------- records


def test_prediction_round_trip_keeps_everything(reg: Register) -> None:
    rec = sample_record(3, n_slices=12)
    before = dataclasses.replace(rec)
    pid = reg.add_prediction(rec)
    assert rec == before  # the caller's record is untouched
    detail = reg.get_prediction(pid)
    got = detail.record
    want = dataclasses.asdict(rec)
    # JSON turns tuples into lists; everything else must come back exactly
    want["liver_range_mm"] = {k: list(v) for k, v in want["liver_range_mm"].items()}
    assert dataclasses.asdict(got) == want
    assert [e.kind for e in detail.events] == ["prediction"]
    assert detail.outcome is None


def test_patient_and_study_reused_and_not_mixed(reg: Register) -> None:
    a = sample_record(0)
    b = dataclasses.replace(a, model_version="2.0")  # same study, re-run with another model
    reg.add_prediction(a)
    reg.add_prediction(b)
    assert reg.stats()["patients"] == 1 and reg.stats()["studies"] == 1
    other = dataclasses.replace(sample_record(1), study_uid=a.study_uid)
    with pytest.raises(RegisterInputError, match="another patient"):
        reg.add_prediction(other)
    assert reg.stats()["cases"] == 2  # nothing of the refused record was kept


@pytest.mark.parametrize("change, match", [
    ({"label": "maybe"}, "label"),
    ({"score": float("nan")}, "finite"),
    ({"score": 1.5}, "probability"),
    ({"responder_votes": 31}, "vote split"),
    ({"patient_id": " "}, "patient ID"),
    ({"model_sha256": ""}, "sha256"),
    ({"slice_results": [{"probability": float("inf")}]}, "cannot be stored"),
])
def test_bad_records_are_refused(reg: Register, change: dict[str, object], match: str) -> None:
    rec = dataclasses.replace(sample_record(0), **change)
    with pytest.raises(RegisterInputError, match=match):
        reg.add_prediction(rec)
    assert reg.stats()["cases"] == 0 and reg.stats()["patients"] == 0


def test_malformed_header_dates_are_kept_not_refused(reg: Register, tmp_path: Path) -> None:
    """A bad DICOM date must not stop a prediction from being recorded; the pseudonymised
    export drops what it cannot shift rather than leak it."""
    rec = dataclasses.replace(sample_record(0), study_date="2024", birth_date="19XX0101")
    pid = reg.add_prediction(rec)
    got = reg.get_prediction(pid).record
    assert (got.study_date, got.birth_date) == ("2024", "19XX0101")
    rows = list(csv.DictReader(reg.export_csv(tmp_path / "p.csv", pseudonymise=True)
                               .path.open(encoding="utf-8")))
    assert rows[0]["study_date"] == ""
    assert reg.verify().ok


def test_label_synonyms_are_normalised(reg: Register) -> None:
    ids = [reg.add_prediction(dataclasses.replace(sample_record(i), label=lab))
           for i, lab in enumerate(["Response", "no response", True, "NON_RESPONDER"])]
    assert [reg.get_prediction(i).record.label for i in ids] == [
        "responder", "non-responder", "responder", "non-responder"]


def test_unknown_case_id(reg: Register) -> None:
    with pytest.raises(RegisterInputError, match="no case"):
        reg.get_prediction(42)
    with pytest.raises(RegisterInputError, match="no case"):
        reg.record_outcome(42, "PR")


# ---------------------------------------------------------------------------- outcomes


def test_outcome_correction_keeps_history(reg: Register) -> None:
    pid = reg.add_prediction(sample_record(0))
    first = reg.record_outcome(pid, "pr", "20250301", entered_by="dr a")
    second = reg.record_outcome(pid, "SD", dt.date(2025, 3, 2), entered_by="dr b")
    assert first.category == "PR" and first.outcome_date == "2025-03-01"
    assert second.supersedes == first.id
    detail = reg.get_prediction(pid)
    assert [(o.category, o.entered_by) for o in detail.outcomes] == [("PR", "dr a"),
                                                                     ("SD", "dr b")]
    assert detail.outcome is not None and detail.outcome.category == "SD"
    assert [e.kind for e in detail.events] == ["prediction", "outcome", "outcome"]
    assert reg.list_cases()[0].outcome == "SD"
    with pytest.raises(RegisterInputError, match="RECIST"):
        reg.record_outcome(pid, "XX")
    assert len(reg.outcome_history(pid)) == 2


# ---------------------------------------------------------------------------- list / search


def test_list_search_filter_sort_page(reg: Register) -> None:
    ids = _fill(reg, 30, n_patients=10)
    for i in range(12, 30, 2):  # model 2.0 for some cases
        reg.add_prediction(sample_record(100 + i, model_version="2.0"))
    reg.record_outcome(ids[0], "CR")
    reg.record_outcome(ids[1], "PD")
    reg.record_outcome(ids[2], "SD")
    reg.record_outcome(ids[2], "PR")  # corrected: current outcome is PR
    total = reg.count_cases()
    assert total == 39
    everything = reg.list_cases(limit=1000)
    assert len(everything) == total
    # newest first by default, and pages tile the whole list
    times = [r.created_at for r in everything]
    assert times == sorted(times, reverse=True)
    pages = list(itertools.chain.from_iterable(
        reg.list_cases(limit=7, offset=o) for o in range(0, total, 7)))
    assert [r.id for r in pages] == [r.id for r in everything]
    # search by a patient ID substring matches exactly the cases of that patient
    target = sample_record(4, n_patients=10).patient_id
    hits = reg.list_cases(search=target[2:])
    expected = {r.id for r in everything if target[2:] in r.patient_id}
    assert {r.id for r in hits} == expected and len(hits) == 3
    # a number also finds the case with that id
    assert 4 in {r.id for r in reg.list_cases(search="4")}
    # search by name, case-insensitive, two words must both match
    name_hits = reg.list_cases(search="meier anna")
    assert name_hits and all("MEIER^ANNA" in r.patient_name for r in name_hits)
    assert reg.list_cases(search="%") == []  # wildcards are literal
    # model filter
    v2 = reg.list_cases(model="hcc-3phase", model_version="2.0", limit=1000)
    assert len(v2) == 9 and all(r.model_version == "2.0" for r in v2)
    assert reg.models() == [("hcc-3phase", "1.0"), ("hcc-3phase", "2.0")]
    # outcome filters use the current outcome
    assert {r.id for r in reg.list_cases(outcome="with")} == {ids[0], ids[1], ids[2]}
    assert {r.id for r in reg.list_cases(outcome="responder")} == {ids[0], ids[2]}
    assert {r.id for r in reg.list_cases(outcome="SD")} == set()
    assert {r.id for r in reg.list_cases(outcome="pd")} == {ids[1]}
    assert {r.id for r in reg.list_cases(outcome="Responder")} == {ids[0], ids[2]}
    assert reg.count_cases(outcome="without") == total - 3
    # sorting by score ascending
    by_score = reg.list_cases(sort="score", descending=False, limit=1000)
    assert [r.score for r in by_score] == sorted(r.score for r in everything)
    assert by_score[0].vote_split == f"{by_score[0].responder_votes}/30"
    with pytest.raises(RegisterInputError):
        reg.list_cases(sort="drop table")
    with pytest.raises(RegisterInputError):
        reg.list_cases(outcome="maybe")


# ---------------------------------------------------------------------------- 23: audit


def test_append_only_tables_refuse_update_and_delete(reg: Register) -> None:
    pid = reg.add_prediction(sample_record(0))
    reg.record_outcome(pid, "PR")
    con = sqlite3.connect(reg.path)
    try:
        for sql in ("UPDATE predictions SET score = 0.1",
                    "DELETE FROM predictions",
                    "UPDATE outcomes SET category = 'PD'",
                    "DELETE FROM outcomes",
                    "UPDATE audit_events SET kind = 'x'",
                    "DELETE FROM audit_events",
                    "UPDATE patients SET patient_name = 'X'",
                    "UPDATE prediction_slices SET slice_results = '[]'",
                    "DELETE FROM prediction_slices",
                    "DELETE FROM studies"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                con.execute(sql)
            con.rollback()
    finally:
        con.close()
    assert reg.verify().ok


def _tamper(path: Path, *sql: str) -> None:
    """Edit the register behind its back, dropping the protective triggers first."""
    con = sqlite3.connect(path)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
        for n in names:
            con.execute(f"DROP TRIGGER {n}")
        for s in sql:
            con.execute(s)
        con.commit()
    finally:
        con.close()


@pytest.mark.parametrize("sql, finding", [
    (["UPDATE predictions SET score = 0.99 WHERE id = 3"], "case 3 was altered"),
    (["UPDATE predictions SET label = 'responder', responder_votes = 30 WHERE id = 2"],
     "case 2 was altered"),
    (["UPDATE patients SET patient_name = 'X' WHERE id = 1"], "case 1 was altered"),
    (["UPDATE prediction_slices SET slice_results = replace(slice_results, '\"label\": 0', "
      "'\"label\": 1') WHERE prediction_ref = 5"], "case 5 was altered"),
    (["DELETE FROM prediction_slices WHERE prediction_ref = 2"], "case 2 was altered"),
    (["UPDATE outcomes SET category = 'CR' WHERE id = 1"], "outcome 1 was altered"),
    (["DELETE FROM predictions WHERE id = 4"], "case 4 was deleted"),
    (["UPDATE audit_events SET payload = replace(payload, 'PR', 'CR') WHERE kind = 'outcome'"],
     "was altered"),
    (["DELETE FROM audit_events WHERE id = 2"], "audit event 2 is missing"),
    (["DELETE FROM audit_events WHERE id = (SELECT max(id) FROM audit_events)"], "removed"),
])
def test_verify_detects_tampering_even_without_triggers(
        tmp_path: Path, sql: list[str], finding: str) -> None:
    path = tmp_path / "r.sqlite"
    with open_register(path) as r:
        ids = _fill(r, 5)
        r.record_outcome(ids[0], "PR")
        r.log_event("override", {"phase": "arterial"}, prediction_id=ids[1])
        assert r.verify().ok
    _tamper(path, *sql)
    with open_register(path) as r:
        report = r.verify()
    assert not report.ok
    assert any(finding in p for p in report.problems), report.problems


def test_verify_reports_first_bad_event(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with open_register(path) as r:
        _fill(r, 6)
    _tamper(path, "UPDATE audit_events SET created_at = '2000-01-01' WHERE id = 4")
    with open_register(path) as r:
        report = r.verify()
    assert report.first_bad_event == 4 and report.integrity == "ok"


def test_verify_with_a_noted_head_detects_a_rewritten_tail(tmp_path: Path) -> None:
    """Someone rewrites the chain from event 2 onwards consistently (recomputing hashes):
    only an anchor kept outside the file can tell; the noted head provides it."""
    from app.register import audit

    path = tmp_path / "r.sqlite"
    with open_register(path) as r:
        _fill(r, 3)
        head = r.verify().last_hash
        assert r.verify(expected_head=head).ok
    con = sqlite3.connect(path)
    for t in ("predictions", "audit_events"):
        con.execute(f"DROP TRIGGER {t}_no_update")
    con.execute("UPDATE predictions SET score = 0.001 WHERE id = 3")
    con.commit()
    con.close()
    # recompute the case hash and the chain from there, as a careful forger would
    with open_register(path) as r, r.engine.begin() as conn:
        from app.register.rows import prediction_content

        new_hash = audit.content_hash(prediction_content(conn, 3))
        rows = conn.exec_driver_sql("SELECT id, created_at, kind, os_user, app_version, "
                                    "prediction_ref, payload, prev_hash FROM audit_events "
                                    "ORDER BY id").all()
        prev = audit.GENESIS_HASH
        for rid, created, kind, user, ver, pref, payload, _ in rows:
            if rid == 3:
                payload = audit.canonical_json({"prediction_id": 3, "record_hash": new_hash})
            h = audit.chain_hash(prev, audit.event_content(
                id=rid, created_at=created, kind=kind, os_user=user, app_version=ver,
                prediction_id=pref, payload=payload))
            conn.exec_driver_sql("UPDATE audit_events SET payload = ?, prev_hash = ?, hash = ? "
                                 "WHERE id = ?", (payload, prev, h, rid))
            prev = h
    with open_register(path) as r:
        assert r.verify().ok  # consistent forgery: undetectable from the file alone
        report = r.verify(expected_head=head)
    assert not report.ok and "rewritten" in report.problems[0]


def test_audit_chain_links(reg: Register) -> None:
    _fill(reg, 3)
    reg.log_event("model_import", {"sha256": "ab" * 32})
    events = reg.events()
    assert [e.id for e in events] == [1, 2, 3, 4]
    assert events[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    assert reg.verify().last_hash == events[-1].hash
    with pytest.raises(RegisterInputError):
        reg.log_event("prediction", {})
    with pytest.raises(RegisterInputError):
        reg.log_event("override", {}, prediction_id=99)


# ---------------------------------------------------------------------------- 22: backup


def test_backup_is_a_consistent_copy_while_in_use(reg: Register, tmp_path: Path) -> None:
    ids = _fill(reg, 8)
    reg.record_outcome(ids[0], "CR")
    dest = reg.backup(tmp_path / "backup" / "copy.sqlite")
    with pytest.raises(RegisterInputError, match="exists"):
        reg.backup(dest)
    assert not list(dest.parent.glob("*.partial"))
    con = sqlite3.connect(dest)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()
    with open_register(dest) as copy:
        assert copy.verify().ok
        assert [r.id for r in copy.list_cases()] == [r.id for r in reg.list_cases()]
        assert copy.get_prediction(ids[0]).outcome is not None
    assert reg.events(kind="backup")[0].payload["path"] == str(dest)


def test_backup_while_another_program_writes_is_a_consistent_snapshot(
        reg: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RELIABILITY.md 22: another connection (a second copy of the app) records predictions and
    an outcome between the backup's steps; the copy is one consistent state of the register -
    integrity and audit chain verified, every prediction complete - never a mix."""
    from app.register import db

    monkeypatch.setattr(db, "BACKUP_STEP_PAGES", 2)  # many steps, so the writes fall between them
    ids = _fill(reg, 12)
    other = open_register(reg.path)
    written: list[int] = []

    def write_between_steps(done: int, total: int) -> None:
        if len(written) < 3:  # a writer that never stops would restart the copy for ever
            written.append(other.add_prediction(sample_record(100 + len(written))))
            other.record_outcome(ids[len(written)], "PR")

    dest = reg.backup(tmp_path / "copy.sqlite", progress=write_between_steps)
    other.close()
    assert len(written) == 3
    with open_register(dest) as copy:
        report = copy.verify()
        assert report.ok, report
        copied = [r.id for r in copy.list_cases()]
        # a snapshot: all 12 first cases, and the new ones only as whole transactions
        assert set(ids) <= set(copied) <= set(ids) | set(written)
        for case_id in copied:
            assert copy.get_prediction(case_id).record == reg.get_prediction(case_id).record
        n_events = len(copy.events())
        assert n_events == report.n_events


# ---------------------------------------------------------------------------- 26: export


def test_export_plain_and_pseudonymised(reg: Register, tmp_path: Path) -> None:
    recs = [sample_record(i, n_patients=3) for i in range(6)]
    # both cases of that patient: the register refuses one ID for two names (issue 14, item 6)
    for k in (0, 3):
        recs[k] = dataclasses.replace(recs[k], patient_name="=HYPERLINK(\"x\")")
    ids = [reg.add_prediction(r) for r in recs]
    reg.record_outcome(ids[0], "PR", "2025-06-01")
    reg.record_outcome(ids[0], "PD", "2025-06-02")

    plain = reg.export_csv(tmp_path / "plain.csv")
    rows = list(csv.DictReader(plain.path.open(encoding="utf-8")))
    assert plain.rows == 6 and len(rows) == 6
    assert rows[0]["patient_name"].startswith("'=")  # no formula injection
    assert rows[0]["outcome"] == "PD" and rows[0]["outcome_corrections"] == "1"
    assert rows[1]["patient_id"] == recs[1].patient_id

    pseudo = reg.export_csv(tmp_path / "pseudo.csv", pseudonymise=True)
    text = pseudo.path.read_text(encoding="utf-8")
    for r in recs:  # no identifier, name, birth date or accession survives
        for value in (r.patient_id, r.patient_name, r.birth_date, r.accession, r.study_uid,
                      r.study_date, r.source_folder):
            assert value not in text
    prow = list(csv.DictReader(pseudo.path.open(encoding="utf-8")))
    # one key per patient, stable: records 0 and 3 are the same patient
    assert prow[0]["patient_key"] == prow[3]["patient_key"] != prow[1]["patient_key"]
    # dates are shifted by the patient's keyed offset: intervals within a patient survive
    key = bytes.fromhex(reg.meta("pseudonym_key") or "")
    shift = date_shift_days(key, recs[0].patient_id)
    assert shift != 0
    assert prow[0]["study_date"] == (dt.date.fromisoformat(recs[0].study_date)
                                     + dt.timedelta(days=shift)).isoformat()
    assert prow[0]["outcome_date"] == (dt.date(2025, 6, 2) + dt.timedelta(days=shift)).isoformat()
    # another key gives other pseudonyms
    other = reg.export_csv(tmp_path / "other.csv", pseudonymise=True, key=b"k" * 32)
    orow = list(csv.DictReader(other.path.open(encoding="utf-8")))
    assert orow[0]["patient_key"] != prow[0]["patient_key"]
    with pytest.raises(RegisterInputError, match="16 bytes"):
        reg.export_csv(tmp_path / "short.csv", pseudonymise=True, key=b"short")
    kinds = [(e.payload["pseudonymised"], e.payload["rows"]) for e in reg.events(kind="export")]
    assert kinds == [(False, 6), (True, 6), (True, 6)]
    assert reg.verify().ok


# ---------------------------------------------------------------------------- performance


def _auc_pairwise(y: list[int], s: list[float]) -> float:
    pos = [b for a, b in zip(y, s, strict=True) if a == 1]
    neg = [b for a, b in zip(y, s, strict=True) if a == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auc_and_delong_se_against_direct_formulas() -> None:
    y = [1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1]
    s = [0.9, 0.3, 0.6, 0.6, 0.6, 0.2, 0.8, 0.7, 0.4, 0.1, 0.5, 0.95]
    auc, se = auc_delong(y, s)
    assert auc == pytest.approx(_auc_pairwise(y, s))
    # DeLong from its definition: structural components via explicit pairwise kernels
    pos = [b for a, b in zip(y, s, strict=True) if a == 1]
    neg = [b for a, b in zip(y, s, strict=True) if a == 0]

    def psi(p: float, n: float) -> float:
        return 1.0 if p > n else 0.5 if p == n else 0.0

    v10 = [sum(psi(p, n) for n in neg) / len(neg) for p in pos]
    v01 = [sum(psi(p, n) for p in pos) / len(pos) for n in neg]

    def var(x: list[float]) -> float:
        m = sum(x) / len(x)
        return sum((a - m) ** 2 for a in x) / (len(x) - 1)

    assert se == pytest.approx((var(v10) / len(pos) + var(v01) / len(neg)) ** 0.5)
    with pytest.raises(ValueError):
        auc_delong([1, 1], [0.2, 0.3])


def test_wilson_interval_known_value() -> None:
    # 8/10: Wilson 95 % interval (0.490, 0.943) as in standard tables
    lo, hi = wilson_ci(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)


def test_performance_per_model_version(reg: Register) -> None:
    truth: dict[str, list[tuple[int, int, float]]] = {"1.0": [], "2.0": []}
    for i in range(24):
        version = "1.0" if i % 2 == 0 else "2.0"
        rec = sample_record(i, model_version=version)
        pid = reg.add_prediction(rec)
        responder = (i * 7) % 3 != 0
        reg.record_outcome(pid, "PR" if responder else "PD")
        truth[version].append((int(responder), int(rec.label == "responder"), rec.score))
    # a re-run of the same study by the same version counts once (the latest prediction)
    rerun = dataclasses.replace(sample_record(0, model_version="1.0"), score=0.01,
                                label="non-responder", responder_votes=0)
    rerun_id = reg.add_prediction(rerun)
    reg.record_outcome(rerun_id, "PD")  # record 0: (0 * 7) % 3 == 0 → non-responder
    truth["1.0"][0] = (truth["1.0"][0][0], 0, 0.01)
    rows = {r.model_version: r for r in reg.performance()}
    assert set(rows) == {"1.0", "2.0"}
    for version, data in truth.items():
        y = [d[0] for d in data]
        p = [d[1] for d in data]
        s = [d[2] for d in data]
        row = rows[version]
        assert row.n == 12 and row.n_responders == sum(y)
        assert row.auc == pytest.approx(_auc_pairwise(y, s))
        assert row.auc_ci is not None and row.auc_ci[0] <= row.auc <= row.auc_ci[1]
        tp = sum(1 for a, b in zip(y, p, strict=True) if a == b == 1)
        tn = sum(1 for a, b in zip(y, p, strict=True) if a == b == 0)
        assert row.sensitivity == pytest.approx(tp / sum(y))
        assert row.specificity == pytest.approx(tn / (12 - sum(y)))
        assert row.accuracy == pytest.approx((tp + tn) / 12)
        assert row.reference.auc == 0.802  # the paper's three-phase figure


def test_performance_without_both_classes_has_no_auc(reg: Register) -> None:
    pid = reg.add_prediction(sample_record(0))
    assert reg.performance() == []
    reg.record_outcome(pid, "CR")
    (row,) = reg.performance()
    assert row.n == 1 and row.auc is None and row.specificity is None
    assert row.sensitivity in (0.0, 1.0)


def test_record_is_plain_data() -> None:
    """The register's input type needs nothing from torch or the predictor."""
    rec = PredictionRecord(patient_id="P", study_uid="1.2", model_name="m", model_version="1",
                           model_sha256="0" * 64, label="responder", score=0.6,
                           responder_votes=2, total_votes=3)
    assert rec.created_at.tzinfo is not None
    assert rec.app_version


def test_study_fields_from_an_assembled_study(reg: Register) -> None:
    """The adapter helper turns an AssembledStudy into record fields that store and reload."""
    import numpy as np

    from app.dicom.types import AssembledStudy, SlicePair, Volume
    from app.register import study_fields

    def vol(uid: str) -> Volume:
        return Volume(hu=np.zeros((3, 4, 4), np.float32), z_positions=np.array([0.0, 5.0, 10.0]),
                      origin=(0.0, 0.0, 0.0), pixel_spacing=(1.0, 1.0), slice_spacing=5.0,
                      direction=np.eye(3), sop_instance_uids=["a", "b", "c"], series_uid=uid)

    study = AssembledStudy(
        patient_id="P-7", patient_name="DOE^JANE", study_uid="1.2.3.7", study_date="20240105",
        study_description="CT ABD", assignment={"plain": "1.1", "arterial": "1.2", "portal": "1.3"},
        volumes={"plain": vol("1.1"), "arterial": vol("1.2"), "portal": vol("1.3")},
        liver_range_mm={"plain": (np.float64(0.0), np.float64(10.0)), "arterial": (0.0, 10.0),
                        "portal": (0.0, 10.0)},
        pairs=[SlicePair(z_ref=np.float64(5.0), index={"plain": np.int64(1), "arterial": 1,
                                                       "portal": 1},
                         z_mm={"plain": 5.0, "arterial": 5.2, "portal": 4.9})],
        warnings=["gap of 10 mm"], confirmation_reasons=["two arterial candidates"],
        overrides={"arterial": "1.2"},
    )
    fields = study_fields(study)
    rec = PredictionRecord(**fields, model_name="m", model_version="1", model_sha256="0" * 64,
                           label="responder", score=0.8, responder_votes=1, total_votes=1,
                           slice_results=[{"z_ref": 5.0, "probability": 0.8, "label": 1}])
    got = reg.get_prediction(reg.add_prediction(rec)).record
    assert got.study_date == "2024-01-05" and got.series_uids["portal"] == "1.3"
    assert got.slice_pairs == [{"z_ref": 5.0, "index": {"plain": 1, "arterial": 1, "portal": 1},
                                "z_mm": {"plain": 5.0, "arterial": 5.2, "portal": 4.9}}]
    assert got.warnings == ["gap of 10 mm", "two arterial candidates"]
    assert got.overrides == {"arterial": "1.2"} and got.liver_range_mm["plain"] == [0.0, 10.0]
