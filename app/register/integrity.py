"""Refusing a damaged register, and pointing at the backup to restore it from (issue 19).

Random bytes written into a register page (a failing disk, a bad copy) can leave SQLite able to
read most of it while a write lands next to the damage and makes it worse. So every writable
open first runs ``PRAGMA quick_check`` (O(pages), without the index cross-checks of
``integrity_check``; its cost on a 10,000-case register is measured by
``bench/register_speed.py``) and a damaged register is refused before anything is written, with
the newest backup named in the message. Reads that hit damage later (SQLITE_CORRUPT, or a
stored value that no longer decodes) raise the same error instead of internal text.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import urllib.parse
from pathlib import Path

from app.register.errors import RegisterDamagedError

#: The backup files written beside a register before a schema upgrade (see ``db``).
_BESIDE_PATTERN = "{stem}.bak-*.sqlite"


def _recorded_backups(path: Path) -> list[Path]:
    """Backups the register's own audit trail names, where that part can still be read."""
    found: list[Path] = []
    uri = "file:" + urllib.parse.quote(str(path)) + "?mode=ro&immutable=1"
    with contextlib.suppress(sqlite3.Error, OSError):
        con = sqlite3.connect(uri, uri=True)
        try:
            for (payload,) in con.execute(
                    "SELECT payload FROM audit_events WHERE kind = 'backup' ORDER BY id"):
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    found.append(Path(json.loads(payload)["path"]))
        finally:
            con.close()
    return found


def find_backups(path: Path) -> list[Path]:
    """Existing backups of the register at ``path``, newest first (by modification time)."""
    candidates = set(path.parent.glob(_BESIDE_PATTERN.format(stem=path.stem)))
    candidates.update(_recorded_backups(path))
    existing = []
    for c in candidates:
        with contextlib.suppress(OSError):
            if c.is_file() and c.resolve() != path.resolve():
                existing.append((c.stat().st_mtime, str(c), c))
    return [c for _, _, c in sorted(existing, reverse=True)]


def damaged_error(path: Path | None, what: str, details: str | None = None
                  ) -> RegisterDamagedError:
    """The error for a damaged register at ``path``: what is wrong and what to restore from."""
    where = str(path) if path is not None else "the register"
    backups = find_backups(path) if path is not None else []
    if backups:
        advice = (f"restore it from the backup {backups[0]} (keep the damaged file aside, then "
                  f"copy the backup in its place)")
    else:
        advice = ("no backup of it was found beside it or in its audit trail; keep the file "
                  "for inspection and start a new register")
    return RegisterDamagedError(
        f"the register {where} is damaged ({what}); nothing was written to it — {advice}",
        details=details, backup=backups[0] if backups else None)


def quick_check(con: sqlite3.Connection, path: Path) -> None:
    """Run ``PRAGMA quick_check`` on ``con``; raise :class:`RegisterDamagedError` if not "ok"."""
    try:
        rows = [str(r[0]) for r in con.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.DatabaseError as exc:
        raise damaged_error(path, f"its pages cannot be read: {exc}", str(exc)) from exc
    if rows != ["ok"]:
        lines = [ln for r in rows for ln in r.splitlines() if ln and not ln.startswith("***")]
        raise damaged_error(path, "SQLite's integrity check failed: "
                            + (lines[0] if lines else "?"), "\n".join(rows))
