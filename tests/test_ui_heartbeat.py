"""The event loop keeps running while import, prediction and Grad-CAM work in the background.

A 10 ms timer records every late tick while the window imports a generated study, predicts and
computes Grad-CAM (RELIABILITY.md 29). The bound asserted here is generous (a shared, loaded CI
box); the figure to report is printed here and measured properly by ``bench/ui_heartbeat.py``
(target ≤ 100 ms).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("PySide6")

import ui_fixtures as fx  # noqa: E402

from app.ui import dialogs  # noqa: E402
from app.ui.workers import StallMonitor  # noqa: E402

#: Generous bound for a busy 2-core box shared with other jobs; the target is 100 ms.
LOADED_BOX_BOUND_MS = 500.0


def test_monitor_detects_a_blocked_loop(qtbot, frozen_heap) -> None:
    import time

    mon = StallMonitor(10)
    mon.start()
    qtbot.wait(50)
    time.sleep(0.2)  # block the GUI thread on purpose
    qtbot.wait(30)
    mon.stop()
    assert 150 <= mon.worst_ms <= 1000
    assert mon.count_over(100) == 1


def test_warm_up_freezes_the_start_up_heap_once(monkeypatch) -> None:
    import gc

    from app.progress import ProgressState
    from app.ui import jobs

    monkeypatch.setattr(jobs, "_startup_heap_frozen", False)
    before = gc.get_freeze_count()
    try:
        jobs.warmup_job(("json",), configure_threads=False)(ProgressState())
        assert gc.get_freeze_count() > before
        assert gc.isenabled()  # paused during the imports only
        assert jobs.freeze_startup_heap() is False  # once per process
    finally:
        gc.unfreeze()


def test_event_loop_never_stalls_during_import_and_prediction(
    qtbot, tmp_path: Path, monkeypatch, capsys, frozen_heap
) -> None:
    import torch

    torch.set_num_threads(1)  # tiny model: per-op overhead dominates, one thread is fastest
    errors: list[str] = []
    monkeypatch.setattr(dialogs, "show_error", lambda parent, msg, details="": errors.append(msg))
    monkeypatch.setattr(dialogs, "confirm_phases", lambda parent, r, a, on_answer: on_answer(True))
    folder, _ = fx.generate_study(tmp_path / "study", delayed=False)
    model = tmp_path / "tiny.safetensors"
    sha = fx.create_tiny_model(model)
    w = fx.open_main_window(qtbot, model, sha)
    steps = w.steps
    # A user looks at the window before the first click: the warm-up's imports are done.
    qtbot.waitUntil(lambda: "warm" in steps, timeout=120_000)
    qtbot.wait(200)  # let the window settle: first paint is not background work

    mon = StallMonitor(10)
    mon.start()
    w.import_folder(folder)
    qtbot.waitUntil(lambda: "imported" in steps or bool(errors), timeout=120_000)
    assert not errors, errors
    if w.case.needs_confirmation():
        w.confirm_assignment()
    w.predict()
    # While the heatmaps are computed the user scrolls through the slices (a step every 40 ms),
    # so rendering and the arriving Grad-CAM maps are part of what is measured.
    from PySide6 import QtCore

    scroll = QtCore.QTimer()
    scroll.setInterval(40)
    scroll.timeout.connect(lambda: w.viewer.set_pair_index((w.viewer.pair_index() + 1) % max(1, w.viewer.count())))
    qtbot.waitUntil(lambda: "predicted" in steps or bool(errors), timeout=120_000)
    scroll.start()
    qtbot.waitUntil(lambda: "cam-study" in steps or bool(errors), timeout=120_000)
    scroll.stop()
    mon.stop()
    w.close()
    assert not errors, errors
    with capsys.disabled():
        print(
            f"\n[heartbeat] import+predict+Grad-CAM while scrolling: {len(mon.gaps_ms)} ticks, worst stall "
            f"{mon.worst_ms:.0f} ms, p99 {mon.percentile_ms(99):.0f} ms, "
            f">100 ms: {mon.count_over(100)}"
        )
    for _t, delay, share in mon.late:
        with capsys.disabled():
            print(f"[heartbeat]   late tick {delay:.0f} ms, process CPU share during it {share:.0%}")
    assert len(mon.gaps_ms) > 20
    # A stall during which this process got (almost) no CPU at all was the shared machine not
    # running us, not the app blocking its loop; those do not count against the app.
    own = [delay for _t, delay, share in mon.late if share > 0.2]
    assert max(own, default=0.0) < LOADED_BOX_BOUND_MS
