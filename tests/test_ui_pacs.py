"""The desktop app's DICOM export and PACS link, driven through real widgets (pytest-qt,
offscreen) against a real Orthanc on 127.0.0.1.

Export → DICOM and Send result to PACS run the real flow (import → predict with a tiny random
model → Grad-CAM → SR + captures → C-STORE); the PACS dialog queries and retrieves from Orthanc.
Only message boxes are replaced by recorders. The one simulation: a slowed-down receiver, so
that a retrieval lasts long enough to be cancelled from the dialog's button.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PySide6")

import pydicom  # noqa: E402
import ui_fixtures as fx  # noqa: E402
from orthanc_server import free_port, running_pacs, settings_for  # noqa: E402

from app.ui import dialogs  # noqa: E402
from app.ui.main_window import MainWindow  # noqa: E402
from app.ui.pacs_dialog import PacsDialog  # noqa: E402

pytestmark = pytest.mark.gui
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fx.generate_study(tmp_path_factory.mktemp("ui-pacs-study"), delayed=False)[0]


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory, generated: Path) -> Iterator[dict[str, Any]]:
    with running_pacs(tmp_path_factory.mktemp("orthanc-ui"), generated) as pacs:
        yield pacs


@pytest.fixture
def errors(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    shown: list[str] = []
    monkeypatch.setattr(dialogs, "show_error", lambda p, m, d="": shown.append(m))
    monkeypatch.setattr(dialogs, "show_info", lambda p, m, d="": None)
    monkeypatch.setattr(dialogs, "confirm_phases", lambda p, r, a, on_answer: on_answer(True))
    monkeypatch.setattr(dialogs, "ask", lambda p, q, on_answer, **_: on_answer(True))
    return shown


@pytest.fixture
def window(qtbot, tiny_model: tuple[Path, str], errors: list[str]) -> Iterator[MainWindow]:  # type: ignore[no-untyped-def]
    import torch

    torch.set_num_threads(1)
    w = fx.open_main_window(qtbot, *tiny_model)
    yield w
    w.close()
    assert not w.jobs.busy


def _wait(qtbot, w: MainWindow, step: str, errors: list[str]) -> None:  # type: ignore[no-untyped-def]
    n = len(errors)
    qtbot.waitUntil(lambda: step in w.steps or len(errors) > n, timeout=TIMEOUT_MS)  # type: ignore[attr-defined]
    assert step in w.steps, f"error instead of {step!r}: {errors[n:]}"  # type: ignore[attr-defined]


def _predict(qtbot, w: MainWindow, folder: Path, errors: list[str]) -> None:  # type: ignore[no-untyped-def]
    w.import_folder(folder)
    _wait(qtbot, w, "imported", errors)
    if w.case.needs_confirmation():
        w.confirm_assignment()
    w.act_predict.trigger()
    _wait(qtbot, w, "cam-study", errors)


def test_export_dicom_then_send_to_pacs(qtbot, window: MainWindow, generated: Path,
                                        pacs: dict[str, Any], errors: list[str],
                                        tmp_path: Path) -> None:
    w = window
    assert not w.pacs.export_action.isEnabled()  # nothing to export before a prediction
    _predict(qtbot, w, generated, errors)
    pred = w.case.prediction
    assert pred is not None and pred.record_id is not None
    assert "PACS not stored" in w.result_panel.text()
    assert w.pacs.export_action.isEnabled() and not w.pacs.send_action.isEnabled()  # link off

    # File → Export DICOM: SR + captures in the folder, the export in the audit trail
    w.pacs.export_to(tmp_path / "dicom")
    _wait(qtbot, w, "dicom-exported", errors)
    from app.export.sr import read_prediction_sr

    srs = list((tmp_path / "dicom").glob("SR_*.dcm"))
    assert len(srs) == 1 and len(list((tmp_path / "dicom").glob("SC_*.dcm"))) == 3
    sr = read_prediction_sr(pydicom.dcmread(srs[0]))
    assert sr.label == pred.result.label
    # the SR says what the prediction was shown and recorded with, not only the model's warnings
    recorded = w.register.get_prediction(pred.record_id).record.warnings
    assert sr.warnings == recorded and set(pred.result.warnings) < set(recorded)
    events = w.register.events(prediction_id=pred.record_id, kind="dicom_export")
    assert len(events) == 1 and events[0].payload["sr_file"] == str(srs[0])
    assert "not stored (DICOM written to" in w.result_panel.text()

    # turn the link on (as Settings would) and send: the panel says stored, Orthanc has it
    w.apply_settings(dataclasses.replace(w.settings, dicom_network=settings_for(pacs["server"].port)))
    assert w.pacs.send_action.isEnabled()
    w.pacs.send_action.trigger()
    _wait(qtbot, w, "pacs-stored", errors)
    assert "PACS stored on ORTHANC@127.0.0.1" in w.result_panel.text()
    stored = w.register.events(prediction_id=pred.record_id, kind="dicom_store")
    assert len(stored) == 1 and len(stored[0].payload["stored"]) == 4
    from app.dicomnet.link import DicomLink

    found = DicomLink(w.settings.dicom_network).find_studies(study_uid=pacs["study_uid"])
    assert found[0].n_instances is not None and found[0].n_instances >= pacs["n_files"] + 4
    assert not errors, errors


def test_send_to_a_node_that_is_down_says_not_stored(qtbot, window: MainWindow, generated: Path,
                                                     errors: list[str]) -> None:
    w = window
    w.apply_settings(dataclasses.replace(w.settings, dicom_network=settings_for(free_port())))
    _predict(qtbot, w, generated, errors)
    n = len(errors)
    w.pacs.send_action.trigger()
    qtbot.waitUntil(lambda: len(errors) > n, timeout=TIMEOUT_MS)
    assert "cannot reach the DICOM node" in errors[-1]
    assert "PACS not stored: cannot reach the DICOM node" in w.result_panel.text()


def test_pacs_dialog_query_and_retrieve_imports_the_study(qtbot, window: MainWindow,
                                                          pacs: dict[str, Any],
                                                          errors: list[str]) -> None:
    w = window
    w.apply_settings(dataclasses.replace(w.settings, dicom_network=settings_for(pacs["server"].port)))
    dialog = w.pacs.show_dialog()
    assert isinstance(dialog, PacsDialog) and dialog.search_button.isEnabled()
    with qtbot.waitSignal(dialog.jobEnded, timeout=TIMEOUT_MS):
        dialog.echo_button.click()
    assert "answered" in dialog.status_label.text()
    with qtbot.waitSignals([dialog.searched, dialog.jobEnded], timeout=TIMEOUT_MS):
        dialog.search_button.click()
    assert len(dialog.matches) >= 1 and dialog.table.rowCount() == len(dialog.matches)
    row = next(i for i, m in enumerate(dialog.matches) if m.study_uid == pacs["study_uid"])
    assert not dialog.retrieve_button.isEnabled()
    dialog.table.selectRow(row)
    assert dialog.retrieve_button.isEnabled()
    w.steps.clear()  # type: ignore[attr-defined]
    with qtbot.waitSignal(dialog.retrieved, timeout=TIMEOUT_MS) as got:
        dialog.retrieve_button.click()
    result = got.args[0]
    assert result.n_files >= pacs["n_files"]
    _wait(qtbot, w, "imported", errors)  # the main window imports the retrieved folder
    assert w.case.folder == result.folder
    assert w.register.events(kind="dicom_retrieve")[-1].payload["study_uid"] == pacs["study_uid"]
    dialog.reject()


def test_pacs_dialog_cancel_keeps_nothing(qtbot, window: MainWindow, pacs: dict[str, Any],
                                          errors: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from app.dicomnet import retrieve
    from app.ui.pacs_actions import pacs_import_dir

    slow_call = retrieve._Receiver.__call__

    def slowly(self: Any, event: Any) -> int:  # simulation: a slow link, 50 ms per image
        time.sleep(0.05)
        return slow_call(self, event)

    monkeypatch.setattr(retrieve._Receiver, "__call__", slowly)
    w = window
    w.apply_settings(dataclasses.replace(w.settings, dicom_network=settings_for(pacs["server"].port)))
    dialog = w.pacs.show_dialog()
    with qtbot.waitSignals([dialog.searched, dialog.jobEnded], timeout=TIMEOUT_MS):
        dialog.search_button.click()
    dialog.table.selectRow(0)
    assert dialog.retrieve_button.isEnabled()
    dialog.retrieve_button.click()
    qtbot.waitUntil(lambda: dialog.progress.value() > 0, timeout=TIMEOUT_MS)
    assert dialog.cancel_button.isEnabled()
    with qtbot.waitSignal(dialog.jobEnded, timeout=TIMEOUT_MS):
        dialog.cancel_button.click()
    assert "cancelled; nothing was" in dialog.status_label.text()
    target = pacs_import_dir()
    assert not target.exists() or list(target.iterdir()) == []
    dialog.reject()


def test_pacs_dialog_with_the_link_off_says_how_to_turn_it_on(qtbot, window: MainWindow) -> None:
    dialog = window.pacs.show_dialog()
    assert not dialog.search_button.isEnabled() and not dialog.retrieve_button.isEnabled()
    assert "Settings → DICOM network" in dialog.status_label.text()
    dialog.reject()


def test_settings_dialog_refuses_an_invalid_ae_title(qtbot, window: MainWindow) -> None:
    from app.ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(window.settings, window)
    qtbot.addWidget(dialog)
    box = dialog.network_box
    assert not box.enabled.isChecked()  # off by default
    box.enabled.setChecked(True)
    box.node_ae.setText("FAR-TOO-LONG-AE-TITLE")
    box.node_host.setText("127.0.0.1")
    dialog.accept()
    assert dialog.result() == 0 and not dialog.error_label.isHidden()
    assert "not a valid AE title" in dialog.error_label.text()
    box.node_ae.setText("PACS1")
    dialog.accept()
    assert dialog.result() == 1
    net = dialog.result_settings().dicom_network
    assert net.enabled and net.node().ae_title == "PACS1" and net.node().host == "127.0.0.1"
