"""Refusing a damaged register, and pointing at the backup to restore it from (issue 19).

Random bytes written into a register page (a failing disk, a bad copy) can leave SQLite able to
read most of it while a write lands next to the damage and makes it worse. So every writable
open first runs ``PRAGMA quick_check`` (O(pages), without the index cross-checks of
``integrity_check``) and a damaged register is refused before anything is written, with the
newest backup named in the message.

The check covers every table but the per-slice detail (``prediction_slices``): that table is
three quarters of the file, is only ever appended to (its damaged pages are found by SQLite
itself when a read or the append reaches them, and reported as the same error), and checking
it would triple the cost. ``bench/register_speed.py`` measures both on a 10,000-case register
(about 35 ms against 130 ms for the whole file, on an idle machine); ``verify`` still runs the
full ``integrity_check``. Reads that hit damage later (SQLITE_CORRUPT, or a
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


#: Tables the check at open leaves out (see the module docstring).
UNCHECKED_AT_OPEN = frozenset({"prediction_slices"})


def quick_check(con: sqlite3.Connection, path: Path, *, whole: bool = False) -> None:
    """Run ``PRAGMA quick_check`` on ``con``; raise :class:`RegisterDamagedError` if not "ok".

    ``whole``: check the whole file, not only the tables a write touches.
    """
    try:
        if whole:
            rows = [str(r[0]) for r in con.execute("PRAGMA quick_check").fetchall()]
        else:
            tables = [str(r[0]) for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            rows = []
            for table in tables:
                if table in UNCHECKED_AT_OPEN:
                    continue
                quoted = '"' + table.replace('"', '""') + '"'
                result = [str(r[0]) for r in con.execute(f"PRAGMA quick_check({quoted})")]
                if result != ["ok"]:
                    rows = result
                    break
            rows = rows or ["ok"]
    except sqlite3.DatabaseError as exc:
        raise damaged_error(path, f"its pages cannot be read: {exc}", str(exc)) from exc
    if rows != ["ok"]:
        lines = [ln for r in rows for ln in r.splitlines() if ln and not ln.startswith("***")]
        raise damaged_error(path, "SQLite's integrity check failed: "
                            + (lines[0] if lines else "?"), "\n".join(rows))
