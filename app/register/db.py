"""Opening the register file: connection settings, schema checks, migrations, backups.

Every connection gets ``journal_mode=WAL``, ``synchronous=FULL``, ``foreign_keys=ON`` and a
busy timeout (RELIABILITY.md 19) from a SQLAlchemy ``connect`` event, so that no code path can
obtain a connection without them. The driver's own transaction handling is switched off and
transactions are begun explicitly: reads with a plain ``BEGIN`` (a WAL snapshot that never
blocks a writer), writes with ``BEGIN IMMEDIATE``, which takes the write lock up front and
waits for it under the busy timeout. A deferred write transaction could instead fail at once
with "database is locked" when it tries to upgrade a stale read snapshot — the classic cause of
that error when a UI thread reads while a worker writes.

Opening (RELIABILITY.md 21): an absent or empty file is created at the head revision; a
register at an older revision is first copied with SQLite's backup API beside itself
(``<name>.bak-<rev>-<UTC time>.sqlite``) and then upgraded in one transaction; a revision this
version does not know (written by a newer app) is refused before anything is written to it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import logging
import os
import sqlite3
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import QueuePool

from app.register.errors import (
    NotARegisterError,
    RegisterBusyError,
    RegisterError,
    RegisterFullError,
    RegisterInputError,
    RegisterReadOnlyError,
)
from app.register.migrations import MIGRATIONS_DIR
from app.register.models import Base

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
SQLITE_MAGIC = b"SQLite format 3\x00"

# SQLite primary result codes (the low byte of the extended code)
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 5, 6, 8
_SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 10, 13, 14, 26


# --------------------------------------------------------------------------------------------
# schema revisions


def alembic_config() -> Config:
    """Alembic configuration built in code (no alembic.ini at run time)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest schema revision this version of the app knows."""
    head = script_directory().get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RegisterError("the register's migrations are missing from this installation")
    return head


def known_revisions() -> set[str]:
    return {s.revision for s in script_directory().walk_revisions()}


@dataclass(frozen=True)
class FileState:
    """What a probe of the file found before anything was written to it."""

    exists: bool
    revision: str | None  # None: no schema yet (new or empty file)


def probe(path: Path) -> FileState:
    """Read the schema revision of ``path`` without changing the file.

    A plain connection with no pragmas reads ``alembic_version``; nothing is written (a hot
    WAL left by a crashed writer is recovered by SQLite itself, which is what it is for).

    Raises
    ------
    NotARegisterError
        The file is not SQLite, or is a SQLite database of some other program.
    """
    if not path.exists():
        return FileState(False, None)
    if path.is_dir():
        raise RegisterInputError(f"{path} is a folder, not a register file")
    try:
        with path.open("rb") as fh:
            header = fh.read(16)
    except OSError as exc:
        raise RegisterReadOnlyError(f"cannot read the register {path}: {exc.strerror}") from exc
    if not header:
        return FileState(True, None)  # an empty file: a register is created in it
    if header != SQLITE_MAGIC:
        raise NotARegisterError(f"{path} is not an HCC Response register (not a SQLite file)")
    con = _raw_connect(path, read_only=False)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "alembic_version" not in tables:
            if tables:
                raise NotARegisterError(
                    f"{path} is a SQLite database of another program, not an HCC Response "
                    f"register (it was left unchanged)"
                )
            return FileState(True, None)
        rows = con.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError as exc:
        raise translate(exc, path) from exc
    finally:
        con.close()
    if len(rows) != 1:
        raise NotARegisterError(f"{path} has a damaged schema version table ({len(rows)} rows)")
    return FileState(True, str(rows[0][0]))


def migrate(engine: Engine, target: str = "head") -> str | None:
    """Upgrade the database behind ``engine`` to ``target`` in one write transaction.

    SQLite's DDL is transactional, so an upgrade interrupted by a crash or an error leaves the
    register at its previous revision. Returns the revision found once the write lock was held
    (None for a new register): when two programs open an older register at once, the second
    finds it already upgraded and does nothing.
    """
    cfg = alembic_config()
    script = ScriptDirectory.from_config(cfg)

    def upgrade(rev: Any, context: Any) -> Any:
        return script._upgrade_revs(target, rev)

    with (write_engine(engine).begin() as conn,
          EnvironmentContext(cfg, script, fn=upgrade, destination_rev=target) as env):
        before = MigrationContext.configure(conn).get_current_revision()
        env.configure(connection=conn, target_metadata=Base.metadata)
        with env.begin_transaction():
            env.run_migrations()
    return before


# --------------------------------------------------------------------------------------------
# connections


def _raw_connect(path: Path, read_only: bool) -> sqlite3.Connection:
    """A DB-API connection; ``read_only`` opens with ``mode=ro`` (no write can succeed)."""
    try:
        if read_only:
            uri = "file:" + urllib.parse.quote(str(path)) + "?mode=ro"
            return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                                   check_same_thread=False)
        return sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000,
                               check_same_thread=False)
    except sqlite3.DatabaseError as exc:
        raise translate(exc, path) from exc


def make_engine(path: Path, *, read_only: bool = False) -> Engine:
    """A SQLAlchemy engine on ``path`` whose every connection has the register's pragmas.

    The engine (and its pool) is thread-safe: each thread checks out its own connection, so the
    UI thread can read while a worker thread writes.
    """
    engine = create_engine(
        "sqlite+pysqlite://",
        creator=lambda: _raw_connect(path, read_only),
        poolclass=QueuePool,
        pool_size=4,
        max_overflow=8,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_con: sqlite3.Connection, _record: Any) -> None:
        # transactions are begun explicitly in "begin" below, not by the driver
        dbapi_con.isolation_level = None
        cur = dbapi_con.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not read_only:
                mode = cur.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise RegisterError(f"the register could not switch to WAL mode ({mode})")
            cur.execute("PRAGMA synchronous = FULL")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("hcc_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def write_engine(engine: Engine) -> Engine:
    """The same engine (same pool) whose transactions begin with ``BEGIN IMMEDIATE``."""
    return engine.execution_options(hcc_write=True)


# --------------------------------------------------------------------------------------------
# errors


def translate(exc: BaseException, path: Path | None = None) -> Exception:
    """Turn a SQLite/SQLAlchemy error into the register's typed error with a clear message.

    Returns the new exception (the caller raises it ``from exc``); errors that are already the
    register's own pass through unchanged.
    """
    if isinstance(exc, RegisterError | RegisterInputError | NotARegisterError):
        return exc  # type: ignore[return-value]
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(orig)
    where = f" ({path})" if path else ""
    low = text.lower()
    if primary == _SQLITE_FULL or "disk is full" in low:
        return RegisterFullError(
            f"the register could not be saved: the disk is full{where}; nothing of this change "
            f"was written — free some space and save again",
            details=text,
        )
    if primary == _SQLITE_READONLY or "readonly" in low or "read-only" in low:
        return RegisterReadOnlyError(
            f"the register is in a read-only location or was opened read-only{where}; "
            f"nothing was written — choose a writable register and save again",
            details=text,
        )
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or "locked" in low:
        return RegisterBusyError(
            f"the register is locked by another program{where}; try again in a moment",
            details=text,
        )
    if primary == _SQLITE_CANTOPEN or "unable to open" in low:
        return RegisterReadOnlyError(
            f"the register cannot be opened{where}: the file or its folder is not accessible "
            f"or not writable",
            details=text,
        )
    if primary == _SQLITE_NOTADB or "not a database" in low:
        return NotARegisterError(f"{path or 'the file'} is not an HCC Response register",
                                 details=text)
    if primary == _SQLITE_IOERR:
        return RegisterError(f"disk I/O error on the register{where}: {text}", details=text)
    if isinstance(exc, sa_exc.IntegrityError | sqlite3.IntegrityError):
        return RegisterError(f"the register refused the change: {text}", details=text)
    return RegisterError(f"register error{where}: {text}", details=text)


def is_sqlite_error(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.Error | sa_exc.DBAPIError | sa_exc.OperationalError)


@contextlib.contextmanager
def translated(path: Path | None = None) -> Iterator[None]:
    """Context manager: SQLite errors inside become the register's typed errors."""
    try:
        yield
    except (sqlite3.Error, sa_exc.DBAPIError) as exc:
        raise translate(exc, path) from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise RegisterFullError(f"the disk is full ({exc.filename})") from exc
        if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise RegisterReadOnlyError(f"not writable: {exc.filename} ({exc.strerror})") from exc
        raise


# --------------------------------------------------------------------------------------------
# backup


def backup_connection(source: sqlite3.Connection, dest: Path,
                      progress: Callable[[int, int], None] | None = None) -> Path:
    """Copy the database behind ``source`` to ``dest`` with SQLite's online backup API.

    The backup API copies a consistent snapshot even while other connections write
    (RELIABILITY.md 22); copying the file itself could catch it half-written or miss the WAL.
    The copy goes to a temporary name beside ``dest`` and is renamed at the end, so a failed
    backup never leaves a half-written file under the requested name.
    """
    dest = Path(dest)
    tmp = dest.with_name(f"{dest.name}.{uuid.uuid4().hex[:8]}.partial")  # unique per call
    with translated(dest):
        target = sqlite3.connect(str(tmp))
        try:
            def _progress(_status: int, remaining: int, total: int) -> None:
                if progress is not None:
                    progress(total - remaining, total)

            source.backup(target, pages=256, progress=_progress)
            target.execute("PRAGMA journal_mode = DELETE")  # a backup is one self-contained file
            check = target.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":  # pragma: no cover - would mean a damaged source
                raise RegisterError(f"the backup failed its integrity check: {check}")
        except BaseException:
            target.close()
            tmp.unlink(missing_ok=True)
            raise
        target.close()
        os.replace(tmp, dest)
    return dest


def backup_before_upgrade(path: Path, revision: str) -> Path:
    """Back up an older register beside itself before it is upgraded; returns the copy's path."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = path.with_name(f"{path.stem}.bak-{revision}-{stamp}.sqlite")
    n = 1
    while dest.exists():
        n += 1
        dest = path.with_name(f"{path.stem}.bak-{revision}-{stamp}-{n}.sqlite")
    con = _raw_connect(path, read_only=False)
    try:
        return backup_connection(con, dest)
    finally:
        con.close()
