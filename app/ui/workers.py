"""Background jobs: one generic :class:`Worker` that runs a Qt-free ``fn(progress)`` in a QThread.

All long work of the app (scan, assemble, load model, predict, Grad-CAM, register writes,
demo generation) is a plain function of the core taking a progress object (STYLE.md 2). This
module is the only place that turns such a function into something the window can run without
freezing (RELIABILITY.md 29):

* :class:`Worker` lives in its own ``QThread``, owns ``run()``, catches *everything* and turns it
  into data (STYLE.md 3): ``finished(result)``, ``failed(message, details)`` or ``cancelled()``;
  it never touches a widget.
* :class:`JobProgress` is the :class:`app.progress.ProgressState` handed to ``fn``; its callback
  emits ``progress(fraction, text)`` — throttled twice: ``ProgressState`` drops changes under 1 %,
  and here at most one update per :data:`MIN_INTERVAL_S` goes through (a job that renames its
  text for every file would otherwise flood the event loop). ``publish(obj)`` sends an
  intermediate result (e.g. the Grad-CAM of the viewed slice before the rest of the study).
* :class:`Job` is the main-thread handle: it re-emits the worker's signals in the GUI thread,
  and drops them once the job is superseded (``stale``), so a late result never lands.
* :class:`JobManager` starts jobs, cancels the previous job of the same ``key`` (starting a new
  import cancels the running import), and on window close cancels everything and waits a
  bounded time for the threads (no "QThread: Destroyed while thread is still running"; never
  ``QThread.terminate()``, STYLE.md 4).

Exceptions: :class:`app.errors.HCCError` → its own message (and details); anything else →
"Unexpected error: ..." with the traceback as details, logged with ``logging``.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6 import QtCore

from app.errors import Cancelled, HCCError, is_crash
from app.progress import ProgressState

log = logging.getLogger(__name__)

#: At most one progress signal per this many seconds (the final 100 % always goes through).
MIN_INTERVAL_S = 0.05

JobFn = Callable[["JobProgress"], Any]

#: Every job thread started and not yet seen to end (see :func:`running_threads`).
_STARTED: dict[int, Job] = {}


def running_threads() -> list[str]:
    """Names of the job threads still running, in this process.

    For the test suite's leak check: a window or widget that goes away while one of its jobs
    still runs would destroy a running ``QThread`` (Qt aborts the process then).
    """
    names = []
    for job in list(_STARTED.values()):
        try:
            running = job.qthread.isRunning()
        except RuntimeError:  # the C++ object is gone: it cannot be running
            running = False
        if running:
            names.append(job.name)
    return names


class JobProgress(ProgressState):
    """The progress/cancel object a job function receives; thread-safe.

    Besides :class:`ProgressState`'s ``update``/``check``/``cancel``/``sub`` it offers
    :meth:`publish` for intermediate results.
    """

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._last_emit = 0.0
        super().__init__(self._emit)

    def _emit(self, fraction: float, text: str) -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_emit < MIN_INTERVAL_S:
            return
        self._last_emit = now
        self._worker.progress.emit(fraction, text)

    def publish(self, obj: object) -> None:
        """Send an intermediate result to the GUI thread (``Job.partial``)."""
        if not self.cancelled:
            self._worker.partial.emit(obj)


class Worker(QtCore.QObject):
    """Runs ``fn(progress)`` once, in the thread it was moved to.

    Signals are emitted from the worker thread; connect them to slots of objects living in the
    GUI thread (Qt queues them). ``done`` is always the last signal.
    """

    progress = QtCore.Signal(float, str)
    partial = QtCore.Signal(object)
    finished = QtCore.Signal(object)
    failed = QtCore.Signal(str, str)
    cancelled = QtCore.Signal()
    done = QtCore.Signal()

    def __init__(self, fn: JobFn, name: str) -> None:
        super().__init__()
        self._fn = fn
        self.name = name
        self.state = JobProgress(self)

    @QtCore.Slot()
    def run(self) -> None:
        # Name the thread for the log file ("job-Predict" instead of "Dummy-3").
        threading.current_thread().name = f"job-{self.name}"
        try:
            self.state.check()  # cancelled before it even started
            result = self._fn(self.state)
        except Cancelled:
            log.info("job %s cancelled", self.name)
            self.cancelled.emit()
        except HCCError as exc:
            log.info("job %s failed: %s", self.name, exc.message)
            self.failed.emit(exc.message, exc.details or "")
        except BaseException as exc:
            if not is_crash(exc):
                raise
            # Anything unexpected is a bug: log it with its traceback and show it, never crash.
            log.exception("job %s raised an unexpected error", self.name)
            self.failed.emit(
                f"Unexpected error: {type(exc).__name__}: {exc}", traceback.format_exc()
            )
        else:
            self.finished.emit(result)
        finally:
            self.done.emit()
            # quit() from here, not via a queued signal: during shutdown the GUI thread is
            # blocked in QThread.wait() and could not deliver a queued quit.
            thread = self.thread()
            if thread is not None:
                thread.quit()


class Job(QtCore.QObject):
    """GUI-thread handle of one background job.

    Its signals fire in the GUI thread. After :meth:`cancel` (or being superseded) only
    ``cancelled`` and ``done`` still come; ``finished``/``partial`` of a stale job are dropped.
    """

    progress = QtCore.Signal(float, str)
    partial = QtCore.Signal(object)
    finished = QtCore.Signal(object)
    failed = QtCore.Signal(str, str)
    cancelled = QtCore.Signal()
    done = QtCore.Signal()
    #: The thread has ended (after ``done``); the manager forgets the job then.
    ended = QtCore.Signal(object)

    def __init__(self, fn: JobFn, name: str, key: str | None, parent: QtCore.QObject) -> None:
        super().__init__(parent)
        self.name = name
        self.key = key
        self.stale = False
        self.started_at = time.monotonic()
        self.qthread = QtCore.QThread()
        self.qthread.setObjectName(f"job-{name}")
        self.worker = Worker(fn, name)
        self.worker.moveToThread(self.qthread)
        self.qthread.started.connect(self.worker.run)
        self.worker.progress.connect(self._on_progress)
        self.worker.partial.connect(self._on_partial)
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self.worker.done.connect(self._on_done)
        # QThread.finished is emitted from the ending thread; a slot of this GUI-thread object
        # receives it queued, in the GUI thread, where it is safe to forget and delete things.
        self.qthread.finished.connect(self._on_thread_finished)
        self._is_done = False

    @property
    def state(self) -> JobProgress:
        return self.worker.state

    @property
    def is_done(self) -> bool:
        return self._is_done

    def mark_done(self) -> None:
        """Record that the thread ended (used by shutdown, which waited for it)."""
        self._is_done = True

    def start(self) -> None:
        """Start the thread (from the event loop); a job cancelled before that never runs."""
        if self.worker.state.cancelled:
            self.mark_done()
            self.cancelled.emit()
            self.done.emit()
            self.ended.emit(self)
            return
        _STARTED[id(self)] = self
        self.qthread.start()

    def cancel(self, *, stale: bool = False) -> None:
        """Ask the job to stop (cooperatively, at its next ``progress.check()``)."""
        self.worker.state.cancel()
        if stale:
            self.stale = True

    def wait(self, timeout_ms: int) -> bool:
        """Block until the thread ended (True) or ``timeout_ms`` passed (False)."""
        return bool(self.qthread.wait(QtCore.QDeadlineTimer(timeout_ms)))

    @QtCore.Slot(float, str)
    def _on_progress(self, fraction: float, text: str) -> None:
        if not self.stale and not self.worker.state.cancelled:
            self.progress.emit(fraction, text)

    @QtCore.Slot(object)
    def _on_partial(self, obj: object) -> None:
        if not self.stale and not self.worker.state.cancelled:
            self.partial.emit(obj)

    @QtCore.Slot(object)
    def _on_finished(self, result: object) -> None:
        if self.stale:
            return
        self.finished.emit(result)

    @QtCore.Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        if self.stale:
            return
        self.failed.emit(message, details)

    @QtCore.Slot()
    def _on_cancelled(self) -> None:
        self.cancelled.emit()

    @QtCore.Slot()
    def _on_done(self) -> None:
        self._is_done = True
        self.done.emit()

    @QtCore.Slot()
    def _on_thread_finished(self) -> None:
        self._is_done = True
        _STARTED.pop(id(self), None)
        self.ended.emit(self)


class JobManager(QtCore.QObject):
    """Starts, tracks, cancels and finally shuts down the app's background jobs.

    ``busyChanged(bool)`` tells the window when the first job starts / the last one ends.
    """

    busyChanged = QtCore.Signal(bool)
    jobStarted = QtCore.Signal(object)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs: list[Job] = []
        self._closing = False

    def start(self, name: str, fn: JobFn, *, key: str | None = None) -> Job:
        """Run ``fn(progress)`` in a new thread and return its handle (connect, then it runs).

        The thread starts from the event loop (a zero-timer), so signals connected right after
        this call are never missed. A running job with the same ``key`` is cancelled and
        marked stale first.

        Raises
        ------
        RuntimeError
            After :meth:`shutdown` (the window is closing).
        """
        if self._closing:
            raise RuntimeError("the application is closing; no new jobs")
        if key is not None:
            for old in self._jobs:
                if old.key == key and not old.is_done:
                    log.info("job %s supersedes running %s", name, old.name)
                    old.cancel(stale=True)
        job = Job(fn, name, key, self)
        was_busy = self.busy
        self._jobs.append(job)
        job.ended.connect(self._on_thread_finished)
        QtCore.QTimer.singleShot(0, job.start)
        if not was_busy:
            self.busyChanged.emit(True)
        self.jobStarted.emit(job)
        return job

    @property
    def busy(self) -> bool:
        return any(not j.is_done for j in self._jobs)

    def jobs(self) -> list[Job]:
        """Jobs whose thread has not ended yet."""
        return list(self._jobs)

    def running(self, key: str) -> Job | None:
        """The unfinished, non-stale job with ``key``, if any."""
        for job in self._jobs:
            if job.key == key and not job.is_done and not job.stale:
                return job
        return None

    def cancel_all(self) -> None:
        for job in self._jobs:
            job.cancel()

    @QtCore.Slot(object)
    def _on_thread_finished(self, job: Job) -> None:
        if job in self._jobs:
            self._jobs.remove(job)
        job.worker.deleteLater()
        job.qthread.deleteLater()
        job.deleteLater()
        if not self.busy and not self._closing:
            self.busyChanged.emit(False)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel every job and wait for the threads (bounded); True when all ended.

        Called from the window's ``closeEvent``. Jobs check for cancellation at least every
        batch/file, so this normally returns within about a second.
        """
        self._closing = True
        self.cancel_all()
        deadline = time.monotonic() + timeout_ms / 1000
        ok = True
        for job in list(self._jobs):
            job.stale = True
            if not job.qthread.isRunning() and not job.is_done and not job.qthread.isFinished():
                # Never started (its zero-timer did not fire yet) and cancelled: it never will.
                job.mark_done()
                continue
            left = max(0, int((deadline - time.monotonic()) * 1000))
            if job.wait(left):
                job.mark_done()  # its queued "done" may never be delivered now
            else:
                log.error("job %s did not stop within %d ms", job.name, timeout_ms)
                ok = False
        return ok

    def wait_all(self, timeout_ms: int | None = None) -> bool:
        """After :meth:`shutdown`: wait for threads still finishing their current step.

        Used when the application quits: a job in the middle of one long step (a batch of
        slices on a slow CPU) stops at its next check, and the process must not exit before
        (that would destroy a running QThread). True when every thread has ended.
        """
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        for job in list(self._jobs):
            if deadline is None:
                job.qthread.wait()
            elif not job.wait(max(0, int((deadline - time.monotonic()) * 1000))):
                return False
            job.mark_done()
        return True


class StallMonitor(QtCore.QObject):
    """Measures how long the GUI event loop goes without running a timer (RELIABILITY.md 29).

    A ``QTimer`` fires every ``interval_ms``; each late tick is a stall of the event loop (work
    done on the GUI thread, or the GUI thread waiting for the GIL). ``worst_ms`` is the largest
    delay beyond the interval. Used by the heartbeat test and ``bench/ui_heartbeat.py``; cheap
    enough to run in a debug session.
    """

    def __init__(self, interval_ms: int = 10, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_ms = interval_ms
        self._timer = QtCore.QTimer(self)
        self._timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last: float | None = None
        self._last_cpu = 0.0
        self.gaps_ms: list[float] = []
        #: (perf_counter at the late tick, delay in ms, CPU share of this process during the
        #: gap) for every tick more than 50 ms late. A share near 0 means the machine did not
        #: run the process at all (load from elsewhere), not that the app blocked its loop.
        self.late: list[tuple[float, float, float]] = []

    def start(self) -> None:
        self.gaps_ms.clear()
        self.late.clear()
        self._last = time.perf_counter()
        self._last_cpu = time.process_time()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self._tick()

    def _tick(self) -> None:
        now = time.perf_counter()
        cpu = time.process_time()
        if self._last is not None:
            gap = (now - self._last) * 1000.0
            self.gaps_ms.append(gap)
            if gap - self.interval_ms > 50.0:
                share = (cpu - self._last_cpu) * 1000.0 / gap if gap > 0 else 0.0
                self.late.append((now, gap - self.interval_ms, share))
        self._last = now
        self._last_cpu = cpu

    @property
    def worst_ms(self) -> float:
        """Largest delay beyond the timer interval (0 when every tick was on time)."""
        return max((g - self.interval_ms for g in self.gaps_ms), default=0.0)

    def percentile_ms(self, q: float) -> float:
        """Delay beyond the interval at percentile ``q`` (0..100) of the ticks."""
        if not self.gaps_ms:
            return 0.0
        ordered = sorted(g - self.interval_ms for g in self.gaps_ms)
        k = min(len(ordered) - 1, max(0, int(round(q / 100.0 * (len(ordered) - 1)))))
        return ordered[k]

    def count_over(self, limit_ms: float) -> int:
        return sum(1 for g in self.gaps_ms if g - self.interval_ms > limit_ms)
