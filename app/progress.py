"""Progress and cancellation for long work, independent of Qt.

Every long function (scan, load, predict, Grad-CAM, train) takes a ``Progress`` and calls
``progress.update(fraction, text)``; between units of work it calls ``progress.check()``, which
raises :class:`app.errors.Cancelled` once cancellation was requested. The UI wraps a
:class:`ProgressState` into Qt signals (from a worker thread), the CLI into a terminal bar, tests
use :data:`NULL_PROGRESS` or a recording state. Modelled on Orange3's ``TaskState``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from app.errors import Cancelled

ProgressCallback = Callable[[float, str], None]


@runtime_checkable
class Progress(Protocol):
    """What long work needs from its caller."""

    def update(self, fraction: float, text: str = "") -> None:
        """Report that ``fraction`` (0..1) of the work is done."""

    @property
    def cancelled(self) -> bool:
        """True once the caller asked the work to stop."""

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancellation was requested."""


class ProgressState:
    """A thread-safe progress/cancel object.

    Parameters
    ----------
    callback:
        Called with ``(fraction, text)``; throttled so that it fires only when the fraction moved
        by at least ``min_step`` or the text changed (a flood of updates would stall the UI's
        event loop).
    min_step:
        Smallest change of fraction that is reported (default 1 %).
    """

    def __init__(self, callback: ProgressCallback | None = None, min_step: float = 0.01) -> None:
        self._callback = callback
        self._min_step = min_step
        self._cancel = threading.Event()
        self._last_fraction = -1.0
        self._last_text: str | None = None
        self._lock = threading.Lock()
        self.started = time.monotonic()

    def update(self, fraction: float, text: str = "") -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        with self._lock:
            moved = abs(fraction - self._last_fraction) >= self._min_step
            if not (moved or text != self._last_text or fraction >= 1.0):
                return
            self._last_fraction = fraction
            self._last_text = text
        if self._callback is not None:
            self._callback(fraction, text)

    def cancel(self) -> None:
        """Ask the work to stop at its next check (any thread may call this)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()

    def sub(self, start: float, end: float) -> SubProgress:
        """A view of this progress that maps 0..1 onto ``start..end``."""
        return SubProgress(self, start, end)


class SubProgress:
    """Maps a child task's 0..1 onto a slice of its parent's range; shares its cancel flag."""

    def __init__(self, parent: Progress, start: float, end: float) -> None:
        self._parent = parent
        self._start = start
        self._end = end

    def update(self, fraction: float, text: str = "") -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        self._parent.update(self._start + (self._end - self._start) * fraction, text)

    @property
    def cancelled(self) -> bool:
        return self._parent.cancelled

    def check(self) -> None:
        self._parent.check()

    def sub(self, start: float, end: float) -> SubProgress:
        span = self._end - self._start
        return SubProgress(self._parent, self._start + span * start, self._start + span * end)


class _NullProgress:
    """Progress that reports nowhere and is never cancelled."""

    def update(self, fraction: float, text: str = "") -> None:
        return None

    @property
    def cancelled(self) -> bool:
        return False

    def check(self) -> None:
        return None

    def sub(self, start: float, end: float) -> _NullProgress:
        return self


NULL_PROGRESS = _NullProgress()


def sub_progress(progress: Progress | None, start: float, end: float) -> Progress:
    """Return a sub-range view of ``progress`` (or the null progress when None)."""
    if progress is None:
        return NULL_PROGRESS
    sub = getattr(progress, "sub", None)
    if sub is not None:
        return sub(start, end)  # type: ignore[no-any-return]
    return SubProgress(progress, start, end)
