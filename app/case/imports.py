"""One import of the engine at a time across the app's threads.

Two threads importing interdependent modules at once (the desktop app's background warm-up
importing pydicom while a job imports the synthetic generator, which imports pydicom too) can be
handed a partially initialised module by CPython's import deadlock avoidance ("cannot import
name ... partially initialized module"). Every lazy import of the case flow and of the app's
jobs goes through :func:`importing`; in a single-threaded command it costs nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from app.progress import NULL_PROGRESS, Progress

_IMPORT_LOCK = threading.RLock()


@contextlib.contextmanager
def importing(progress: Progress = NULL_PROGRESS) -> Iterator[None]:
    """Hold the import lock (waiting cancellably) while importing engine modules."""
    while not _IMPORT_LOCK.acquire(timeout=0.05):
        progress.check()
    try:
        yield
    finally:
        _IMPORT_LOCK.release()
