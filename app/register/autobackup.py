"""Scheduled backups of the case register, kept in rotation (Qt-free).

Why: the register is the only record of which prediction a patient got with which model, and of
the outcomes entered since. On a hospital workstation it lives on one local disk; a site expects
it to be backed up without anyone remembering to, into a folder its IT department chooses (a
network share, a disk that is itself backed up). The desktop app makes a backup when it starts
and the last one is older than the interval; ``hcc-response register backup --scheduled`` does
the same for a task scheduler on a machine where the app is seldom opened.

Each backup is made with SQLite's backup API through :meth:`app.register.Register.backup`
(RELIABILITY.md 22: a consistent copy while the register is in use, recorded in the audit
trail, never a half-written file). Backups are named ``register-backup-<UTC time>.sqlite``;
only files of that pattern are counted and pruned, the oldest beyond ``keep`` first — anything
else in the folder is left alone.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.backup_policy import BackupPolicy

if TYPE_CHECKING:  # pragma: no cover - typing only
    from app.register import Register

log = logging.getLogger(__name__)

PREFIX = "register-backup-"
_STAMP = "%Y%m%dT%H%M%SZ"
_NAME = re.compile(r"^register-backup-(\d{8}T\d{6}Z)(?:-\d+)?\.sqlite$")


@dataclass
class BackupOutcome:
    """What a scheduled run did: the new backup (None when none was due) and what it pruned."""

    path: Path | None
    pruned: list[Path] = field(default_factory=list)
    #: one line for the status bar or the terminal
    message: str = ""


def scheduled_backups(folder: Path) -> list[tuple[dt.datetime, Path]]:
    """The scheduled backups in ``folder``, oldest first (other files are not ours)."""
    found: list[tuple[dt.datetime, Path]] = []
    try:
        entries = list(Path(folder).iterdir())
    except FileNotFoundError:
        return []
    for p in entries:
        m = _NAME.match(p.name)
        if m and p.is_file():
            stamp = dt.datetime.strptime(m.group(1), _STAMP).replace(tzinfo=dt.UTC)
            found.append((stamp, p))
    return sorted(found)


def backup_due(policy: BackupPolicy, now: dt.datetime | None = None) -> bool:
    """True when backups are on and the newest is older than the interval (or there is none)."""
    return policy.enabled and _older_than_interval(
        scheduled_backups(policy.backup_dir()), policy, now or dt.datetime.now(dt.UTC))


def _older_than_interval(existing: list[tuple[dt.datetime, Path]], policy: BackupPolicy,
                         now: dt.datetime) -> bool:
    return not existing or now - existing[-1][0] >= dt.timedelta(hours=policy.interval_hours)


def run_scheduled_backup(register: Register, policy: BackupPolicy, now: dt.datetime | None = None,
                         *, force: bool = False) -> BackupOutcome:
    """Back up ``register`` into the policy's folder if due (or ``force``), then prune.

    Not due: backups turned off, the newest backup younger than the interval, or a register
    without any prediction yet (a first start makes no backup of an empty register).

    Raises
    ------
    RegisterError
        The backup could not be made (folder not writable, disk full...): nothing is left
        behind and nothing is pruned. A backup that cannot be pruned is logged, not raised.
    """
    now = now or dt.datetime.now(dt.UTC)
    folder = policy.backup_dir()
    if not force and register.count_cases() == 0:
        return BackupOutcome(None, [], "register backup skipped: no prediction recorded yet")
    existing = scheduled_backups(folder)  # listed once: the folder may be a slow share
    if not force and not (policy.enabled and _older_than_interval(existing, policy, now)):
        when = existing[-1][0].strftime("%Y-%m-%d %H:%M UTC") if existing else "never"
        return BackupOutcome(None, [], f"register backup not due (last {when})")
    dest = folder / f"{PREFIX}{now.strftime(_STAMP)}.sqlite"
    n = 1
    while dest.exists():
        n += 1
        dest = folder / f"{PREFIX}{now.strftime(_STAMP)}-{n}.sqlite"
    register.backup(dest)
    pruned = _prune([*existing, (now, dest)], policy.keep)
    log.info("register backed up to %s (%d old backup(s) removed)", dest, len(pruned))
    more = f"; {len(pruned)} older removed" if pruned else ""
    return BackupOutcome(dest, pruned, f"register backed up to {dest}{more}")


def _prune(existing: list[tuple[dt.datetime, Path]], keep: int) -> list[Path]:
    """Delete the oldest of ``existing`` (oldest first) beyond ``keep``; returns what was deleted."""
    removed: list[Path] = []
    for _stamp, path in existing[: max(0, len(existing) - keep)]:
        try:
            path.unlink()
            removed.append(path)
        except OSError as exc:  # a locked or read-only old backup: the next run tries again
            log.warning("could not remove old register backup %s: %s", path, exc)
    return removed
