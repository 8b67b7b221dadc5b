"""Logging bootstrap: one rotating log file in the per-user log directory, optional stderr.

Called once by the CLI / GUI entry (STYLE.md 9). Library code only uses ``logging.getLogger``.

Log hygiene (issue 14): a fuzzing run filled the three rotated 5 MB files in three minutes with
single pydicom warning lines of up to 53 KB. Every handler therefore sits behind a
:class:`TidyHandler`, which cuts one message to :data:`MAX_MESSAGE_CHARS` (saying how much was
cut), folds consecutive repeats of one message into a single "repeated N more times" line, and
stops writing a message that keeps coming back after :data:`MAX_REPEATS` times (counting the rest,
and saying so once). The log stays readable and its rotation keeps hours, not minutes.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import threading
from typing import Any

from app.errors import cut_text

_configured = False

#: Longest message written (characters); the rest is cut with a note of how much.
MAX_MESSAGE_CHARS = 2000
#: How often one message is written in a process before further repeats are only counted.
MAX_REPEATS = 50
#: Distinct messages whose counts are kept (then the counts start afresh: bounded memory).
MAX_TRACKED = 2000


def cap_message(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with a note of how many were cut."""
    return cut_text(text, limit)


class TidyHandler(logging.Handler):
    """A handler in front of another: caps message length and collapses repeats.

    Records with an exception are never collapsed (each traceback may differ). The note on
    suppressed repeats is written when a different message arrives, and at flush/close.
    """

    def __init__(self, target: logging.Handler, max_chars: int = MAX_MESSAGE_CHARS,
                 max_repeats: int = MAX_REPEATS) -> None:
        super().__init__(target.level)
        self.target = target
        self.max_chars = max_chars
        self.max_repeats = max_repeats
        self._tidy_lock = threading.Lock()
        self._last: tuple[str, int, str] | None = None
        self._last_record: logging.LogRecord | None = None
        self._run = 0  # consecutive repeats of _last not written
        self._seen: dict[tuple[str, int, str], int] = {}

    def setLevel(self, level: int | str) -> None:  # noqa: N802 - logging's API
        super().setLevel(level)
        self.target.setLevel(level)

    def setFormatter(self, fmt: logging.Formatter | None) -> None:  # noqa: N802
        self.target.setFormatter(fmt)

    def _note(self, like: logging.LogRecord, text: str) -> logging.LogRecord:
        return logging.LogRecord(like.name, like.levelno, like.pathname, like.lineno, text,
                                  None, None, like.funcName)

    def _pending_note(self) -> logging.LogRecord | None:
        """The "repeated N more times" record owed for the last message (lock held)."""
        if not self._run or self._last_record is None:
            return None
        note = self._note(self._last_record, f"(last message repeated {self._run} more "
                          f"time{'s' if self._run > 1 else ''})")
        self._run = 0
        return note

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = cap_message(record.getMessage(), self.max_chars)
        except Exception:
            self.handleError(record)
            return
        key = (record.name, record.levelno, text)
        out: list[logging.LogRecord] = []
        with self._tidy_lock:
            if record.exc_info is None and key == self._last:
                self._run += 1
                return
            note = self._pending_note()
            if note is not None:
                out.append(note)
            self._last = key if record.exc_info is None else None
            self._last_record = record
            if record.exc_info is None:
                if len(self._seen) >= MAX_TRACKED and key not in self._seen:
                    self._seen.clear()
                n = self._seen.get(key, 0) + 1
                self._seen[key] = n
                if n > self.max_repeats + 1:
                    return
                if n == self.max_repeats + 1:
                    text = (f"{text} (written {self.max_repeats} times already; further "
                            "repeats are not logged)")
        if text != record.getMessage():  # a copy: other handlers see the record unchanged
            record = logging.makeLogRecord(record.__dict__)
            record.msg, record.args = text, None
        out.append(record)
        for r in out:
            self.target.handle(r)

    def _target_open(self) -> bool:
        """False once the target's stream is closed (at interpreter exit, stderr may be)."""
        stream = getattr(self.target, "stream", None)
        return not bool(getattr(stream, "closed", False))

    def flush(self) -> None:
        if not self._target_open():
            return
        with self._tidy_lock:
            note = self._pending_note()
        if note is not None:
            self.target.handle(note)
        self.target.flush()

    def close(self) -> None:
        self.flush()
        self.target.close()
        super().close()


class CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A console handler that writes to whatever ``sys.stderr`` is when a record comes, not to
    the stream it was at setup: that one may have been replaced and closed since (a test's
    capture, a GUI redirect, interpreter exit), and writing to it would put a logging error
    with a traceback in front of the user instead of the message."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass

    def filter(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        """Only the app's own messages: a library's (pydicom names every decoder that failed
        on a corrupt frame) repeat what the app then says in one line, and go to the log file."""
        own = record.name == "root" or record.name == "app" or record.name.startswith("app.")
        return (own or record.levelno >= logging.CRITICAL) and bool(super().filter(record))

    def format(self, record: logging.LogRecord) -> str:
        """The message without its traceback: the console is the user's, the traceback goes
        to the log file (a library such as pydicom logs its decoder errors with one)."""
        if record.exc_info or record.exc_text or record.stack_info:
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None,
                                            "stack_info": None})
            return super().format(record) + " (details in the log file)"
        return super().format(record)


def setup_logging(verbose: bool = False, console: bool = True) -> None:
    """Configure the root logger (idempotent)."""
    global _configured
    if _configured:
        return
    _configured = True
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
    try:
        from app.paths import log_dir

        fh = logging.handlers.RotatingFileHandler(
            log_dir() / "hcc-response.log", maxBytes=5_000_000, backupCount=3, encoding="utf-8"
        )
        fh.setFormatter(fmt)
        fh.setLevel(logging.DEBUG)
        root.addHandler(TidyHandler(fh))
    except OSError:
        # A read-only home must not stop the program; we still log to stderr below.
        console = True
    if console:
        sh = CurrentStderrHandler()
        sh.setLevel(logging.DEBUG if verbose else logging.WARNING)
        sh.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        root.addHandler(TidyHandler(sh))
    for noisy in ("PIL", "matplotlib", "pydicom"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
