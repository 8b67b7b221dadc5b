"""The desktop app backs the register up by itself after start-up, when due, says so, and says
loudly when it cannot (driven through the real main window and settings dialog, offscreen)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("PySide6")

import ui_fixtures as fx  # noqa: E402

from app import paths  # noqa: E402
from app.backup_policy import BackupPolicy  # noqa: E402
from app.register import open_register  # noqa: E402
from app.register.autobackup import scheduled_backups  # noqa: E402
from app.register.samples import sample_record  # noqa: E402
from app.settings import update_settings  # noqa: E402
from app.ui import dialogs  # noqa: E402

pytestmark = pytest.mark.gui
TIMEOUT_MS = 60_000


@pytest.fixture(autouse=True)
def _backups_as_shipped() -> None:
    """The product's default policy (conftest turns backups off for every other test)."""
    update_settings(register_backup=BackupPolicy())


@pytest.fixture
def errors(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    shown: list[str] = []
    monkeypatch.setattr(dialogs, "show_error", lambda parent, msg, details="": shown.append(msg))
    return shown


def _register_with_a_case() -> None:
    with open_register(paths.default_register_path()) as reg:
        reg.add_prediction(sample_record(1))


def test_start_up_backs_up_a_register_with_cases_once_a_day(qtbot, tiny_model, errors) -> None:  # type: ignore[no-untyped-def]
    _register_with_a_case()
    w = fx.open_main_window(qtbot, *tiny_model)
    qtbot.waitUntil(lambda: "backup" in w.steps, timeout=TIMEOUT_MS)
    made = scheduled_backups(paths.default_backup_dir())
    assert len(made) == 1 and not errors
    assert str(made[0][1]) in w.statusBar().currentMessage()  # nothing else was being said
    with open_register(made[0][1], read_only=True) as copy:
        assert copy.verify().ok and copy.count_cases() == 1
    w.close()
    # a second start the same day: not due, nothing new
    w2 = fx.open_main_window(qtbot, *tiny_model)
    qtbot.waitUntil(lambda: "backup" in w2.steps, timeout=TIMEOUT_MS)
    assert len(scheduled_backups(paths.default_backup_dir())) == 1
    w2.close()


def test_the_backup_never_covers_another_status_message(qtbot, tiny_model, errors) -> None:  # type: ignore[no-untyped-def]
    _register_with_a_case()
    w = fx.open_main_window(qtbot, *tiny_model)
    w.statusBar().showMessage("Case 1: the source folder /x is gone; showing the recorded result only.")
    qtbot.waitUntil(lambda: "backup" in w.steps, timeout=TIMEOUT_MS)
    assert len(scheduled_backups(paths.default_backup_dir())) == 1  # made, and ...
    assert "is gone" in w.statusBar().currentMessage()  # ... the user's message stays
    w.close()


def test_a_failing_backup_is_shown_with_where_to_fix_it(qtbot, tiny_model, errors, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _register_with_a_case()
    blocker = tmp_path / "share"
    blocker.write_text("not a folder")
    update_settings(register_backup=BackupPolicy(folder=str(blocker / "hcc")))
    w = fx.open_main_window(qtbot, *tiny_model)
    qtbot.waitUntil(lambda: bool(errors), timeout=TIMEOUT_MS)
    assert errors[0].startswith("The automatic register backup failed: ")
    assert "Settings → Register backups" in errors[0]
    assert "backup" not in w.steps
    w.close()


def test_settings_dialog_sets_the_policy_and_a_new_folder_gets_a_backup_at_once(qtbot, tiny_model, errors, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from app.ui.settings_dialog import SettingsDialog

    _register_with_a_case()
    update_settings(register_backup=BackupPolicy(enabled=False))
    w = fx.open_main_window(qtbot, *tiny_model)
    qtbot.waitUntil(lambda: "warm" in w.steps, timeout=TIMEOUT_MS)
    qtbot.wait(100)
    assert "backup" not in w.steps  # turned off: no job at all
    dialog = SettingsDialog(w.settings, w)
    qtbot.addWidget(dialog)
    assert not dialog.backup_box.isChecked()
    dialog.backup_box.setChecked(True)
    dialog.backup_folder.setText(str(tmp_path / "share" / "hcc"))
    dialog.backup_keep.setValue(30)
    dialog.backup_hours.setValue(12)
    new = dialog.result_settings()
    assert new.register_backup == BackupPolicy(True, str(tmp_path / "share" / "hcc"), 30, 12.0)
    w.apply_settings(new)
    qtbot.waitUntil(lambda: "backup" in w.steps, timeout=TIMEOUT_MS)
    assert len(scheduled_backups(tmp_path / "share" / "hcc")) == 1 and not errors
    from app.settings import load_settings

    assert load_settings().register_backup == new.register_backup  # saved
    w.close()
