"""The main window's DICOM actions: Export → DICOM, Send result to PACS, PACS query/retrieve.

Kept out of ``main_window.py`` (which only creates this object, puts its actions in the File
menu and tells it about new results), so that the window does not grow another dozen slots.
What happens is recorded: each export, store and retrieval is an event in the register's audit
trail (``dicom_export``, ``dicom_store``, ``dicom_retrieve``), and every association is logged.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtGui, QtWidgets

from app.errors import HCCError
from app.ui import dialogs, dicom_jobs

if TYPE_CHECKING:  # pragma: no cover - typing only; export/dicomnet pull in highdicom, pynetdicom
    from app.dicomnet.association import AssociationRecord
    from app.dicomnet.config import NetworkSettings
    from app.dicomnet.retrieve import RetrieveResult
    from app.export.writer import DicomExport
    from app.ui.main_window import MainWindow
    from app.ui.pacs_dialog import PacsDialog
    from app.ui.workers import Job

log = logging.getLogger(__name__)


def pacs_import_dir() -> Path:
    """Where studies retrieved from the PACS are imported from (per-user data)."""
    from app.paths import user_data_dir

    return user_data_dir() / "pacs-import"


def dicom_outbox_dir() -> Path:
    """Where results sent to the PACS are written first (kept: the audit trail names them)."""
    from app.paths import user_data_dir

    return user_data_dir() / "dicom-out"


class PacsActions(QtCore.QObject):
    """Actions and slots of the DICOM export and the PACS link for one main window."""

    #: "dicom-exported", "pacs-stored", "pacs-retrieved" (for tests and the step log)
    stepDone = QtCore.Signal(str)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.dialog: PacsDialog | None = None
        self.export_action = QtGui.QAction("Export &DICOM (SR + heatmap captures)…", window)
        self.export_action.setStatusTip("Write the result as a DICOM SR and Secondary Captures")
        self.export_action.triggered.connect(lambda _c=False: self.export_dialog())
        self.send_action = QtGui.QAction("Send result to &PACS", window)
        self.send_action.setStatusTip("Store the SR and captures on the configured PACS")
        self.send_action.triggered.connect(lambda _c=False: self.send())
        self.pacs_action = QtGui.QAction("&PACS query/retrieve…", window)
        self.pacs_action.setStatusTip("Find a study on the PACS and import it")
        self.pacs_action.triggered.connect(lambda _c=False: self.show_dialog())

    @property
    def actions(self) -> list[QtGui.QAction]:
        return [self.pacs_action, self.export_action, self.send_action]

    @property
    def network(self) -> NetworkSettings:
        return self.window.settings.dicom_network

    def update_enabled(self, busy_case: bool) -> None:
        pred = self.window.case.prediction
        self.export_action.setEnabled(pred is not None)
        self.send_action.setEnabled(pred is not None and bool(self.network.enabled
                                                              and self.network.nodes))
        self.pacs_action.setEnabled(not busy_case)

    def on_new_result(self) -> None:
        """A prediction was just shown: it is in no PACS yet."""
        self.window.result_panel.set_pacs_status("not stored")

    # ------------------------------------------------------------------------ audit
    def _audit(self, kind: str, payload: dict[str, object], prediction_id: int | None) -> None:
        register = self.window.register
        if register is None:
            return
        try:
            register.log_event(kind, payload, prediction_id=prediction_id)
        except HCCError as exc:
            log.warning("could not record %s in the register: %s", kind, exc.message)

    def _log_association(self, record: AssociationRecord) -> None:
        log.info("DICOM association #%d %s %s: %s", record.number, record.node, record.purpose,
                 record.outcome)

    # ------------------------------------------------------------------------ export
    def export_dialog(self) -> None:
        """Ask for a folder, then :meth:`export_to` it."""
        start = str(self.window.settings.last_folder or Path.home())
        dialog = QtWidgets.QFileDialog(self.window, "Export DICOM into folder", start)
        dialog.setFileMode(QtWidgets.QFileDialog.FileMode.Directory)
        dialog.setOption(QtWidgets.QFileDialog.Option.ShowDirsOnly, True)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(lambda f: self.export_to(Path(f)))
        dialog.open()

    def export_to(self, folder: Path) -> Job | None:
        """Write the shown prediction's SR and captures into ``folder`` (a job)."""
        case = self.window.case
        pred = case.prediction
        if pred is None:
            return None
        fn = dicom_jobs.export_job(pred.study, pred.result, case.cam, case.scan, folder,
                                   pred.warnings)
        job = self.window.start_job("Export DICOM", fn, key="dicom")

        def done(export: DicomExport) -> None:
            self._audit("dicom_export", export.to_dict(), pred.record_id)
            if pred is self.window.case.prediction:
                self.window.result_panel.set_pacs_status(
                    f"not stored (DICOM written to {export.folder})")
            self.window.statusBar().showMessage(
                f"DICOM SR and {len(export.capture_files)} captures written to {export.folder}",
                8000)
            self.stepDone.emit("dicom-exported")

        job.finished.connect(done)
        return job

    # ------------------------------------------------------------------------ store
    def send(self) -> Job | None:
        """Export and store the shown result on the configured PACS (a job)."""
        case = self.window.case
        pred = case.prediction
        if pred is None:
            return None
        out = dicom_outbox_dir() / time.strftime("%Y%m%d-%H%M%S")
        fn = dicom_jobs.send_job(self.network, pred.study, pred.result, case.cam, case.scan, out,
                                 self._log_association, pred.warnings)
        job = self.window.start_job("Send to PACS", fn, key="dicom")
        node = self.network.node().address if self.network.nodes else "?"
        self.window.result_panel.set_pacs_status(f"sending to {node}…")

        def done(sent: dicom_jobs.SentResult) -> None:
            self._audit("dicom_store", {"node": sent.stored.node, "stored": sent.stored.stored,
                                        **sent.export.to_dict()}, pred.record_id)
            if pred is self.window.case.prediction:
                self.window.result_panel.set_pacs_status(
                    f"stored on {sent.stored.node} at {time.strftime('%H:%M')} (SR + "
                    f"{len(sent.export.capture_files)} captures)", stored=True)
            self.stepDone.emit("pacs-stored")

        def failed(message: str, _details: str) -> None:
            self._audit("dicom_store", {"node": node, "failed": message}, pred.record_id)
            if pred is self.window.case.prediction:
                self.window.result_panel.set_pacs_status(f"not stored: {message}")

        job.finished.connect(done)
        job.failed.connect(failed)
        job.cancelled.connect(lambda: self.window.result_panel.set_pacs_status(
            "not stored (cancelled)"))
        return job

    # ------------------------------------------------------------------------ query/retrieve
    def show_dialog(self) -> PacsDialog:
        """Open the PACS dialog; a retrieved study is imported like a folder."""
        from app.ui.pacs_dialog import PacsDialog

        dialog = PacsDialog(self.network, pacs_import_dir(), self.window.jobs, self.window,
                            listener=self._log_association)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.retrieved.connect(self._on_retrieved)
        dialog.open()
        self.dialog = dialog
        return dialog

    def _on_retrieved(self, result: RetrieveResult) -> None:
        self._audit("dicom_retrieve", {"node": self.network.node().address,
                                       "study_uid": result.study_uid, "files": result.n_files,
                                       "folder": str(result.folder), "method": result.method},
                    None)
        self.stepDone.emit("pacs-retrieved")
        try:
            self.window.import_folder(result.folder)
        except HCCError as exc:  # pragma: no cover - import errors arrive as job failures
            dialogs.show_error(self.window, exc.message, exc.details or "")
