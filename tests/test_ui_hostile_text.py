"""Text from DICOM files is shown literally in the app, never rendered as HTML (issue 14, item 4).

A real study is written by the test (the synthetic generator, then every file rewritten by
pydicom) with series and study descriptions, patient name, patient ID and institution that
contain markup: an ``<img>`` pointing at a real PNG on disk, a red ``<h1>`` "RESPONDER 99%",
``<b>``, and an entity ``&amp;``. The test drives the real main window offscreen: import,
predict, register, record-outcome dialog, error and confirmation dialogs, PDF markup; then
checks every widget that shows that text shows the literal characters — labels by their text
format, tooltips and markup by rendering them the way Qt does (:mod:`qt_text`) — and that no
widget would load the image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PySide6")

import pydicom  # noqa: E402
import ui_fixtures as fx  # noqa: E402
from PySide6 import QtCore, QtGui, QtWidgets  # noqa: E402
from qt_text import rendered_images, shown_text  # noqa: E402

from app.ui import dialogs  # noqa: E402

HEADLINE = '<h1 style="color:red">RESPONDER 99%</h1>'
NAME = "<b>Evil</b>^<i>Mallory</i> &amp; co"
PATIENT_ID = "<h1>ID-666</h1>&amp;"
STUDY = f"{HEADLINE} study &amp; <b>bold</b>"


def _series_description(image: Path, number: int) -> str:
    return f'<img src="{image}"> {HEADLINE} <b>S{number}</b> &amp;'


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(study folder, the PNG an <img> would load, series UID → hostile description)."""
    root = tmp_path_factory.mktemp("hostile")
    image = root / "pwn.png"
    pix = QtGui.QImage(8, 8, QtGui.QImage.Format.Format_RGB32)
    pix.fill(QtGui.QColor("red"))
    assert pix.save(str(image))
    folder, _truth = fx.generate_study(root / "study", delayed=False)
    descriptions: dict[str, str] = {}
    for path in sorted(folder.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        desc = descriptions.setdefault(ds.SeriesInstanceUID,
                                       _series_description(image, int(ds.SeriesNumber)))
        ds.SeriesDescription = desc
        ds.StudyDescription = STUDY
        ds.PatientName = NAME
        ds.PatientID = PATIENT_ID
        ds.InstitutionName = HEADLINE
        ds.save_as(path)
    return folder, image, descriptions


class Recorder:
    """Records the dialogs the app would show (the real ones are checked separately)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, _parent: Any, message: str, details: str = "") -> None:
        self.errors.append(message)

    def confirm(self, _parent: Any, _reasons: Any, _assignment: Any, on_answer: Any) -> None:
        on_answer(True)


def _audit_widgets(root: QtWidgets.QWidget, literals: list[str]) -> int:
    """Every label and tooltip under ``root``: no image loaded, the hostile text literal.

    Returns how many texts quoting the files were checked (so that a test cannot pass by
    finding none).
    """
    checked = 0
    widgets = [root, *root.findChildren(QtWidgets.QWidget)]
    for w in widgets:
        texts: list[tuple[str, QtCore.Qt.TextFormat, str]] = []
        if isinstance(w, QtWidgets.QLabel):
            texts.append((w.text(), w.textFormat(), f"label {w.objectName() or type(w.parent()).__name__}"))
        if w.toolTip():
            texts.append((w.toolTip(), QtCore.Qt.TextFormat.AutoText, f"tooltip of {type(w).__name__}"))
        if isinstance(w, QtWidgets.QListWidget):  # the series thumbnails
            texts += [(w.item(i).toolTip(), QtCore.Qt.TextFormat.AutoText, "thumbnail tooltip")
                      for i in range(w.count())]
        if isinstance(w, QtWidgets.QTreeWidget):
            texts += [(item.toolTip(c), QtCore.Qt.TextFormat.AutoText, "tree tooltip")
                      for item in _tree_items(w) for c in range(w.columnCount())]
        for raw, fmt, where in texts:
            assert rendered_images(raw, fmt) == 0, f"{where} would load an image: {raw!r}"
            if "RESPONDER 99%" in raw or "Mallory" in raw or "ID-666" in raw:
                seen = shown_text(raw, fmt)
                assert any(lit in seen for lit in literals), f"{where} shows {seen!r}"
                checked += 1
    return checked


def _tree_items(tree: QtWidgets.QTreeWidget) -> list[QtWidgets.QTreeWidgetItem]:
    out: list[QtWidgets.QTreeWidgetItem] = []
    stack = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]
    while stack:
        item = stack.pop()
        out.append(item)
        stack += [item.child(i) for i in range(item.childCount())]
    return out


@pytest.mark.gui
def test_hostile_text_is_shown_literally_everywhere(  # type: ignore[no-untyped-def]
        qtbot, hostile, tiny_model, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch


    torch.set_num_threads(1)
    folder, image, descriptions = hostile
    literals = [NAME, PATIENT_ID, STUDY, HEADLINE, *descriptions.values()]
    rec = Recorder()
    real_show_error = dialogs.show_error
    monkeypatch.setattr(dialogs, "show_error", rec.error)
    monkeypatch.setattr(dialogs, "confirm_phases", rec.confirm)
    w = fx.open_main_window(qtbot, *tiny_model)
    steps = w.steps
    w.import_folder(folder)
    qtbot.waitUntil(lambda: "imported" in steps or bool(rec.errors), timeout=180_000)
    assert not rec.errors, rec.errors
    study = w.case.study
    assert study is not None and study.pairs
    assert study.patient_name == NAME and study.patient_id == PATIENT_ID

    # the browser tree: items draw plain text; their tooltips show the literal text
    items = _tree_items(w.browser.tree)
    texts = [item.text(0) for item in items]
    assert f"{NAME}  [{PATIENT_ID}]" in texts
    assert any(STUDY in t for t in texts)
    series_rows = [item for item in items if item.data(0, QtCore.Qt.ItemDataRole.UserRole) == "series"]
    assert len(series_rows) == len(descriptions) == 3
    for item in series_rows:
        desc = next(d for d in descriptions.values() if d in item.text(0))
        for col in range(w.browser.tree.columnCount()):
            tip = item.toolTip(col)
            assert rendered_images(tip) == 0
        assert desc in shown_text(item.toolTip(0))

    # the phase combos: items are plain; their tooltips literal
    for combo in w.browser.combos.values():
        for i in range(combo.count()):
            tip = combo.itemData(i, QtCore.Qt.ItemDataRole.ToolTipRole) or ""
            assert rendered_images(tip) == 0
            assert shown_text(tip) == combo.itemText(i)
        assert any(d in combo.currentText() for d in descriptions.values())
        assert shown_text(combo.toolTip()) == combo.currentText()

    # the panes' series labels (top-left corner of each viewer, rich text made by the app)
    for phase, viewer in w.viewer.viewers.items():
        corner = viewer._corners["tl"]
        assert descriptions[study.assignment[phase]] in corner.toPlainText()
        assert rendered_images(corner.toHtml(), QtCore.Qt.TextFormat.RichText) == 0

    # every label and tooltip of the window (thumbnails and tree included) after the import
    # (three series: three tree columns that quote them, a thumbnail, a phase combo each)
    assert w.tools.thumbnails.count() == 3
    assert _audit_widgets(w, literals) >= 3 * 3 + 3 + 3

    # predict (confirming the assignment if asked): result panel and register tab
    steps.clear()
    if w.case.needs_confirmation():
        w.confirm_assignment()
    assert w.act_predict.isEnabled()
    never_shown: list[int] = []
    w.register_tab.unshownChanged.connect(never_shown.append)
    w.predict()
    qtbot.waitUntil(lambda: "predicted" in steps or bool(rec.errors), timeout=180_000)
    assert not rec.errors, rec.errors
    pred = w.case.prediction
    assert pred is not None and pred.record_id is not None
    assert "RESPONDER 99%" not in w.result_panel.label_label.text()  # the label is the model's
    qtbot.waitUntil(lambda: w.register_tab.model.rowCount() == 1, timeout=60_000)
    model = w.register_tab.model
    headers = [model.headerData(c, QtCore.Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    for header, literal in (("Patient ID", PATIENT_ID), ("Name", NAME)):
        index = model.index(0, headers.index(header))
        assert model.data(index) == literal
        tip = model.data(index, QtCore.Qt.ItemDataRole.ToolTipRole)
        assert shown_text(tip) == literal and rendered_images(tip) == 0

    # shown at once, so never listed as "recorded but never shown" (issue 14, item 9)
    qtbot.waitUntil(lambda: not w.jobs.busy, timeout=180_000)
    assert [e.kind for e in w.register.events(prediction_id=pred.record_id)] == ["prediction", "shown"]
    assert never_shown and set(never_shown) == {0}
    assert w.tabs.tabText(w.tabs.indexOf(w.register_tab)) == "Register"

    # the Record-outcome dialog: the case line names the patient, as plain text
    w.register_tab.select_id(pred.record_id)
    w.register_tab.record_outcome_dialog()
    from app.ui.register_tab import OutcomeDialog

    outcome = next(d for d in QtWidgets.QApplication.topLevelWidgets() if isinstance(d, OutcomeDialog))
    assert outcome.case_label.textFormat() == QtCore.Qt.TextFormat.PlainText
    assert NAME in outcome.case_label.text() and PATIENT_ID in outcome.case_label.text()
    assert _audit_widgets(outcome, literals) >= 1
    outcome.reject()

    # every label and tooltip of the window, once more with a result on screen
    assert _audit_widgets(w, literals) >= 1

    # the real error box: a message quoting a description is plain text
    message = f"cannot read series {descriptions[study.assignment['portal']]}"
    real_show_error(w, message, details=HEADLINE)
    box = next(b for b in w.findChildren(QtWidgets.QMessageBox) if b.text() == message)
    assert box.textFormat() == QtCore.Qt.TextFormat.PlainText
    assert _audit_widgets(box, literals) >= 1
    box.close()

    # the confirmation dialog quotes reasons that name the series
    confirm = dialogs.PhaseConfirmationDialog([f"two acquisitions: {HEADLINE}"], {"portal": NAME}, w)
    assert _audit_widgets(confirm, literals) >= 1
    label = confirm.findChild(QtWidgets.QLabel)
    assert HEADLINE in shown_text(label.text(), label.textFormat())
    confirm.close()

    # the PDF report's patient block (QTextDocument markup)
    from app.ui.report_pdf import patient_html

    labels = {p: descriptions[u] for p, u in study.assignment.items()}
    doc = QtGui.QTextDocument()
    doc.setHtml(patient_html(study, labels))
    page = doc.toPlainText()
    assert NAME in page and PATIENT_ID in page and STUDY in page
    assert all(d in page for d in labels.values())
    assert rendered_images(patient_html(study, labels), QtCore.Qt.TextFormat.RichText) == 0

    qtbot.waitUntil(lambda: not w.jobs.busy, timeout=180_000)
    w.close()
