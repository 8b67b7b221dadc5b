"""Process-parallel work over a cohort: one independent job per patient or study.

Generating a synthetic cohort and preparing a training cohort are the same shape of work: many
independent, CPU-bound jobs (rendering, DICOM decoding, liver tracking in numpy and OpenCV) whose
Python parts hold the GIL, so threads would not help. A workstation's (or a GPU server's) cores
are used by a pool of worker processes instead.

Why the ``spawn`` start method everywhere, also on Linux: it is the only one on Windows
workstations, a frozen (PyInstaller) bundle supports it through ``freeze_support`` in its entry
script, and a spawned child never inherits the parent's torch/OpenMP thread pools, which can
deadlock a forked child once the parent has run torch (the training command has).

Results are delivered in input order whatever the order of completion, so the output of a
parallel run equals that of a serial one; ``workers=1`` runs in the calling process with no pool
at all (the path the desktop app and the tests use by default).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TypeVar

from app.errors import InputError
from app.progress import NULL_PROGRESS, Progress, sub_progress

T = TypeVar("T")
R = TypeVar("R")

#: Upper bound of the automatic worker count: beyond it the disk, not the cores, limits.
MAX_AUTO_WORKERS = 8


def available_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # Windows, macOS
        return max(os.cpu_count() or 1, 1)


def resolve_workers(workers: int | None) -> int:
    """The number of worker processes to use: ``None`` or 0 means one per core (at most 8).

    Raises
    ------
    InputError
        A negative count.
    """
    if workers is None or workers == 0:
        return min(available_cores(), MAX_AUTO_WORKERS)
    if workers < 0:
        raise InputError(f"the number of workers must be 0 (automatic) or more, not {workers}")
    return int(workers)


def _init_worker() -> None:
    """Install the offline guard, and keep each worker single-threaded.

    A spawned worker is a fresh interpreter: it inherits none of the parent's patched socket
    functions, so the guard of RELIABILITY.md 25 must be installed again here, before any job.
    One thread per worker: the pool already uses the cores.
    """
    from app.offline import forbid_network

    forbid_network()
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        pass


def run_jobs(
    fn: Callable[[T, Progress], R],
    items: Sequence[T],
    workers: int,
    *,
    progress: Progress = NULL_PROGRESS,
    describe: Callable[[T], str] | None = None,
    on_result: Callable[[int, R], None] | None = None,
) -> list[R]:
    """Apply ``fn`` to every item, in ``workers`` processes, and return results in input order.

    Parameters
    ----------
    fn:
        ``fn(item, progress)``, a module-level function (it travels to the workers by name).
        In the serial case it gets its share of ``progress`` (finer progress, cancellation
        inside a job); in a worker it gets :data:`NULL_PROGRESS`.
    workers:
        Number of processes; 1 runs everything here, in order, without a pool.
    progress:
        Checked for cancellation before each job is handed out and updated as jobs finish.
        On cancellation, jobs not yet started are dropped, running ones are waited for (so
        that the caller can clean up everything they wrote) and :class:`Cancelled` propagates.
    describe:
        Text of the progress line for an item ("patient SYN1-0003").
    on_result:
        Called in this process as each job finishes (completion order) with its index.

    An exception raised by ``fn`` in a worker is raised here, after the running jobs ended.
    """
    n = len(items)
    results: dict[int, R] = {}

    def finished(i: int, result: R) -> None:
        results[i] = result
        if on_result is not None:
            on_result(i, result)
        text = describe(items[i]) if describe is not None else ""
        progress.update(len(results) / max(n, 1), text)

    if workers <= 1 or n <= 1:
        for i, item in enumerate(items):
            progress.check()
            finished(i, fn(item, sub_progress(progress, i / n, (i + 1) / n)))
        return [results[i] for i in range(n)]

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, n), mp_context=ctx,
                             initializer=_init_worker) as pool:
        pending: dict[Future[R], int] = {}
        next_item = 0
        try:
            # Keep at most two jobs per worker queued: cancellation then waits for few.
            while next_item < n or pending:
                while next_item < n and len(pending) < 2 * workers:
                    progress.check()
                    pending[pool.submit(fn, items[next_item], NULL_PROGRESS)] = next_item
                    next_item += 1
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = pending.pop(fut)
                    finished(i, fut.result())
                progress.check()
        except BaseException:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return [results[i] for i in range(n)]
