"""Settings, model import and the exception hook, driven through the main window."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PySide6")

import ui_fixtures as fx  # noqa: E402
from PySide6 import QtCore  # noqa: E402

from app.settings import load_settings, update_settings  # noqa: E402
from app.ui import dialogs  # noqa: E402
from app.ui.main_window import MainWindow  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("ui-model") / "site-model.safetensors"
    return path, fx.create_tiny_model(path)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    rec: dict[str, list[Any]] = {"errors": [], "questions": []}
    monkeypatch.setattr(dialogs, "show_error", lambda p, m, d="": rec["errors"].append((m, d)))
    monkeypatch.setattr(dialogs, "show_info", lambda p, m, d="": None)

    def ask(parent: Any, question: str, on_answer: Any, **_: Any) -> None:
        rec["questions"].append(question)
        on_answer(True)

    monkeypatch.setattr(dialogs, "ask", ask)
    return rec


@pytest.fixture
def window(qtbot):  # type: ignore[no-untyped-def]
    update_settings(demo_offered=True, device="cpu")
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def test_import_model_shows_card_and_hash_then_uses_a_copy(qtbot, window: MainWindow, tiny_model, recorded) -> None:
    path, sha = tiny_model
    job = window.import_model(path)
    qtbot.waitUntil(lambda: job.is_done, timeout=60_000)
    assert not recorded["errors"], recorded["errors"]
    assert recorded["questions"] and sha[:16] in recorded["questions"][-1]
    dialog = window._last_dialog
    assert isinstance(dialog, dialogs.ModelDescriptionDialog)
    assert sha in dialog.summary.toHtml() and "random-initialised" in dialog.summary.toHtml()
    settings = load_settings()
    from app.paths import models_dir

    assert settings.model_path == str(models_dir() / path.name)
    assert settings.model_sha256 == sha
    assert Path(settings.model_path).read_bytes() == path.read_bytes()
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=60_000)  # the audit entry's worker
    events = window.register.events(kind="model_import")
    assert events and events[-1].payload["sha256"] == sha


def test_changed_model_file_is_refused(qtbot, window: MainWindow, tiny_model, recorded, tmp_path: Path) -> None:
    path, sha = tiny_model
    changed = tmp_path / "changed.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # one bit of one weight
    changed.write_bytes(bytes(data))
    import dataclasses

    window.apply_settings(dataclasses.replace(window.settings, model_path=str(changed), model_sha256=sha))
    job = window.start_job("Load model", lambda p: window.models.get(window.model_choice(), p), key="model")
    qtbot.waitUntil(lambda: job.is_done, timeout=60_000)
    assert recorded["errors"], "a changed model file must be refused"
    assert "sha" in recorded["errors"][-1][0].lower() or "changed" in recorded["errors"][-1][0].lower()
    assert window.models.loaded is None


def test_settings_change_reopens_register_and_forgets_model(qtbot, window: MainWindow, recorded, tmp_path: Path) -> None:
    import dataclasses

    old_register = window.register
    new_path = tmp_path / "other-register.sqlite"
    window.apply_settings(dataclasses.replace(window.settings, register_path=str(new_path), device="cpu"))
    assert window.register is not old_register
    assert Path(window.register.path) == new_path and new_path.exists()
    assert window.register_tab.register is window.register
    assert load_settings().register_path == str(new_path)
    # an unusable register location: the error is shown, the app keeps running without one
    bad = tmp_path / "not-a-register.sqlite"
    bad.write_bytes(b"this is not SQLite" * 100)
    window.apply_settings(dataclasses.replace(window.settings, register_path=str(bad)))
    assert window.register is None and recorded["errors"]
    assert "No register" in window.register_tab.status.text()


def test_settings_dialog_edits_a_copy(qtbot, window: MainWindow) -> None:
    from app.ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(window.settings, window)
    qtbot.addWidget(dialog)
    dialog.device.setCurrentIndex(dialog.device.findData("cuda"))
    dialog.register_path.setText("/tmp/x.sqlite")
    new = dialog.result_settings()
    assert (new.device, new.register_path) == ("cuda", "/tmp/x.sqlite")
    assert window.settings.device == "cpu"  # nothing changed until applied


@pytest.mark.qt_no_exception_capture
def test_exception_in_a_slot_is_logged_and_shown_not_fatal(qtbot, window: MainWindow, recorded, caplog, monkeypatch) -> None:
    from app.ui.application import _excepthook, install_excepthook

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    install_excepthook()
    assert sys.excepthook is _excepthook

    class Boom(QtCore.QObject):
        fire = QtCore.Signal()

    boom = Boom()

    def bad_slot() -> None:
        raise ValueError("slot exploded")

    boom.fire.connect(bad_slot)
    boom.fire.emit()  # PySide6 reports the slot's exception through sys.excepthook
    assert recorded["errors"] and recorded["errors"][-1][0] == "Unexpected error: ValueError: slot exploded"
    assert "Traceback" in recorded["errors"][-1][1]
    assert any("uncaught exception" in r.getMessage() for r in caplog.records)
    assert window.isVisible()
