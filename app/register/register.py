"""The case register: record predictions and outcomes, list and search them, audit, export.

Typical use (the CLI's ``predict --register``, the UI's register tab)::

    with open_register() as reg:                # per-user data directory by default
        case_id = reg.add_prediction(record)    # one short write transaction
        rows = reg.list_cases(search="123", outcome="without")

Every write is one short ``BEGIN IMMEDIATE`` transaction that also appends its audit event, so
a crash leaves either both or neither (RELIABILITY.md 20). The object is thread-safe: each call
checks out its own pooled connection, so the UI thread can read while a worker writes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Insert,
    Select,
    func,
    insert,
    or_,
    select,
    text,
)

from app import __version__, paths
from app.register import audit, db
from app.register.display import DISPLAY_KEY, DISPLAY_PENDING
from app.register.errors import (
    RegisterError,
    RegisterInputError,
    RegisterNewerSchemaError,
    RegisterReadOnlyError,
)
from app.register.export import (
    case_rows,
    write_csv,
)
from app.register.integrity import damaged_error
from app.register.models import (
    AuditEventRow,
    Meta,
    Outcome,
    Patient,
    Prediction,
    PredictionSlices,
    Study,
)
from app.register.performance import PerformanceRow, performance_rows
from app.register.records import (
    RECIST_CATEGORIES,
    RESPONDER_CATEGORIES,
    AuditEvent,
    CaseRow,
    OutcomeEntry,
    PredictionDetail,
    PredictionRecord,
    VerifyReport,
    current_os_user,
    normalise_category,
    normalise_date,
    parse_timestamp,
    plain_json,
    same_person,
    timestamp_text,
    utc_now,
)
from app.register.rows import (
    event_from_row,
    orm_session,
    outcome_content,
    prediction_content,
    prediction_values,
    record_from_rows,
)
from app.register.verification import verify_connection

log = logging.getLogger(__name__)

#: Event kinds the register writes itself (with the content hash of the row they vouch for).
INTERNAL_EVENT_KINDS = frozenset({"prediction", "outcome", "schema_upgrade"})
_EVENT_KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

#: ``outcome=`` filters of :meth:`Register.list_cases`.
OUTCOME_FILTERS = ("any", "with", "without", "responder", "non-responder", "CR", "PR", "SD", "PD")

#: Sort keys of :meth:`Register.list_cases` → columns (ties broken by case id).
SORT_KEYS = ("created_at", "id", "patient_id", "patient_name", "study_date", "label", "score",
             "votes", "model", "outcome")


@dataclass(frozen=True)
class ExportSummary:
    """What :meth:`Register.export_csv` wrote."""

    path: Path
    rows: int
    pseudonymised: bool


def open_register(path: Path | str | None = None, *, create: bool = True,
                  read_only: bool = False) -> Register:
    """Open (and if needed create or upgrade) the register at ``path``.

    Parameters
    ----------
    path:
        The register file; default :func:`app.paths.default_register_path` (per-user data).
    create:
        Create the register when the file does not exist (an empty file is always initialised).
    read_only:
        Open without any possibility of writing (SQLite ``mode=ro``, or ``immutable=1`` where
        the file sits on read-only media or a full disk): listing, showing, verifying,
        exporting and backing up work (the last two are then not in the audit trail); every
        write raises :class:`RegisterReadOnlyError`. An older register cannot be upgraded in
        this mode and is refused. A writable open first checks the file's integrity.

    Raises
    ------
    RegisterNewerSchemaError
        The register was written by a newer app version; the file was left unchanged.
    NotARegisterError
        The file is not a register (not SQLite, or another program's database).
    RegisterReadOnlyError
        The file or its folder cannot be written (and it had to be created or upgraded).
    RegisterDamagedError
        A writable open found the file damaged; nothing was written (the message names the
        backup to restore from).
    """
    p = Path(path) if path is not None else paths.default_register_path()
    p = p.expanduser()
    if read_only:
        return _open_read_only(p)
    sidecars_before = db.existing_sidecars(p)
    try:
        return _open_writable(p, create)
    except BaseException:
        db.remove_debris(p, sidecars_before)  # e.g. the 3-byte -shm a full disk leaves
        raise


def _open_read_only(p: Path) -> Register:
    """Open for reading only: works on read-only media and on a full disk (see ``db``)."""
    state = db.probe(p)
    head = db.head_revision()
    if state.revision is not None and state.revision not in db.known_revisions():
        raise RegisterNewerSchemaError(state.revision, head)
    if not state.exists:
        raise RegisterInputError(f"there is no register at {p} to open read-only")
    if state.revision != head:
        raise RegisterReadOnlyError(
            f"the register {p} is at schema {state.revision or 'none'} and needs an upgrade to "
            f"{head}, which is impossible read-only"
        )
    return Register(p, db.make_engine(p, read_only=True), read_only=True)


def _open_writable(p: Path, create: bool) -> Register:
    """Open for writing: create, back up and upgrade as needed; refuse a damaged register."""
    state = db.probe(p, check=True)
    head = db.head_revision()
    upgraded_from: str | None = None
    backup_path: Path | None = None
    if state.revision is not None and state.revision not in db.known_revisions():
        raise RegisterNewerSchemaError(state.revision, head)
    if not state.exists:
        if not create:
            raise RegisterInputError(f"there is no register at {p}")
        with db.translated(p):
            p.parent.mkdir(parents=True, exist_ok=True)
    needs_migration = state.revision != head
    if needs_migration and state.revision is not None:
        # back up before touching an older register (RELIABILITY.md 21)
        backup_path = db.backup_before_upgrade(p, state.revision)
        upgraded_from = state.revision
        log.info("register %s: schema %s backed up to %s", p, state.revision, backup_path)
    engine = db.make_engine(p)
    try:
        with db.translated(p):
            with engine.connect():
                pass  # the first connection switches to WAL: fails now if it cannot write
            if needs_migration:
                found = db.migrate(engine, "head")
                if found != upgraded_from:  # another program upgraded it meanwhile
                    upgraded_from = None
        reg = Register(p, engine, upgraded_from=upgraded_from, backup_path=backup_path)
        if upgraded_from is not None:
            reg._log_internal("schema_upgrade", {"from": upgraded_from, "to": head,
                                                 "backup": str(backup_path)})
    except BaseException:
        engine.dispose()
        raise
    return reg


class Register:
    """An open case register. Create it with :func:`open_register`; close it with ``close()``.

    Attributes
    ----------
    path:
        The register file.
    read_only:
        Opened read-only: writes raise :class:`RegisterReadOnlyError`.
    upgraded_from, backup_path:
        Set when opening upgraded an older register (and where its backup went).
    """

    def __init__(self, path: Path, engine: Engine, *, read_only: bool = False,
                 upgraded_from: str | None = None, backup_path: Path | None = None) -> None:
        self.path = path
        self.read_only = read_only
        self.upgraded_from = upgraded_from
        self.backup_path = backup_path
        self._engine = engine
        self._writer = db.write_engine(engine)

    # ---------------------------------------------------------------- plumbing

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for tests and tools; normal code uses the methods)."""
        return self._engine

    def __enter__(self) -> Register:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection (the last one to close checkpoints the WAL)."""
        self._engine.dispose()

    @contextmanager
    def _read(self, what: str = "a stored record") -> Iterator[Connection]:
        """A pooled connection for reading; damage met while reading becomes a clear error.

        A value whose bytes were damaged no longer decodes (JSON, text, a timestamp): that is
        reported as a damaged register with the backup to restore from, never as the
        decoder's own message quoting the stored bytes (the text goes to ``details`` only).
        """
        try:
            with db.translated(self.path), self._engine.connect() as conn:
                yield conn
        except (ValueError, UnicodeDecodeError) as exc:
            raise damaged_error(self.path, f"{what} cannot be read back",
                                details=f"{type(exc).__name__}: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        if self.read_only:
            raise RegisterReadOnlyError(
                f"the register {self.path} was opened read-only; nothing was written")
        with db.translated(self.path), self._writer.begin() as conn:
            yield conn

    def schema_revision(self) -> str:
        """The register's schema revision (Alembic)."""
        with self._read() as conn:
            return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one())

    def meta(self, key: str) -> str | None:
        with self._read() as conn:
            return conn.execute(select(Meta.value).where(Meta.key == key)).scalar_one_or_none()

    # ---------------------------------------------------------------- audit chain

    def _append_event(self, conn: Connection, kind: str, payload: dict[str, Any],
                      prediction_id: int | None = None) -> AuditEvent:
        """Append one event to the chain inside the caller's write transaction.

        The write lock is already held (``BEGIN IMMEDIATE``), so reading the last hash and
        appending cannot interleave with another writer: the chain never forks.
        """
        last = conn.execute(
            select(AuditEventRow.id, AuditEventRow.hash).order_by(AuditEventRow.id.desc())
            .limit(1)
        ).first()
        prev_hash = last.hash if last else audit.GENESIS_HASH
        new_id = (last.id + 1) if last else 1
        payload_text = audit.canonical_json(plain_json(payload))
        created = timestamp_text(utc_now())
        user = current_os_user()
        content = audit.event_content(id=new_id, created_at=created, kind=kind, os_user=user,
                                      app_version=__version__, prediction_id=prediction_id,
                                      payload=payload_text)
        digest = audit.chain_hash(prev_hash, content)
        conn.execute(insert(AuditEventRow).values(
            id=new_id, created_at=created, kind=kind, os_user=user, app_version=__version__,
            prediction_ref=prediction_id, payload=payload_text, prev_hash=prev_hash,
            hash=digest))
        return AuditEvent(new_id, parse_timestamp(created), kind, user, __version__,
                          prediction_id, json.loads(payload_text), prev_hash, digest)

    def _log_internal(self, kind: str, payload: dict[str, Any]) -> AuditEvent:
        with self._write() as conn:
            return self._append_event(conn, kind, payload)

    def log_event(self, kind: str, payload: dict[str, Any] | None = None,
                  prediction_id: int | None = None) -> AuditEvent:
        """Append an event to the audit trail (override, export, model import, …).

        Parameters
        ----------
        kind:
            Lower-case word (``"override"``, ``"model_import"``); ``prediction``, ``outcome`` and
            ``schema_upgrade`` are written by the register itself and refused here.
        payload:
            JSON-serialisable details (e.g. ``{"phase": "arterial", "series_uid": ...}``).
        prediction_id:
            The case the event concerns, if any (must exist).
        """
        if not _EVENT_KIND.match(kind) or kind in INTERNAL_EVENT_KINDS:
            raise RegisterInputError(f"event kind {kind!r} cannot be logged by callers")
        with self._write() as conn:
            if prediction_id is not None:
                self._require_prediction(conn, prediction_id)
            return self._append_event(conn, kind, dict(payload or {}), prediction_id)

    def events(self, prediction_id: int | None = None, kind: str | None = None,
               limit: int | None = None) -> list[AuditEvent]:
        """Audit events, oldest first, optionally of one case and/or one kind."""
        stmt = select(AuditEventRow).order_by(AuditEventRow.id)
        if prediction_id is not None:
            stmt = stmt.where(AuditEventRow.prediction_ref == prediction_id)
        if kind is not None:
            stmt = stmt.where(AuditEventRow.kind == kind)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read() as conn:
            return [event_from_row(r) for r in orm_session(conn).execute(stmt).scalars()]

    # ---------------------------------------------------------------- predictions

    def add_prediction(self, record: PredictionRecord, *, display_pending: bool = False) -> int:
        """Record one prediction (with its patient and study) and its audit event.

        The record is validated first and not modified, so after a failure (disk full,
        read-only location) the caller still holds it and can save it again.
        ``display_pending``: the caller shows the result after recording it; the event says so
        until :func:`app.register.display.mark_shown` (issue 14, item 9).

        Returns
        -------
        int
            The case id of the new prediction.

        Raises
        ------
        RegisterInputError
            Invalid content (unknown label, NaN score, impossible vote split, a study UID that
            already belongs to another patient, a patient ID that is another person's).
        RegisterFullError, RegisterReadOnlyError, RegisterBusyError
            The register could not be written; nothing of this prediction was kept.
        """
        values = prediction_values(record)
        slices = {"slice_pairs": plain_json(list(record.slice_pairs)),
                  "slice_results": plain_json(list(record.slice_results))}
        with self._write() as conn:
            patient_ref = self._patient_ref(conn, record)
            study_ref = self._study_ref(conn, record, patient_ref)
            pred_id = _insert_id(conn, insert(Prediction).values(study_ref=study_ref, **values))
            conn.execute(insert(PredictionSlices).values(prediction_ref=pred_id, **slices))
            record_hash = audit.content_hash(prediction_content(conn, pred_id))
            payload: dict[str, Any] = {"prediction_id": pred_id, "record_hash": record_hash}
            if display_pending:
                payload[DISPLAY_KEY] = DISPLAY_PENDING
            self._append_event(conn, "prediction", payload, pred_id)
        return pred_id

    def find_prediction(self, record: PredictionRecord) -> int | None:
        """The case id of a prediction already recorded from ``record``, or None.

        The same study, model weights and moment of prediction mean the same prediction: a
        record kept for later (:mod:`app.register.pending`) that reached the register before a
        crash is not recorded a second time.
        """
        stmt = (select(Prediction.id).join(Study, Study.id == Prediction.study_ref)
                .where(Study.study_uid == record.study_uid,
                       Prediction.model_sha256 == record.model_sha256,
                       Prediction.created_at == timestamp_text(record.created_at))
                .order_by(Prediction.id).limit(1))
        with self._read() as conn:
            found = conn.execute(stmt).scalar()
        return None if found is None else int(found)

    def _patient_ref(self, conn: Connection, record: PredictionRecord) -> int:
        """Primary key of the patient, inserting it when new (first values seen are kept)."""
        if not str(record.patient_id).strip():
            raise RegisterInputError("a prediction needs a patient ID")
        known = conn.execute(select(Patient.id, Patient.patient_name, Patient.birth_date)
                             .where(Patient.patient_id == record.patient_id)).first()
        if known is not None:
            same_person(record, known.patient_name, known.birth_date)
            return int(known.id)
        return _insert_id(conn, insert(Patient).values(
            patient_id=record.patient_id, patient_name=record.patient_name or "",
            birth_date=normalise_date(record.birth_date, "birth date", strict=False), sex=record.sex or "",
            created_at=timestamp_text(utc_now()),
        ))

    def _study_ref(self, conn: Connection, record: PredictionRecord, patient_ref: int) -> int:
        if not str(record.study_uid).strip():
            raise RegisterInputError("a prediction needs a study instance UID")
        row = conn.execute(select(Study.id, Study.patient_ref)
                           .where(Study.study_uid == record.study_uid)).first()
        if row is not None:
            if row.patient_ref != patient_ref:
                # a prediction never mixes patients (RELIABILITY.md 12)
                raise RegisterInputError(
                    f"study {record.study_uid} is already registered for another patient; "
                    f"refusing to record it under patient {record.patient_id}")
            return int(row.id)
        return _insert_id(conn, insert(Study).values(
            patient_ref=patient_ref, study_uid=record.study_uid,
            study_date=normalise_date(record.study_date, "study date", strict=False),
            accession=record.accession or "", description=record.study_description or "",
            created_at=timestamp_text(utc_now()),
        ))

    def _require_prediction(self, conn: Connection, prediction_id: int) -> None:
        found = conn.execute(select(Prediction.id).where(Prediction.id == prediction_id)).scalar()
        if found is None:
            raise RegisterInputError(f"there is no case with id {prediction_id}")

    def get_prediction(self, prediction_id: int) -> PredictionDetail:
        """One case with its record, its outcome history and its audit events.

        Raises
        ------
        RegisterInputError
            No case with that id.
        """
        with self._read(f"case {prediction_id}") as conn:
            conn.begin()  # one snapshot for the three reads
            row = orm_session(conn).execute(
                select(Prediction, Study, Patient, PredictionSlices)
                .join(Study, Study.id == Prediction.study_ref)
                .join(Patient, Patient.id == Study.patient_ref)
                .outerjoin(PredictionSlices, PredictionSlices.prediction_ref == Prediction.id)
                .where(Prediction.id == prediction_id)
            ).first()
            if row is None:
                raise RegisterInputError(f"there is no case with id {prediction_id}")
            outcomes = self._outcomes(conn, prediction_id)
            events = [event_from_row(r) for r in orm_session(conn).execute(
                select(AuditEventRow).where(AuditEventRow.prediction_ref == prediction_id)
                .order_by(AuditEventRow.id)).scalars()]
            record = record_from_rows(*row)  # decoded inside: damage is reported by _read
        return PredictionDetail(prediction_id, record, outcomes, events)

    # ---------------------------------------------------------------- list / search

    def _case_select(self, search: str, model: str | None, model_version: str | None,
                     outcome: str | None) -> Select:  # type: ignore[type-arg]
        latest = (select(func.max(Outcome.id)).where(Outcome.prediction_ref == Prediction.id)
                  .correlate(Prediction).scalar_subquery())
        stmt: Select = (  # type: ignore[type-arg]
            select(Prediction.id, Prediction.created_at, Patient.patient_id,
                   Patient.patient_name, Study.study_date, Prediction.label, Prediction.score,
                   Prediction.responder_votes, Prediction.total_votes, Prediction.model_name,
                   Prediction.model_version, Outcome.category, Outcome.outcome_date,
                   Prediction.decided_by)
            .join(Study, Study.id == Prediction.study_ref)
            .join(Patient, Patient.id == Study.patient_ref)
            .outerjoin(Outcome, Outcome.id == latest)
        )
        for term in search.split():
            # every word must match one of the identifying fields (substring, ASCII-insensitive)
            pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conds: list[ColumnElement[bool]] = [
                     Patient.patient_id.like(pattern, escape="\\"),
                     Patient.patient_name.like(pattern, escape="\\"),
                     Study.accession.like(pattern, escape="\\")]
            if term.isascii() and term.isdigit():
                conds.append(Prediction.id == int(term))
            stmt = stmt.where(or_(*conds))
        if model:
            stmt = stmt.where(Prediction.model_name == model)
        if model_version:
            stmt = stmt.where(Prediction.model_version == model_version)
        flt = "any" if outcome is None else outcome.strip()
        flt = flt.upper() if flt.upper() in RECIST_CATEGORIES else flt.lower()
        if flt not in OUTCOME_FILTERS:
            raise RegisterInputError(
                f"unknown outcome filter {outcome!r} (one of {', '.join(OUTCOME_FILTERS)})")
        if flt == "with":
            stmt = stmt.where(Outcome.id.is_not(None))
        elif flt == "without":
            stmt = stmt.where(Outcome.id.is_(None))
        elif flt == "responder":
            stmt = stmt.where(Outcome.category.in_(sorted(RESPONDER_CATEGORIES)))
        elif flt == "non-responder":
            stmt = stmt.where(Outcome.category.in_(["SD", "PD"]))
        elif flt != "any":
            stmt = stmt.where(Outcome.category == flt)
        return stmt

    def list_cases(self, search: str = "", model: str | None = None,
                   outcome: str | None = "any", sort: str = "created_at",
                   descending: bool = True, limit: int = 200, offset: int = 0,
                   model_version: str | None = None) -> list[CaseRow]:
        """One page of the register table.

        Parameters
        ----------
        search:
            Words that must each occur in the patient ID, patient name or accession number
            (a number also matches the case id). Empty: every case.
        model, model_version:
            Only cases predicted by that model name (and version).
        outcome:
            ``"any"``, ``"with"``, ``"without"`` an outcome, ``"responder"`` (CR/PR),
            ``"non-responder"`` (SD/PD) or one RECIST category; the current outcome counts.
        sort, descending:
            One of :data:`SORT_KEYS`; ties are broken by case id in the same direction.
        limit, offset:
            The page (the table loads pages, never the whole register).
        """
        if sort not in SORT_KEYS:
            raise RegisterInputError(f"unknown sort key {sort!r} (one of {', '.join(SORT_KEYS)})")
        if limit < 0 or offset < 0:
            raise RegisterInputError("limit and offset must not be negative")
        stmt = self._case_select(search, model, model_version, outcome)
        columns: dict[str, Sequence[Any]] = {
            "created_at": [Prediction.created_at], "id": [], "patient_id": [Patient.patient_id],
            "patient_name": [Patient.patient_name], "study_date": [Study.study_date],
            "label": [Prediction.label], "score": [Prediction.score],
            "votes": [Prediction.responder_votes],
            "model": [Prediction.model_name, Prediction.model_version],
            "outcome": [Outcome.category],
        }
        order = [*columns[sort], Prediction.id]
        stmt = stmt.order_by(*[c.desc() if descending else c.asc() for c in order])
        stmt = stmt.limit(limit).offset(offset)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return [CaseRow(r[0], parse_timestamp(r[1]), *r[2:]) for r in rows]

    def count_cases(self, search: str = "", model: str | None = None,
                    outcome: str | None = "any", model_version: str | None = None) -> int:
        """How many cases :meth:`list_cases` would page through with these filters."""
        sub = self._case_select(search, model, model_version, outcome).subquery()
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(sub)).scalar_one())

    def models(self) -> list[tuple[str, str]]:
        """The (model name, version) pairs present, for the table's model filter."""
        with self._read() as conn:
            rows = conn.execute(select(Prediction.model_name, Prediction.model_version)
                                .distinct().order_by(Prediction.model_name,
                                                     Prediction.model_version)).all()
        return [(r[0], r[1]) for r in rows]

    # ---------------------------------------------------------------- outcomes

    def record_outcome(self, prediction_id: int, category: str,
                       date: str | dt.date | None = None, entered_by: str | None = None,
                       note: str = "") -> OutcomeEntry:
        """Record the RECIST outcome of a case; a second entry is a correction.

        A correction is a new row that supersedes the current one: the old value stays in the
        history (``PredictionDetail.outcomes``) and both are in the audit trail.

        Parameters
        ----------
        category:
            CR, PR, SD or PD (case-insensitive).
        date:
            Date of the response assessment (``YYYY-MM-DD``/``YYYYMMDD``/date); today if None.
        entered_by:
            Who entered it; the OS login if None.
        """
        cat = normalise_category(category)
        when = normalise_date(date if date is not None else dt.date.today(), "outcome date")
        by = entered_by if entered_by is not None else current_os_user()
        with self._write() as conn:
            self._require_prediction(conn, prediction_id)
            previous = conn.execute(select(func.max(Outcome.id))
                                    .where(Outcome.prediction_ref == prediction_id)).scalar()
            entered = timestamp_text(utc_now())
            oid = _insert_id(conn, insert(Outcome).values(
                prediction_ref=prediction_id, category=cat, outcome_date=when, entered_by=by,
                entered_at=entered, supersedes_ref=previous, note=note or "",
            ))
            record_hash = audit.content_hash(outcome_content(conn, oid))
            self._append_event(conn, "outcome", {
                "outcome_id": oid, "record_hash": record_hash, "category": cat,
                "supersedes": previous}, prediction_id)
        return OutcomeEntry(oid, prediction_id, cat, when, by, parse_timestamp(entered),
                            previous, note or "")

    def _outcomes(self, conn: Connection, prediction_id: int) -> list[OutcomeEntry]:
        rows = orm_session(conn).execute(select(Outcome).where(Outcome.prediction_ref == prediction_id)
                            .order_by(Outcome.id)).scalars()
        return [OutcomeEntry(o.id, o.prediction_ref, o.category, o.outcome_date, o.entered_by,
                             parse_timestamp(o.entered_at), o.supersedes_ref, o.note)
                for o in rows]

    def outcome_history(self, prediction_id: int) -> list[OutcomeEntry]:
        """Every outcome entered for a case, oldest first (the last one is current)."""
        with self._read() as conn:
            self._require_prediction(conn, prediction_id)
            return self._outcomes(conn, prediction_id)

    # ---------------------------------------------------------------- verify

    def verify(self, expected_head: str | None = None) -> VerifyReport:
        """Check the database and the audit trail; detects edits made behind the register's back.

        Checks ``PRAGMA integrity_check``; recomputes every link of the hash chain (ids must run
        1, 2, 3, … with no gap and none removed from the end); recomputes the content hash of
        every prediction and outcome and compares it with its audit event; and reports rows
        without an event and events whose row is gone. Works even when the append-only
        triggers were dropped.

        Parameters
        ----------
        expected_head:
            A ``last_hash`` noted at an earlier verify: the chain must still contain that
            event, which catches a rewrite of the whole tail after it.
        """
        with self._read() as conn:
            conn.begin()  # one consistent snapshot for the whole check
            return verify_connection(conn, expected_head)

    # ---------------------------------------------------------------- performance

    def performance(self) -> list[PerformanceRow]:
        """Local AUC (95 % CI), sensitivity, specificity, accuracy per model version.

        Uses every case with a current outcome; a study predicted several times by one model
        version counts once (its latest prediction). See :mod:`app.register.performance`.
        """
        with self._read() as conn:
            return performance_rows(conn)

    # ---------------------------------------------------------------- backup / export

    def backup(self, dest: Path | str,
               progress: Callable[[int, int], None] | None = None) -> Path:
        """Copy the register to ``dest`` with SQLite's backup API (safe while it is in use).

        Refuses to overwrite an existing file or the register itself. The copy is made under
        a temporary name and appears under ``dest`` only together with its audit event (see
        :meth:`_publish`): a backup that fails leaves neither file nor event.
        """
        dest = Path(dest).expanduser()
        if dest.exists():
            raise RegisterInputError(f"{dest} exists already; choose a new file for the backup")
        with db.translated(dest):
            dest.parent.mkdir(parents=True, exist_ok=True)
        with self._read() as conn:
            dbapi = conn.connection.dbapi_connection
            if not isinstance(dbapi, sqlite3.Connection):  # pragma: no cover - always sqlite3
                raise RegisterError("unexpected database driver")
            tmp = db.backup_to_temporary(dbapi, dest, progress)
        self._publish(tmp, dest, "backup", {"path": str(dest)})
        return dest

    def _publish(self, tmp: Path, dest: Path, kind: str, payload: dict[str, Any],
                 prediction_id: int | None = None) -> None:
        """Move a finished file from ``tmp`` to ``dest`` and record ``kind`` in the audit trail.

        Both happen in one write transaction: the event is appended, the file renamed, then the
        transaction commits; if anything fails (the register is read-only, full or damaged)
        the renamed file is removed again and the temporary one always is (a folder, for an
        image export, likewise). So a command that
        fails wrote nothing, and one that succeeded has its event. A register opened
        read-only on purpose (an archive copy) cannot hold an event: the file is just moved.
        """
        moved = False
        try:
            if self.read_only:
                with db.translated(dest):
                    os.replace(tmp, dest)
                return
            with self._write() as conn:
                self._append_event(conn, kind, payload, prediction_id)
                with db.translated(dest):
                    os.replace(tmp, dest)
                moved = True
        except BaseException:
            if moved:
                _remove_path(dest)
            raise
        finally:
            _remove_path(tmp)

    def export_rows(self) -> Iterator[dict[str, Any]]:
        """Every case as a plain export row (with its current outcome), by case id."""
        with self._read() as conn:
            rows = case_rows(conn)
        yield from rows

    def export_csv(self, dest: Path | str, pseudonymise: bool = False,
                   key: bytes | str | None = None) -> ExportSummary:
        """Write every case to a CSV file, optionally pseudonymised.

        See :mod:`app.register.export` for what the pseudonymised export keeps, hashes, shifts
        and drops. ``key`` (bytes, or text used as UTF-8) replaces the register's own secret,
        e.g. to link exports of several registers. The export is recorded in the audit trail
        (file, number of rows, whether pseudonymised — never the key) in the same step that
        makes the file appear (:meth:`_publish`): a failed export leaves no file. A register
        opened read-only cannot record it, so exports from one are not in its trail.
        """
        dest = Path(dest).expanduser()
        key_bytes = b""
        if pseudonymise:
            if key is None:
                secret = self.meta("pseudonym_key")
                if not secret:  # pragma: no cover - created by migration 0001
                    raise RegisterError("this register has no pseudonymisation key")
                key_bytes = bytes.fromhex(secret)
            else:
                key_bytes = key.encode("utf-8") if isinstance(key, str) else bytes(key)
                if len(key_bytes) < 16:
                    raise RegisterInputError("a pseudonymisation key must be at least 16 bytes")
        tmp = dest.with_name(f"{dest.name}.{uuid.uuid4().hex[:8]}.partial")
        with db.translated(dest):
            dest.parent.mkdir(parents=True, exist_ok=True)
            n = write_csv(tmp, self.export_rows(), key_bytes if pseudonymise else None)
        self._publish(tmp, dest, "export", {
            "path": str(dest), "rows": n, "pseudonymised": pseudonymise,
            "key": ("supplied" if key is not None else "register") if pseudonymise else None,
        })
        return ExportSummary(dest, n, pseudonymise)

    def export_images(self, case_id: int, dest: Path | str, *,
                      deidentify: bool = True) -> Any:
        """Write the case's three phases de-identified into the new folder ``dest``.

        See :mod:`app.register.image_export` (returns its ``ImageExportSummary``).
        """
        from app.register.image_export import export_case_images

        return export_case_images(self, case_id, dest, deidentify=deidentify)

    def stats(self) -> dict[str, int]:
        """Counts for a status line: patients, studies, cases, cases with outcome, events."""
        with self._read() as conn:
            def count(sql: str) -> int:
                return int(conn.exec_driver_sql(sql).scalar_one())

            return {
                "patients": count("SELECT count(*) FROM patients"),
                "studies": count("SELECT count(*) FROM studies"),
                "cases": count("SELECT count(*) FROM predictions"),
                "cases_with_outcome": count(
                    "SELECT count(DISTINCT prediction_ref) FROM outcomes"),
                "events": count("SELECT count(*) FROM audit_events"),
            }


# ------------------------------------------------------------------------------------------------
# row ↔ record helpers (one place, so that insert-time and verify-time hashes see the same data)


def _remove_path(path: Path) -> None:
    """Remove a file or a whole folder if it exists (cleanup after a failed publish)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _insert_id(conn: Connection, stmt: Insert) -> int:
    """Execute an INSERT and return the new row's primary key."""
    key = conn.execute(stmt).inserted_primary_key
    if key is None or key[0] is None:  # pragma: no cover - SQLite always reports it
        raise RegisterError("the register did not return the id of the new row")
    return int(key[0])
