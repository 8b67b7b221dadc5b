"""``Register.verify``: the database's integrity and the audit trail, checked from the stored rows.

Checks ``PRAGMA integrity_check``; recomputes every link of the hash chain (ids must run 1, 2,
3, … with no gap and none removed from the end); recomputes the content hash of every
prediction and outcome and compares it with its audit event; and reports rows without an event
and events whose row is gone. Works even when the append-only triggers were dropped, because it
reads what is stored (:mod:`app.register.rows`), not what the register's code would write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from app.register import audit
from app.register.models import AuditEventRow
from app.register.records import VerifyReport
from app.register.rows import content_of, orm_session, raw_predictions, raw_rows


@dataclass
class _ChainCheck:
    """What walking the audit chain found."""

    problems: list[str] = field(default_factory=list)
    first_bad: int | None = None
    n_events: int = 0
    last_hash: str = audit.GENESIS_HASH
    #: (kind, row id) → the record hash its event vouches for
    record_hashes: dict[tuple[str, int], str] = field(default_factory=dict)

    def bad(self, problem: str, event_id: int) -> None:
        self.problems.append(problem)
        if self.first_bad is None:
            self.first_bad = event_id


def verify_connection(conn: Connection, expected_head: str | None = None) -> VerifyReport:
    """Verify the register on ``conn`` (inside one transaction: one consistent snapshot).

    ``expected_head``: a ``last_hash`` noted at an earlier verify; the chain must still contain
    that event, which catches a rewrite of the whole tail after it.
    """
    integrity = "; ".join(str(r[0]) for r in conn.exec_driver_sql("PRAGMA integrity_check").all())
    chain = _check_chain(conn, expected_head)
    problems = ([f"integrity_check: {integrity}"] if integrity != "ok" else []) + chain.problems
    n_preds, n_outs, row_problems = _check_rows(conn, chain.record_hashes)
    problems += row_problems
    return VerifyReport(ok=not problems, integrity=integrity, n_events=chain.n_events,
                        n_predictions=n_preds, n_outcomes=n_outs,
                        first_bad_event=chain.first_bad, problems=problems,
                        last_hash=chain.last_hash if chain.n_events else "")


def _check_chain(conn: Connection, expected_head: str | None) -> _ChainCheck:
    """Walk the audit events in id order: links, hashes, gaps, and the record hashes named."""
    chain = _ChainCheck()
    expected_id = 1
    found_head = False
    for ev in orm_session(conn).execute(select(AuditEventRow).order_by(AuditEventRow.id)).scalars():
        chain.n_events += 1
        found_head = found_head or (expected_head is not None and ev.hash == expected_head)
        if ev.id != expected_id:
            chain.bad(f"audit event {expected_id} is missing (next is {ev.id})",
                      min(ev.id, expected_id))
        elif ev.prev_hash != chain.last_hash:
            chain.bad(f"audit event {ev.id} does not link to the event before it", ev.id)
        else:
            content = audit.event_content(
                id=ev.id, created_at=ev.created_at, kind=ev.kind, os_user=ev.os_user,
                app_version=ev.app_version, prediction_id=ev.prediction_ref, payload=ev.payload)
            if audit.chain_hash(ev.prev_hash, content) != ev.hash:
                chain.bad(f"audit event {ev.id} was altered (its hash does not match)", ev.id)
        chain.last_hash = ev.hash
        expected_id = ev.id + 1
        _note_record_hash(chain, ev)
    if expected_head is not None and not found_head:
        chain.problems.append(f"the audit chain no longer contains the event {expected_head} "
                              f"noted earlier: its history was rewritten")
    seq = conn.exec_driver_sql(
        "SELECT seq FROM sqlite_sequence WHERE name = 'audit_events'").scalar()
    if seq is not None and int(seq) != expected_id - 1:
        chain.bad(f"audit events after {expected_id - 1} were removed "
                  f"(the last id issued was {seq})", expected_id)
    return chain


def _note_record_hash(chain: _ChainCheck, ev: AuditEventRow) -> None:
    """Keep the record hash a prediction or outcome event vouches for."""
    try:
        payload = json.loads(ev.payload)
    except ValueError:
        chain.problems.append(f"audit event {ev.id} has an unreadable payload")
        return
    key = {"prediction": "prediction_id", "outcome": "outcome_id"}.get(ev.kind)
    if key is None:
        return
    try:
        rid = int(payload[key])
    except (KeyError, TypeError, ValueError):
        chain.problems.append(f"audit event {ev.id} does not name its {ev.kind}")
        return
    chain.record_hashes[(ev.kind, rid)] = str(payload.get("record_hash"))


def _check_rows(conn: Connection, record_hashes: dict[tuple[str, int], str]
                ) -> tuple[int, int, list[str]]:
    """Compare every prediction and outcome with the hash its event vouches for.

    One streamed query per table (not one per row), on the stored text: verify stays fast on
    big registers and notices any change of the stored bytes. Returns the numbers of
    predictions and outcomes and the problems found.
    """
    problems: list[str] = []
    patients = {r["id"]: r for r in raw_rows(conn, "patients")}
    studies = {r["id"]: r for r in raw_rows(conn, "studies")}
    n_preds = 0
    for p in raw_predictions(conn):
        n_preds += 1
        want = record_hashes.pop(("prediction", p["id"]), None)
        if want is None:
            problems.append(f"case {p['id']} has no audit event")
            continue
        study = studies.get(p["study_ref"])
        patient = patients.get(study["patient_ref"]) if study else None
        if study is None or patient is None:
            problems.append(f"case {p['id']} lost its study or patient")
        elif audit.content_hash(content_of(p, study, patient)) != want:
            problems.append(f"case {p['id']} was altered after it was recorded")
    n_outs = 0
    for o in raw_rows(conn, "outcomes"):
        n_outs += 1
        want = record_hashes.pop(("outcome", o["id"]), None)
        if want is None:
            problems.append(f"outcome {o['id']} has no audit event")
        elif audit.content_hash(o) != want:
            problems.append(f"outcome {o['id']} was altered after it was recorded")
    for kind, rid in sorted(record_hashes):
        what = "case" if kind == "prediction" else "outcome"
        problems.append(f"{what} {rid} was deleted (its audit event remains)")
    return n_preds, n_outs, problems
