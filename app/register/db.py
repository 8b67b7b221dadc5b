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

Reading without writing (issue 19): a WAL database needs its ``-shm`` index even to be read, and
SQLite creates it beside the file. On read-only media (an archive copy) that is impossible and
on a full disk it fails half-way, leaving a few-byte ``-shm``. Read-only connections therefore
try ``mode=ro`` first (correct while another program writes) and fall back to ``immutable=1``
(no index, no locks: right for a file nobody can be writing, because nobody can write there),
after removing any debris the failed attempt left. A file whose ``-wal`` still holds changes
cannot be read that way without losing them, and is refused with what to do instead.
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
from app.register.integrity import damaged_error, quick_check
from app.register.migrations import MIGRATIONS_DIR
from app.register.models import Base

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
#: Pages copied per step of the backup API; between steps other connections may write (and a
#: write by another connection makes the next step start the copy again from a new snapshot).
BACKUP_STEP_PAGES = 256
SQLITE_MAGIC = b"SQLite format 3\x00"

# SQLite primary result codes (the low byte of the extended code)
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 5, 6, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 10, 11, 13, 14, 26
#: Failures of a ``mode=ro`` open that mean "the -shm index cannot be made here", not damage.
_NO_INDEX_CODES = frozenset({_SQLITE_IOERR, _SQLITE_CANTOPEN, _SQLITE_READONLY})
#: The smallest valid WAL index; a shorter ``-shm`` is debris of a failed open.
_SHM_MIN_BYTES = 32768


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


def probe(path: Path, *, check: bool = False) -> FileState:
    """Read the schema revision of ``path`` without changing the file.

    A plain connection with no pragmas reads ``alembic_version``; nothing is written (a hot
    WAL left by a crashed writer is recovered by SQLite itself, which is what it is for, and
    the connection's close removes the WAL files it used). Where that connection cannot build
    the WAL index (read-only media, a full disk), a read-only one is used instead (see
    :func:`connect_read_only`), so the probe works there too.

    ``check`` also runs SQLite's quick integrity check (before a writable open: a damaged
    register is refused before anything is written to it).

    Raises
    ------
    NotARegisterError
        The file is not SQLite, or is a SQLite database of some other program.
    RegisterDamagedError
        ``check`` found damage (the message names the backup to restore from).
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
    con = _probe_connection(path)
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
        if check:
            quick_check(con, path)
    except sqlite3.DatabaseError as exc:
        raise translate(exc, path) from exc
    finally:
        con.close()
    if len(rows) != 1:
        raise NotARegisterError(f"{path} has a damaged schema version table ({len(rows)} rows)")
    return FileState(True, str(rows[0][0]))


def _probe_connection(path: Path) -> sqlite3.Connection:
    before = existing_sidecars(path)
    con: sqlite3.Connection | None = None
    try:
        con = _connect(str(path), uri=False)
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return con
    except sqlite3.DatabaseError as exc:
        if con is not None:
            con.close()
        if _sqlite_primary(exc) not in _NO_INDEX_CODES:
            raise translate(exc, path) from exc
    remove_debris(path, before)
    return connect_read_only(path)[0]


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


def _connect(target: str, *, uri: bool) -> sqlite3.Connection:
    return sqlite3.connect(target, uri=uri, timeout=BUSY_TIMEOUT_MS / 1000,
                           check_same_thread=False)


def _uri(path: Path, **params: object) -> str:
    return "file:" + urllib.parse.quote(str(path)) + "?" + urllib.parse.urlencode(params)


def sidecars(path: Path) -> tuple[Path, Path]:
    """The WAL index and the WAL journal that SQLite keeps beside ``path``."""
    return path.with_name(path.name + "-shm"), path.with_name(path.name + "-wal")


def existing_sidecars(path: Path) -> frozenset[Path]:
    return frozenset(p for p in sidecars(path) if p.exists())


def remove_debris(path: Path, existed_before: frozenset[Path]) -> None:
    """Remove the ``-shm``/``-wal`` a failed open created (a full disk leaves a 3-byte ``-shm``).

    Only files that did not exist before the attempt and cannot be in use (an index shorter
    than any valid one, an empty journal) are removed; anything else belongs to another
    program and stays.
    """
    shm, wal = sidecars(path)
    for side, limit in ((shm, _SHM_MIN_BYTES), (wal, 1)):
        if side in existed_before:
            continue
        with contextlib.suppress(OSError):
            if side.stat().st_size < limit:
                side.unlink()
                log.info("removed %s left by a failed open", side)


def _sqlite_primary(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def connect_read_only(path: Path) -> tuple[sqlite3.Connection, str]:
    """A connection that cannot write to ``path``, and the URI that opened it.

    ``mode=ro`` first; where that cannot build the WAL index (read-only media, a full disk),
    ``immutable=1`` after removing what the failed attempt left (see the module docstring).

    Raises
    ------
    RegisterReadOnlyError
        The file cannot be read in place (its ``-wal`` holds changes that need the index).
    """
    before = existing_sidecars(path)
    uri = _uri(path, mode="ro")
    con: sqlite3.Connection | None = None
    try:
        con = _connect(uri, uri=True)
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return con, uri
    except sqlite3.DatabaseError as exc:
        if con is not None:
            con.close()
        if _sqlite_primary(exc) not in _NO_INDEX_CODES:
            raise translate(exc, path) from exc
        first = exc
    remove_debris(path, before)
    wal = sidecars(path)[1]
    if wal.exists() and wal.stat().st_size > 0:
        raise RegisterReadOnlyError(
            f"the register {path} cannot be read in place: its journal {wal.name} holds "
            f"changes that SQLite can only read with write access to the folder; copy the "
            f"register together with {wal.name} to a writable disk and open the copy",
            details=str(first))
    uri = _uri(path, mode="ro", immutable=1)
    try:
        con = _connect(uri, uri=True)
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise translate(exc, path) from exc
    log.info("register %s opened immutable (%s)", path, first)
    return con, uri


def _raw_connect(path: Path, read_only: bool) -> sqlite3.Connection:
    """A DB-API connection; ``read_only`` opens one that cannot write (no write can succeed)."""
    if read_only:
        return connect_read_only(path)[0]
    try:
        return _connect(str(path), uri=False)
    except sqlite3.DatabaseError as exc:
        raise translate(exc, path) from exc


def make_engine(path: Path, *, read_only: bool = False) -> Engine:
    """A SQLAlchemy engine on ``path`` whose every connection has the register's pragmas.

    The engine (and its pool) is thread-safe: each thread checks out its own connection, so the
    UI thread can read while a worker thread writes.
    """
    creator: Callable[[], sqlite3.Connection]
    if read_only:
        # the access mode is chosen once (mode=ro or immutable) and kept for every connection
        first, uri = connect_read_only(path)
        first.close()

        def creator() -> sqlite3.Connection:
            return _connect(uri, uri=True)
    else:
        def creator() -> sqlite3.Connection:
            return _raw_connect(path, read_only=False)

    engine = create_engine(
        "sqlite+pysqlite://",
        creator=creator,
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
    if primary == _SQLITE_CORRUPT or "malformed" in low:
        return damaged_error(path, text, details=text)
    if primary == _SQLITE_FULL or "disk is full" in low or (
            primary == _SQLITE_IOERR and path is not None and disk_full(path)):
        return RegisterFullError(
            f"the disk is full{where}: nothing of this change was written — free some space "
            f"and try again",
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
    if path is not None and primary in (_SQLITE_CANTOPEN, _SQLITE_IOERR) and not writable(path):
        return RegisterReadOnlyError(
            f"the register {path} is on a read-only file system or in a folder that cannot be "
            f"written: it can be read (list, show, verify, stats) but not changed; nothing was "
            f"written", details=text)
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
        where = exc.filename or path or "?"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise RegisterFullError(
                f"the disk is full: {where} could not be written; nothing was kept — free some "
                f"space and try again") from exc
        if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise RegisterReadOnlyError(f"not writable: {where} ({exc.strerror}); nothing was "
                                        f"written") from exc
        raise


def writable(path: Path) -> bool:
    """Whether ``path`` (and its folder, where SQLite keeps its WAL files) can be written."""
    folder = path if path.is_dir() else path.parent
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return False
    except (OSError, AttributeError):  # no statvfs on Windows
        pass
    return os.access(folder, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def disk_full(path: Path) -> bool:
    """Whether the file system holding ``path`` has no block left for an ordinary user.

    SQLite reports a full disk met while growing its WAL index as a plain I/O error; this tells
    the two apart so the user reads "the disk is full" rather than "disk I/O error".
    """
    try:
        st = os.statvfs(path if path.is_dir() else path.parent)
    except (OSError, AttributeError):  # no statvfs on Windows
        return False
    return st.f_bavail == 0


# --------------------------------------------------------------------------------------------
# backup


def backup_to_temporary(source: sqlite3.Connection, dest: Path,
                        progress: Callable[[int, int], None] | None = None) -> Path:
    """Copy the database behind ``source`` to a temporary file beside ``dest``; returns it.

    The backup API copies a consistent snapshot even while other connections write
    (RELIABILITY.md 22); copying the file itself could catch it half-written or miss the WAL.
    The copy is checked (``quick_check``) and left for the caller to rename; a failed copy
    leaves nothing.
    """
    dest = Path(dest)
    tmp = dest.with_name(f"{dest.name}.{uuid.uuid4().hex[:8]}.partial")  # unique per call
    with translated(dest):
        target = sqlite3.connect(str(tmp))
        try:
            def _progress(_status: int, remaining: int, total: int) -> None:
                if progress is not None:
                    progress(total - remaining, total)

            source.backup(target, pages=BACKUP_STEP_PAGES, progress=_progress)
            target.execute("PRAGMA journal_mode = DELETE")  # a backup is one self-contained file
            check = target.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":  # pragma: no cover - would mean a damaged source
                raise RegisterError(f"the backup failed its integrity check: {check}")
        except BaseException:
            target.close()
            tmp.unlink(missing_ok=True)
            raise
        target.close()
    return tmp


def backup_connection(source: sqlite3.Connection, dest: Path,
                      progress: Callable[[int, int], None] | None = None) -> Path:
    """:func:`backup_to_temporary`, then renamed to ``dest``: never a half-written ``dest``."""
    tmp = backup_to_temporary(source, dest, progress)
    try:
        with translated(dest):
            os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
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
