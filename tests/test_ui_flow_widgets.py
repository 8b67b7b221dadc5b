"""The main window's own widgets on constructed data: study browser, register tab, dialogs."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("PySide6")

import ui_fixtures as fx  # noqa: E402

from app.ui import dialogs  # noqa: E402
from app.ui.register_tab import COLUMNS, RegisterTab  # noqa: E402
from app.ui.study_browser import COL_PHASE, COL_SERIES, StudyBrowser  # noqa: E402


@pytest.fixture
def shown_errors(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every error/info dialog the code under test shows, instead of showing it."""
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(dialogs, "show_error", lambda parent, msg, details="": shown.append(("error", msg)))
    monkeypatch.setattr(dialogs, "show_info", lambda parent, msg, details="": shown.append(("info", msg)))
    return shown


# -- study browser -----------------------------------------------------------------------------


def test_browser_lists_series_with_phase_status_and_warnings(qtbot) -> None:
    browser = StudyBrowser()
    qtbot.addWidget(browser)
    selected: list[str] = []
    browser.studySelected.connect(selected.append)
    browser.set_scan(fx.constructed_scan())
    assert selected == ["1.2.3.4"]  # the first study is selected at once
    art = browser.series_item("1.2")
    assert art is not None and art.text(COL_PHASE).startswith("arterial")
    assert "InstanceNumber gap" in art.toolTip(0)
    cor = browser.series_item("1.5")
    assert cor is not None and "Refused" in cor.toolTip(0)
    conflict = browser.series_item("1.4")
    assert conflict is not None and "⚡" in conflict.text(COL_PHASE)
    assert "5 used, 1 skipped" in browser.summary.text()


def test_browser_marks_assignment_and_offers_one_click_override(qtbot) -> None:
    browser = StudyBrowser()
    qtbot.addWidget(browser)
    browser.set_scan(fx.constructed_scan())
    study = fx.constructed_study(needs_confirmation=True)
    browser.set_assembly("1.2.3.4", study)
    item = browser.series_item("1.2")
    assert item is not None and item.font(COL_SERIES).bold()
    assert item.text(COL_SERIES).startswith("▶ #3")
    assert "arterial" in item.toolTip(COL_SERIES)
    assert not browser.series_item("1.4").font(COL_SERIES).bold()  # type: ignore[union-attr]
    combo = browser.combos["arterial"]
    # refused coronal series is not offered; the four axial ones are
    assert [combo.itemData(i) for i in range(combo.count())] == ["1.1", "1.2", "1.4", "1.3"]
    assert combo.currentData() == "1.2"
    requests: list[tuple[str, str]] = []
    browser.overrideRequested.connect(lambda p, u: requests.append((p, u)))
    combo.setCurrentIndex(combo.findData("1.4"))
    combo.activated.emit(combo.currentIndex())  # what a user's click emits
    assert requests == [("arterial", "1.4")]
    menu = browser.series_menu(browser.series_item("1.4"))  # type: ignore[arg-type]
    assert menu is not None
    next(a for a in menu.actions() if "portal" in a.text()).trigger()
    assert requests[-1] == ("portal", "1.4")
    assert browser.series_menu(browser.series_item("1.5")) is None  # type: ignore[arg-type]  # refused
    browser.set_confirmation(study.confirmation_reasons, confirmed=False)
    assert browser.banner.isVisibleTo(browser)
    assert "two series claim" in browser.banner_text.text()
    with qtbot.waitSignal(browser.confirmRequested, timeout=1000):
        browser.confirm_button.click()
    browser.set_confirmation(study.confirmation_reasons, confirmed=True)
    assert browser.confirm_button.isHidden()
    browser.set_confirmation(None, confirmed=False)
    assert not browser.banner.isVisibleTo(browser)


def test_browser_shows_assembly_error(qtbot) -> None:
    browser = StudyBrowser()
    qtbot.addWidget(browser)
    browser.set_scan(fx.constructed_scan())
    browser.set_assembly("1.2.3.4", None, "no portal-venous series found")
    assert "Cannot predict" in browser.assembly_note.text()
    assert "no portal-venous" in browser.assembly_note.text()


# -- register tab ------------------------------------------------------------------------------


@pytest.fixture
def register(tmp_path: Path):  # type: ignore[no-untyped-def]
    from app.register import open_register

    reg = open_register(tmp_path / "reg.sqlite")
    reg.add_prediction(fx.prediction_record("P-ALPHA", model="demo", label="responder", score=0.8))
    reg.add_prediction(fx.prediction_record("P-BETA", model="site", label="non-responder", score=0.2))
    reg.add_prediction(fx.prediction_record("P-GAMMA", model="demo", label="non-responder", score=0.4))
    yield reg
    reg.close()


def settle(qtbot, tab: RegisterTab) -> None:  # type: ignore[no-untyped-def]
    """Wait until the tab's register jobs (run in workers) have ended and their results landed."""
    qtbot.waitUntil(lambda: not tab.jobs.busy, timeout=10000)


def _column(tab: RegisterTab, header: str) -> list[str]:
    col = [c[0] for c in COLUMNS].index(header)
    m = tab.model
    return [m.data(m.index(r, col)) for r in range(m.rowCount())]


def test_register_tab_says_which_rule_made_each_score(qtbot, register) -> None:
    # a vote fraction and a patient head's probability are not one scale: the table says which
    register.add_prediction(fx.prediction_record("P-DELTA", score=0.31, decided_by="patient_head"))
    register.add_prediction(fx.prediction_record("P-EPS", score=0.6, decided_by="vote"))
    tab = RegisterTab(register)
    qtbot.addWidget(tab)
    settle(qtbot, tab)
    shown = dict(zip(_column(tab, "Patient ID"), _column(tab, "Score from"), strict=True))
    # the three fixture cases were recorded without a rule (as before schema 0003): "—", no guess
    assert shown == {"P-ALPHA": "—", "P-BETA": "—", "P-GAMMA": "—", "P-DELTA": "patient head",
                     "P-EPS": "all slices"}


def test_register_tab_lists_searches_filters_and_sorts(qtbot, register) -> None:
    tab = RegisterTab(register)
    qtbot.addWidget(tab)
    settle(qtbot, tab)
    assert sorted(_column(tab, "Patient ID")) == ["P-ALPHA", "P-BETA", "P-GAMMA"]
    tab.search.setText("beta")
    qtbot.waitUntil(lambda: tab.model.rowCount() == 1, timeout=2000)
    assert _column(tab, "Patient ID") == ["P-BETA"]
    tab.search.clear()
    qtbot.waitUntil(lambda: tab.model.rowCount() == 3, timeout=2000)
    tab.model_filter.setCurrentIndex(tab.model_filter.findData("demo"))
    tab.model_filter.activated.emit(tab.model_filter.currentIndex())
    settle(qtbot, tab)
    assert sorted(_column(tab, "Patient ID")) == ["P-ALPHA", "P-GAMMA"]
    tab.model_filter.setCurrentIndex(0)
    tab.model_filter.activated.emit(0)
    section = [c[0] for c in COLUMNS].index("Patient ID")
    settle(qtbot, tab)
    tab.table.horizontalHeader().sectionClicked.emit(section)  # a header click: ascending
    settle(qtbot, tab)
    assert _column(tab, "Patient ID") == ["P-ALPHA", "P-BETA", "P-GAMMA"]
    tab.table.horizontalHeader().sectionClicked.emit(section)  # again: descending
    settle(qtbot, tab)
    assert _column(tab, "Patient ID") == ["P-GAMMA", "P-BETA", "P-ALPHA"]


def test_register_tab_records_outcome_and_shows_performance(qtbot, register, shown_errors) -> None:
    tab = RegisterTab(register)
    qtbot.addWidget(tab)
    settle(qtbot, tab)
    ids = {r.patient_id: r.id for r in tab.model.rows()}
    assert tab.record_outcome(ids["P-ALPHA"], "PR", "2024-06-01", "dr test")
    settle(qtbot, tab)
    assert tab.record_outcome(ids["P-BETA"], "PD", "2024-06-02", "dr test")
    settle(qtbot, tab)
    assert tab.selected_id() == ids["P-BETA"]  # the case just changed stays selected
    outcomes = dict(zip(_column(tab, "Patient ID"), _column(tab, "Outcome"), strict=True))
    assert outcomes["P-ALPHA"].startswith("PR") and outcomes["P-GAMMA"] == "—"
    tab.outcome_filter.setCurrentIndex(tab.outcome_filter.findData("without"))
    tab.outcome_filter.activated.emit(tab.outcome_filter.currentIndex())
    settle(qtbot, tab)
    assert _column(tab, "Patient ID") == ["P-GAMMA"]
    # performance rows: one per model with outcomes
    assert tab.performance.rowCount() == 2
    headers = [tab.performance.horizontalHeaderItem(c).text() for c in range(tab.performance.columnCount())]
    assert "AUC" in headers and "AUC 95 % CI" in headers and "Responders" in headers
    assert not any("_" in h for h in headers)
    assert tab.performance.isVisibleTo(tab) and not tab.performance_empty.isVisibleTo(tab)
    assert "Liao" in tab.reference.text()
    # a bad category is refused with a dialog, nothing recorded
    assert tab.record_outcome(ids["P-GAMMA"], "XX", "2024-06-03", "")
    settle(qtbot, tab)
    assert register.get_prediction(ids["P-GAMMA"]).outcome is None
    assert shown_errors and shown_errors[-1][0] == "error" and "XX" in shown_errors[-1][1]


def test_register_tab_opens_case_exports_and_verifies(qtbot, register, shown_errors, tmp_path: Path) -> None:
    tab = RegisterTab(register)
    qtbot.addWidget(tab)
    settle(qtbot, tab)
    first = tab.model.index(0, 0)
    with qtbot.waitSignal(tab.openCase, timeout=1000) as blocker:
        tab.table.doubleClicked.emit(first)
    assert blocker.args == [tab.model.row(0).id]
    out = tmp_path / "export.csv"
    assert tab.export_csv(out, pseudonymise=True)
    settle(qtbot, tab)
    text = out.read_text(encoding="utf-8")
    assert "P-ALPHA" not in text and len(text.splitlines()) >= 4
    assert "Exported to" in tab.status.text()
    tab.verify()
    settle(qtbot, tab)
    assert shown_errors[-1][0] == "info" and "intact" in shown_errors[-1][1]


def test_register_tab_without_register(qtbot) -> None:
    tab = RegisterTab(None)
    qtbot.addWidget(tab)
    assert tab.model.rowCount() == 0
    assert "No register" in tab.status.text()
    assert not tab.export_button.isEnabled()


# -- dialogs -----------------------------------------------------------------------------------


def test_about_and_model_description_dialogs(qtbot) -> None:
    about = dialogs.AboutDialog()
    qtbot.addWidget(about)
    text = about.versions.toPlainText()
    assert "HCC Response" in text and "PySide6" in text and "torch" in text
    desc = {"name": "demo", "version": "2", "weights_kind": "random-initialised — not trained", "phases": ["plain"]}
    dlg = dialogs.ModelDescriptionDialog(desc, "f" * 64, "/m/demo.safetensors")
    qtbot.addWidget(dlg)
    html = dlg.summary.toHtml()
    assert "random-initialised" in html and "f" * 64 in html and "Intended use" in html


def test_phase_confirmation_dialog_answers(qtbot) -> None:
    answers: list[bool] = []
    dlg = dialogs.confirm_phases(None, ["tags and image disagree for #3"], {"plain": "1.1"}, answers.append)
    assert dlg.isVisible()
    dlg.confirm_button.click()
    assert answers == [True]
    dlg = dialogs.confirm_phases(None, ["x"], {}, answers.append)
    dlg.reject()
    assert answers == [True, False]


def test_export_dialog_offers_pseudonymisation(qtbot, register) -> None:
    from PySide6 import QtWidgets

    tab = RegisterTab(register)
    qtbot.addWidget(tab)
    settle(qtbot, tab)
    tab.export_dialog()
    dialog = next(w for w in tab.findChildren(QtWidgets.QFileDialog))
    box = next(c for c in dialog.findChildren(QtWidgets.QCheckBox) if "Pseudonymise" in c.text())
    assert box.isChecked()  # the safer choice is the default
    dialog.reject()


def test_performance_pane_says_why_it_is_empty(qtbot, register) -> None:
    """Before any outcome the pane explains itself instead of showing an empty white box."""
    tab = RegisterTab(register)
    qtbot.addWidget(tab)
    settle(qtbot, tab)
    assert not tab.performance.isVisibleTo(tab)
    assert tab.performance_empty.isVisibleTo(tab)
    assert "Record outcome" in tab.performance_empty.text()


def test_outcome_dialog_forces_a_choice(qtbot) -> None:
    """No pre-selected RECIST category: OK is off until the user picks one."""
    from app.ui.register_tab import OutcomeDialog

    dlg = OutcomeDialog("Case 1")
    qtbot.addWidget(dlg)
    assert dlg.category.currentData() is None
    assert not dlg.ok_button.isEnabled()
    dlg.category.setCurrentIndex(dlg.category.findData("SD"))
    assert dlg.ok_button.isEnabled()
    assert dlg.values()[0] == "SD"
    dlg.category.setCurrentIndex(0)
    assert not dlg.ok_button.isEnabled()
