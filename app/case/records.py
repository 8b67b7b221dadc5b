"""The register's side of the case flow, as plain functions for worker threads.

The desktop app runs every register call — listing, outcome, export, verification, reading a
recorded case — in a worker through the same machinery as predictions, never on the GUI thread:
a register locked by another program waits up to its busy timeout (RELIABILITY.md 19), and the
window must not freeze meanwhile. These functions are what those jobs run; they only read and
write through :class:`app.register.Register` and raise its typed errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.progress import NULL_PROGRESS, Progress

if TYPE_CHECKING:  # pragma: no cover - typing only
    from app.backup_policy import BackupPolicy
    from app.inference.result import PredictionResult
    from app.register import Register
    from app.register.autobackup import BackupOutcome
    from app.register.performance import PerformanceRow
    from app.register.records import CaseRow, PredictionRecord, VerifyReport


@dataclass(frozen=True)
class CaseQuery:
    """What the register table asks for: search text, filters, sort."""

    search: str = ""
    model: str | None = None
    outcome: str | None = None
    sort: str = "created_at"
    descending: bool = True
    limit: int = 500


@dataclass
class RegisterView:
    """One refresh of the register table: the rows, the model names, local performance."""

    rows: list[CaseRow]
    model_names: list[str]
    performance: list[PerformanceRow] = field(default_factory=list)
    #: Cases recorded for display and never shown (:mod:`app.register.display`).
    unshown: list[int] = field(default_factory=list)


def load_view(register: Register, query: CaseQuery,
              progress: Progress = NULL_PROGRESS) -> RegisterView:
    """The rows matching ``query``, every model name in the register, and local performance."""
    rows = register.list_cases(search=query.search, model=query.model, outcome=query.outcome,
                               sort=query.sort, descending=query.descending, limit=query.limit)
    progress.check()
    names = sorted({name for name, _version in register.models()})
    progress.check()
    from app.register.display import unshown_predictions

    return RegisterView(rows, names, register.performance(), unshown_predictions(register))


def mark_shown(register: Register, prediction_id: int) -> int:
    """Record that a case's result is on screen (:func:`app.register.display.mark_shown`)."""
    from app.register.display import mark_shown as mark

    mark(register, prediction_id)
    return prediction_id


def record_outcome(register: Register, prediction_id: int, category: str, date: str,
                   entered_by: str) -> int:
    """Record a RECIST 1.1 outcome for a case; returns the case's id."""
    register.record_outcome(prediction_id, category, date, entered_by=entered_by or None)
    return prediction_id


def export_csv(register: Register, path: Path, pseudonymise: bool) -> Path:
    """Export the register as CSV; an unwritable place is the user's input error."""
    from app.errors import InputError

    try:
        register.export_csv(path, pseudonymise=pseudonymise)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from exc
    return path


def verify(register: Register) -> VerifyReport:
    """Check the register's integrity and its audit chain."""
    return register.verify()


@dataclass
class RecordedCase:
    """A case read back from the register: its record and the prediction as a result."""

    case_id: int
    record: PredictionRecord
    result: PredictionResult


def read_case(register: Register, case_id: int) -> RecordedCase:
    """Read a recorded prediction (:func:`app.casework.result_from_record`)."""
    from app.casework import result_from_record

    record = register.get_prediction(case_id).record
    return RecordedCase(case_id, record, result_from_record(record, case_id))


def has_cases(register: Register) -> bool:
    """Whether the register holds any case (the first-start demo offer)."""
    return bool(register.list_cases(limit=1))


def scheduled_backup(register: Register, policy: BackupPolicy,
                     progress: Progress = NULL_PROGRESS) -> BackupOutcome:
    """The automatic register backup the desktop app makes after start-up, when due
    (:func:`app.register.autobackup.run_scheduled_backup`).

    A failure says what failed and where to change it: the user did not ask for this backup,
    so a bare "permission denied" would not tell them which file it was about.
    """
    from app.errors import HCCError
    from app.register.autobackup import run_scheduled_backup
    from app.register.errors import RegisterError

    progress.check()
    try:
        return run_scheduled_backup(register, policy)
    except HCCError as exc:
        raise RegisterError(
            f"The automatic register backup failed: {exc.message}. The register itself is "
            "unharmed; choose a writable backup folder in Settings → Register backups.",
            exc.details) from exc
    except OSError as exc:  # the backup folder itself cannot be listed or made
        raise RegisterError(
            f"The automatic register backup failed: {policy.backup_dir()}: {exc.strerror or exc}. "
            "The register itself is unharmed; choose a writable backup folder in Settings → "
            "Register backups.") from exc
