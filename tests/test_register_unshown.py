"""A prediction recorded and never shown is pointed at on the next start (issue 14, item 9).

The app records a prediction in its worker and shows it a moment later; a kill in between
left a case in the register that nobody saw, and nothing said so. Here a real process records a
case for display and is killed with SIGKILL before showing it; the next start (register API,
``register list``, the register tab and the main window) points at it; showing it clears it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from app.cli import main
from app.register import open_register
from app.register.display import mark_shown, unshown_predictions, unshown_text
from app.register.samples import sample_record


def _record_then_die(path: str) -> None:
    """Child: record one case for display, then get killed before it could be shown."""
    reg = open_register(path, create=False)
    reg.add_prediction(sample_record(7), display_pending=True)
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A register with: a case shown (1), a case of the command line (2), a case recorded by
    a process killed before showing it (3)."""
    path = tmp_path / "register.sqlite"
    with open_register(path) as reg:
        shown = reg.add_prediction(sample_record(0), display_pending=True)
        assert mark_shown(reg, shown)
        reg.add_prediction(sample_record(1))  # no display pending: printed at once (CLI)
    if not hasattr(signal, "SIGKILL") or not hasattr(os, "fork"):
        pytest.skip("needs SIGKILL and fork (POSIX)")
    proc = multiprocessing.get_context("fork").Process(target=_record_then_die, args=(str(path),))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    return path


def test_the_killed_case_is_listed_as_never_shown(db: Path) -> None:
    with open_register(db) as reg:
        assert unshown_predictions(reg) == [3]
        assert reg.verify().ok  # the markers are events of the hash chain, which still holds
        assert mark_shown(reg, 3) and not mark_shown(reg, 3)  # once only
        assert unshown_predictions(reg) == []
        assert [e.kind for e in reg.events(prediction_id=3)] == ["prediction", "shown"]
        assert reg.verify().ok


def test_register_list_points_at_it(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["register", "list", "--register", str(db)]) == 0
    out = capsys.readouterr().out
    lines = {int(line[1:6]): line for line in out.splitlines() if line[1:6].strip().isdigit()}
    assert lines[3].startswith("!") and not lines[1].startswith("!") and not lines[2].startswith("!")
    assert "1 prediction was recorded but never shown" in out and "case 3" in out
    assert main(["register", "list", "--register", str(db), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["never_shown"] == [3]
    assert {c["id"]: c["shown"] for c in doc["cases"]} == {1: True, 2: True, 3: False}
    assert main(["register", "show", "3", "--register", str(db)]) == 0
    assert "shown       NEVER" in capsys.readouterr().out


def test_unshown_text() -> None:
    assert unshown_text([]) == ""
    assert "2 predictions were recorded but never shown" in unshown_text([4, 9])


pytest.importorskip("PySide6")


@pytest.mark.gui
def test_register_tab_and_window_point_at_it_until_shown(qtbot, db: Path) -> None:  # type: ignore[no-untyped-def]
    from app.ui.register_tab import RegisterTab

    with open_register(db) as reg:
        tab = RegisterTab(reg)
        qtbot.addWidget(tab)
        with qtbot.waitSignal(tab.unshownChanged, timeout=60_000) as got:
            tab.refresh()
        assert got.args == [1]
        assert tab.unshown == [3]
        assert tab.unshown_label.isVisibleTo(tab)
        assert "recorded but never shown" in tab.unshown_label.text()
        ids = {tab.model.data(tab.model.index(r, 0)) for r in range(tab.model.rowCount())}
        assert ids == {"1", "2", "⚠ 3"}
        # shown now (the app shows a result, or the user opens the case): the mark goes
        with qtbot.waitSignal(tab.unshownChanged, timeout=60_000) as got:
            tab.mark_shown(3)
        assert got.args == [0]
        assert not tab.unshown_label.isVisibleTo(tab)
        qtbot.waitUntil(lambda: not tab.jobs.busy, timeout=60_000)


@pytest.mark.gui
def test_main_window_says_it_on_start(qtbot, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from app.settings import update_settings
    from app.ui import dialogs
    from app.ui.main_window import MainWindow

    monkeypatch.setattr(dialogs, "show_error", lambda *a, **k: None)
    update_settings(demo_offered=True, register_path=str(db))
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    index = w.tabs.indexOf(w.register_tab)
    qtbot.waitUntil(lambda: "never shown" in w.tabs.tabText(index), timeout=60_000)
    assert w.tabs.tabText(index) == "Register (⚠ 1 never shown)"
    qtbot.waitUntil(lambda: not w.jobs.busy, timeout=120_000)
    w.close()
