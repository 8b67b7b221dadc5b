"""Predictions that could not be recorded, kept until they can be (issue 19, RELIABILITY.md 24).

A user who waited for a prediction must never lose it because the register could not take it
at that moment (a full disk, a read-only or damaged register, one written by a newer version,
another program holding the lock). :func:`record_or_keep` tries the register and, when that
fails, appends the whole record with the reason to ``pending-records.jsonl`` in the per-user
data folder; :func:`replay` (called once at every start of the application) records what is
pending wherever it can now be recorded and keeps the rest, with the new reason.

The file is JSON Lines, one :class:`PendingEntry` per line, so that keeping one more record is
a single append, and a torn last line (a crash while appending) loses nothing before it. A
replay first claims the file by renaming it (atomic: two programs starting at once cannot both
replay it) and appends what is still pending back. A record that reached the register but whose
entry could not be removed (a crash in between) is recognised by its study, model and time of
prediction and not recorded twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app import paths
from app.errors import HCCError
from app.register.errors import RegisterInputError
from app.register.records import (
    PredictionRecord,
    parse_timestamp,
    plain_json,
    timestamp_text,
    utc_now,
)

log = logging.getLogger(__name__)

_CLAIM_MARK = ".replaying-"  # see paths.has_pending_records


@dataclass(frozen=True)
class PendingEntry:
    """One prediction waiting to be recorded.

    Attributes
    ----------
    id:
        Random identifier of the entry (for listing and logs).
    register:
        The register it is meant for (absolute path; "" for the default one).
    reason:
        Why it could not be recorded the last time it was tried.
    kept_at, attempts:
        When it was first kept (UTC, ISO text) and how many times recording was tried.
    record:
        The prediction itself, unchanged.
    """

    id: str
    register: str
    reason: str
    kept_at: str
    attempts: int
    record: PredictionRecord


@dataclass(frozen=True)
class SaveOutcome:
    """What :func:`record_or_keep` did: recorded (``case_id``) or kept (``pending``).

    ``error`` is the register's error when the record was not recorded; ``keep_error`` says why
    it could not even be kept (the per-user folder is unwritable too: only the output shown
    holds the result then).
    """

    case_id: int | None
    error: HCCError | None = None
    pending: PendingEntry | None = None
    pending_file: Path | None = None
    keep_error: str | None = None

    @property
    def message(self) -> str:
        """One line for the user: what happened to the prediction."""
        if self.error is None:
            return f"recorded in the register as case {self.case_id}"
        if self.pending is not None:
            return (f"the prediction was NOT recorded in the register: {self.error.message} — "
                    f"it is kept in {self.pending_file} and will be recorded the next time "
                    f"HCC Response starts")
        if isinstance(self.error, RegisterInputError):
            return f"the prediction was NOT recorded in the register: {self.error.message}"
        return (f"the prediction was NOT recorded in the register: {self.error.message} — and "
                f"it could not be kept for later either ({self.keep_error}); save the output "
                f"shown")


@dataclass(frozen=True)
class ReplayReport:
    """What :func:`replay` did: ``recorded`` (entry, case id) and ``pending`` entries."""

    recorded: list[tuple[PendingEntry, int]] = field(default_factory=list)
    pending: list[PendingEntry] = field(default_factory=list)


def pending_file() -> Path:
    """The pending-records file in the per-user data folder."""
    return paths.pending_records_file()


# ------------------------------------------------------------------------------------------------
# (de)serialisation


def _record_json(record: PredictionRecord) -> dict[str, Any]:
    data = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    data["created_at"] = timestamp_text(record.created_at)
    return dict(plain_json(data))


def _record_from_json(data: dict[str, Any]) -> PredictionRecord:
    names = {f.name for f in dataclasses.fields(PredictionRecord)}
    values = {k: v for k, v in data.items() if k in names}
    values["created_at"] = parse_timestamp(str(values["created_at"]))
    return PredictionRecord(**values)


def _entry_line(entry: PendingEntry) -> str:
    doc = {"id": entry.id, "register": entry.register, "reason": entry.reason,
           "kept_at": entry.kept_at, "attempts": entry.attempts,
           "record": _record_json(entry.record)}
    return json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n"


def _parse_lines(text: str, source: Path) -> tuple[list[PendingEntry], list[str]]:
    """Entries of a pending file, and the lines that could not be read (kept, never dropped)."""
    entries: list[PendingEntry] = []
    unreadable: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            entries.append(PendingEntry(str(doc["id"]), str(doc["register"]), str(doc["reason"]),
                                        str(doc["kept_at"]), int(doc["attempts"]),
                                        _record_from_json(doc["record"])))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("unreadable line in %s: %s", source, exc)
            unreadable.append(line)
    return entries, unreadable


def _append(path: Path, lines: list[str]) -> None:
    """Append whole lines (one ``write`` each, flushed and synced): an append is all or torn."""
    if not lines:
        return
    with path.open("a", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line if line.endswith("\n") else line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


# ------------------------------------------------------------------------------------------------
# keep / list / replay


def keep(register: Path | str | None, record: PredictionRecord, reason: str) -> PendingEntry:
    """Append ``record`` to the pending file with ``reason``; raises ``OSError`` if impossible."""
    entry = PendingEntry(uuid.uuid4().hex[:12], _register_key(register), reason,
                         timestamp_text(utc_now()), 1, record)
    _append(pending_file(), [_entry_line(entry)])
    log.warning("prediction for study %s kept in %s: %s", record.study_uid, pending_file(),
                reason)
    return entry


def _register_key(register: Path | str | None) -> str:
    return "" if register is None else str(Path(register).expanduser().resolve())


def record_or_keep(register: Path | str | None, record: PredictionRecord) -> SaveOutcome:
    """Record ``record`` in ``register`` (None: the default one), or keep it for later.

    Never raises for a register that cannot take the record: the outcome says what happened.
    A record the register refuses for its content (:class:`RegisterInputError`, e.g. a study
    UID already recorded for another patient) is not kept: replaying it could never succeed;
    the caller still shows it.
    """
    from app.register.register import open_register

    try:
        with open_register(register) as reg:
            return SaveOutcome(reg.add_prediction(record))
    except RegisterInputError as exc:
        return SaveOutcome(None, exc, keep_error="the register refuses its content")
    except HCCError as exc:
        error = exc
    try:
        entry = keep(register, record, error.message)
    except OSError as exc:
        log.error("could not keep the prediction in %s: %s", pending_file(), exc)
        return SaveOutcome(None, error, keep_error=f"{pending_file()}: {exc.strerror or exc}")
    return SaveOutcome(None, error, entry, pending_file())


def pending_entries() -> list[PendingEntry]:
    """Every entry now pending (the pending file and any claim a crashed replay left)."""
    entries: list[PendingEntry] = []
    for f in _files():
        with contextlib.suppress(OSError):
            entries.extend(_parse_lines(f.read_text(encoding="utf-8"), f)[0])
    return entries


def _files() -> Iterator[Path]:
    main = pending_file()
    if main.exists():
        yield main
    yield from sorted(main.parent.glob(main.name + _CLAIM_MARK + "*"))


def replay() -> ReplayReport:
    """Record every pending prediction that can be recorded now; keep the others.

    Returns what was recorded and what is still pending (with the latest reason). Called at
    every start; cheap when nothing is pending (one ``stat``).
    """
    from app.register.register import open_register

    report = ReplayReport()
    main = pending_file()
    for source in list(_files()):
        claim = main.with_name(f"{main.name}{_CLAIM_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            os.replace(source, claim)  # another program replaying at once gets FileNotFoundError
        except FileNotFoundError:
            continue
        except OSError as exc:  # a read-only data folder: nothing can be replayed from it
            log.warning("cannot claim %s for replay: %s", source, exc)
            report.pending.extend(_parse_lines(source.read_text(encoding="utf-8"), source)[0])
            continue
        entries, unreadable = _parse_lines(claim.read_text(encoding="utf-8"), claim)
        still: list[PendingEntry] = []
        for entry in entries:
            try:
                # a named register that is gone (a drive not mounted) is waited for, never
                # created anew in its place; the default one may be created
                with open_register(entry.register or None, create=not entry.register) as reg:
                    case_id = reg.find_prediction(entry.record)
                    if case_id is None:
                        case_id = reg.add_prediction(entry.record)
                report.recorded.append((entry, case_id))
                log.info("pending prediction %s recorded as case %s", entry.id, case_id)
            except HCCError as exc:
                still.append(dataclasses.replace(entry, reason=exc.message,
                                                 attempts=entry.attempts + 1))
        _append(main, [_entry_line(e) for e in still] + unreadable)
        claim.unlink()
        report.pending.extend(still)
    return report


def replay_at_start(notify: Any) -> None:
    """The start-up call: replay, and tell the user in one or two lines (``notify(text)``).

    Never raises: a problem with the pending file must not stop the application starting.
    """
    try:
        if not paths.has_pending_records():
            return
        report = replay()
    except (OSError, HCCError) as exc:
        log.warning("replaying pending predictions failed: %s", exc)
        notify(f"predictions kept from earlier could not be replayed: {exc}")
        return
    if report.recorded:
        cases = ", ".join(str(case_id) for _, case_id in report.recorded)
        notify(f"{len(report.recorded)} prediction(s) kept from earlier are now recorded in the "
               f"register (case {cases})")
    if report.pending:
        notify(f"{len(report.pending)} prediction(s) are still waiting to be recorded "
               f"({report.pending[-1].reason}); they are kept in {pending_file()}")
