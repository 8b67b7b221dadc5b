"""Shared fixtures: every test runs offscreen with its own per-user data directory."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from app.offline import attempts, forbid_network

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Per-user data (register, logs, settings) goes to a temporary folder, never the real one."""
    home = tmp_path_factory.mktemp("hcc-home")
    monkeypatch.setenv("HCC_RESPONSE_HOME", str(home))
    # The automatic register backup is a background job after a window's start-up; it is off
    # here so that no test races it (a window opened, then a case added at once). The tests of
    # the feature turn it on: test_ui_autobackup, test_register_autobackup.
    from app.backup_policy import BackupPolicy
    from app.settings import Settings, save_settings

    save_settings(Settings(register_backup=BackupPolicy(enabled=False)), home / "settings.json")
    return home


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` with the real public DICOM files; skips where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def pytest_configure(config: pytest.Config) -> None:
    """No test may reach the network (RELIABILITY.md 25): the guard is on for the whole run."""
    forbid_network()


@pytest.fixture(autouse=True)
def _no_network_attempts() -> object:
    """Fail a test that tried to reach the network even if the code swallowed the error."""
    before = len(attempts())
    yield
    new = attempts()[before:]
    assert not new, f"network access attempted during the test: {new}"


@pytest.fixture
def torch_one_thread() -> object:
    """One torch thread for tests whose tensors are tiny.

    With tiny inputs every operation is tiny and a second OpenMP thread only costs: on a busy
    2-core machine an 8x8 BatchNorm took 9 ms with two threads against 0.02 ms with one (each
    parallel region waits for a core). Use with ``pytest.mark.usefixtures("torch_one_thread")``.
    """
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


#: How long a job thread may take to end after its test (it may be in its last step).
THREAD_GRACE_S = 5.0


@pytest.fixture(autouse=True)
def _no_leaked_qthreads(request: pytest.FixtureRequest) -> object:
    """Fail a GUI test that leaves a job's QThread running after its widgets are gone.

    Autouse, so it is set up before ``qtbot`` and torn down after it: the test's widgets are
    closed by then. A thread still running would be destroyed while running — Qt aborts the
    process for that, usually in a later, innocent test.
    """
    yield
    if "qtbot" not in request.fixturenames:
        return
    from PySide6 import QtWidgets

    from app.ui.workers import running_threads

    deadline = time.monotonic() + THREAD_GRACE_S
    while running_threads() and time.monotonic() < deadline:
        QtWidgets.QApplication.processEvents()
        time.sleep(0.02)
    left = running_threads()
    assert not left, f"job thread(s) still running after the test: {left}"


@pytest.fixture
def main_window(qtbot, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A shown MainWindow whose error dialogs are recorded in ``main_window.errors``; closed
    after the test once its jobs (the warm-up import, thumbnails) have ended."""
    from app.settings import update_settings
    from app.ui import dialogs
    from app.ui.main_window import MainWindow

    errors: list[str] = []
    monkeypatch.setattr(dialogs, "show_error", lambda p, m, d="": errors.append(m))
    update_settings(demo_offered=True)
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    w.errors = errors  # type: ignore[attr-defined]
    yield w
    qtbot.waitUntil(lambda: not w.jobs.busy, timeout=120_000)
    w.close()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A small random model file and its SHA-256, for the GUI tests (read-only: tests that
    change a model file make their own)."""
    import ui_fixtures as fx

    path = tmp_path_factory.mktemp("ui-model") / "tiny.safetensors"
    return path, fx.create_tiny_model(path)


@pytest.fixture
def frozen_heap():  # type: ignore[no-untyped-def]
    """For tests that measure event-loop stalls: the app freezes its start-up heap once per process
    (``app.ui.jobs.freeze_startup_heap``); in the test process the objects left by hundreds of
    earlier tests stand in for it. Unfrozen, a full collection of them holds the interpreter lock
    ~0.5 s at a random moment (measured on the CI box: one such late tick failed the heartbeat
    bound) - a property of the test suite, not of the app."""
    import gc

    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
