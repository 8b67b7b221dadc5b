"""The generic background worker: results, progress, errors as data, cancel, supersede, shutdown."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("PySide6")

from PySide6 import QtCore  # noqa: E402

from app.errors import InputError  # noqa: E402
from app.ui.workers import JobManager, JobProgress  # noqa: E402


@pytest.fixture
def manager(qtbot):  # type: ignore[no-untyped-def]
    mgr = JobManager()
    yield mgr
    assert mgr.shutdown(5000), "a job thread was still running at the end of the test"


def test_result_arrives_in_gui_thread_with_progress(qtbot, manager: JobManager) -> None:
    seen_threads: list[object] = []
    progress: list[tuple[float, str]] = []

    def work(p: JobProgress) -> int:
        seen_threads.append(threading.current_thread())
        for i in range(5):
            p.update(i / 5, f"step {i}")
            time.sleep(0.06)  # longer than the throttle interval: every step is reported
        p.update(1.0, "done")
        return 42

    job = manager.start("sum", work)
    job.progress.connect(lambda f, t: progress.append((f, t)))
    gui_thread = QtCore.QThread.currentThread()
    got: list[object] = []
    job.finished.connect(lambda r: got.append((r, QtCore.QThread.currentThread() is gui_thread)))
    with qtbot.waitSignal(job.done, timeout=5000):
        pass
    assert got == [(42, True)]
    assert seen_threads and seen_threads[0] is not threading.main_thread()
    assert progress[-1] == (1.0, "done")
    assert [t for _, t in progress[:5]] == [f"step {i}" for i in range(5)]


def test_progress_is_throttled(qtbot, manager: JobManager) -> None:
    count: list[int] = []

    def flood(p: JobProgress) -> None:
        for i in range(20000):
            p.update(i / 20000, f"file {i}")  # text changes every time: only time throttling helps

    job = manager.start("flood", flood)
    job.progress.connect(lambda f, t: count.append(1))
    with qtbot.waitSignal(job.done, timeout=10000):
        pass
    assert 1 <= len(count) < 200


def test_input_error_becomes_its_message(qtbot, manager: JobManager) -> None:
    def bad(p: JobProgress) -> None:
        raise InputError("no DICOM found in /x", details="12 files skipped")

    job = manager.start("bad", bad)
    with qtbot.waitSignal(job.failed, timeout=5000) as blocker:
        pass
    assert blocker.args == ["no DICOM found in /x", "12 files skipped"]


def test_unexpected_error_has_traceback_and_is_logged(qtbot, manager: JobManager, caplog) -> None:
    def boom(p: JobProgress) -> None:
        {}["missing"]  # noqa: B018 - a genuine bug stand-in

    job = manager.start("boom", boom)
    with qtbot.waitSignal(job.failed, timeout=5000) as blocker:
        pass
    message, details = blocker.args
    assert message.startswith("Unexpected error: KeyError")
    assert "Traceback" in details and "boom" in details
    assert any("unexpected error" in r.getMessage() for r in caplog.records)


def test_cancel_stops_quickly_and_emits_cancelled(qtbot, manager: JobManager) -> None:
    started = threading.Event()

    def slow(p: JobProgress) -> str:
        started.set()
        for _ in range(1000):
            p.check()
            time.sleep(0.01)
        return "completed"

    job = manager.start("slow", slow)
    finished: list[object] = []
    job.finished.connect(finished.append)
    qtbot.waitUntil(started.is_set, timeout=5000)
    t0 = time.monotonic()
    with qtbot.waitSignal(job.cancelled, timeout=3000):
        job.cancel()
    assert time.monotonic() - t0 < 1.0
    assert finished == []


def test_new_job_with_same_key_supersedes_the_old(qtbot, manager: JobManager) -> None:
    gate = threading.Event()

    def first(p: JobProgress) -> str:
        gate.wait(5)
        return "stale"  # ignores cancellation on purpose: its result must still be dropped

    old = manager.start("import-1", first, key="import")
    results: list[object] = []
    old.finished.connect(results.append)
    qtbot.waitUntil(lambda: old.qthread.isRunning(), timeout=5000)
    new = manager.start("import-2", lambda p: "fresh", key="import")
    new.finished.connect(results.append)
    assert old.stale and old.state.cancelled
    assert manager.running("import") is new
    gate.set()
    qtbot.waitUntil(lambda: old.is_done and new.is_done, timeout=5000)
    qtbot.wait(50)
    assert results == ["fresh"]


def test_publish_delivers_intermediate_results(qtbot, manager: JobManager) -> None:
    def staged(p: JobProgress) -> str:
        p.publish(("slice", 3))
        return "study"

    job = manager.start("cam", staged)
    partial: list[object] = []
    job.partial.connect(partial.append)
    with qtbot.waitSignal(job.finished, timeout=5000):
        pass
    assert partial == [("slice", 3)]


def test_busy_changes_and_threads_end(qtbot, manager: JobManager) -> None:
    busy: list[bool] = []
    manager.busyChanged.connect(busy.append)
    job = manager.start("quick", lambda p: None)
    with qtbot.waitSignal(manager.busyChanged, timeout=5000, check_params_cb=lambda b: not b):
        pass
    assert busy == [True, False]
    assert job not in manager.jobs()


def test_shutdown_cancels_and_waits_without_thread_warnings(qtbot, qtlog) -> None:
    mgr = JobManager()
    started = threading.Event()

    def endless(p: JobProgress) -> None:
        started.set()
        while True:
            p.check()
            time.sleep(0.005)

    jobs = [mgr.start(f"endless-{i}", endless) for i in range(3)]
    qtbot.waitUntil(started.is_set, timeout=5000)
    t0 = time.monotonic()
    assert mgr.shutdown(5000)
    assert time.monotonic() - t0 < 1.5
    assert all(not j.qthread.isRunning() for j in jobs)
    with pytest.raises(RuntimeError):
        mgr.start("late", lambda p: None)
    del jobs, mgr
    qtbot.wait(50)
    assert not [r for r in qtlog.records if "QThread" in r.message]


def test_job_cancelled_before_it_started_never_runs(qtbot, manager: JobManager) -> None:
    ran = threading.Event()
    job = manager.start("never", lambda p: ran.set())
    job.cancel()  # before the event loop started its thread
    with qtbot.waitSignal(job.cancelled, timeout=2000):
        pass
    qtbot.wait(50)
    assert not ran.is_set() and job.is_done and job not in manager.jobs()


def test_wait_all_after_a_short_shutdown_waits_for_the_step_in_progress(qtbot) -> None:
    mgr = JobManager()
    started = threading.Event()

    def long_step(p: JobProgress) -> None:
        started.set()
        time.sleep(0.6)  # one uninterruptible step (a batch on a slow CPU)
        p.check()

    job = mgr.start("batch", long_step)
    qtbot.waitUntil(started.is_set, timeout=5000)
    assert not mgr.shutdown(100)  # the bounded wait of closeEvent is too short here
    assert job.qthread.isRunning()
    assert mgr.wait_all(5000)
    assert not job.qthread.isRunning()


def test_running_threads_lists_a_job_until_its_thread_ends(qtbot) -> None:
    """What the suite's leaked-thread check (conftest) relies on: a running job is listed."""
    from app.ui.workers import running_threads

    release = threading.Event()
    mgr = JobManager()
    job = mgr.start("blocked", lambda p: release.wait(10))
    qtbot.waitUntil(lambda: "blocked" in running_threads(), timeout=5000)
    release.set()
    qtbot.waitUntil(lambda: job.is_done, timeout=5000)
    qtbot.waitUntil(lambda: "blocked" not in running_threads(), timeout=5000)
    assert mgr.shutdown(1000)
