"""The main window's register side: re-opening a recorded case, saving again, the first-start
demo offer, CSV export and the PDF report.

A part of :class:`app.ui.main_window.MainWindow` (see :mod:`app.ui.window_base`).
Every register call and the report's writing run in a worker (:mod:`app.case.records`), so a
register locked by another program, or a slow disk, never freezes the window; the user learns
the outcome from the status bar or an error dialog when the job ends.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6 import QtCore, QtWidgets

from app.case import records
from app.case.flow import CaseOutcome
from app.dicom.studies import iter_studies, study_key
from app.dicom.types import AssembledStudy
from app.errors import HCCError
from app.ui import dialogs
from app.ui.case_state import CaseState
from app.ui.jobs import ImportOutcome, save_record_job
from app.ui.window_base import WindowParts

if TYPE_CHECKING:  # pragma: no cover - typing only
    from app.register.autobackup import BackupOutcome
    from app.ui.workers import Job

log = logging.getLogger(__name__)


class RegisterActions(WindowParts):
    """Register, report and demo-offer actions, for :class:`MainWindow`."""

    def _open_register(self) -> None:
        try:
            from app.register import open_register

            path = Path(self.settings.register_path) if self.settings.register_path else None
            self.register = open_register(path)
            self._register_error = None
        except HCCError as exc:
            self.register = None
            self._register_error = exc.message + (f"\n{exc.details}" if exc.details else "")
        except OSError as exc:
            self.register = None
            self._register_error = f"{type(exc).__name__}: {exc}"

    def start_scheduled_backup(self) -> Job | None:
        """The automatic register backup, in a worker, once the start-up imports are done
        (:func:`app.case.records.scheduled_backup`: only when due). A failure is shown like any
        job's: the site must learn that its backups stopped."""
        register, policy = self.register, self.settings.register_backup
        if register is None or not policy.enabled or self._closing:  # the warm-up may end late
            return None
        job = self.start_job("Register backup", lambda p: records.scheduled_backup(register, policy, p),
                             key="backup")

        def done(outcome: BackupOutcome) -> None:
            # said in the status bar only when nothing else is being said there: a backup the
            # user did not ask for must not cover "the source folder is gone" and the like
            if outcome.path is not None and not self.statusBar().currentMessage():
                self.statusBar().showMessage(outcome.message[:1].upper() + outcome.message[1:], 8000)
            log.info("%s", outcome.message)
            self.stepDone.emit("backup")

        job.finished.connect(done)
        return job

    def offer_demo(self) -> Job | None:
        """First start without data: offer the demo study (a non-blocking banner).

        Whether the register holds cases is asked in a worker; the banner follows.
        """
        register = self.register
        if register is None:
            self._show_demo_offer(empty=True)
            return None
        job = self.jobs.start("Register", lambda _p: records.has_cases(register))
        job.finished.connect(lambda has: self._show_demo_offer(empty=not has))
        job.failed.connect(lambda _m, _d: self._show_demo_offer(empty=True))
        return job

    def _show_demo_offer(self, empty: bool) -> None:
        if not self.settings.demo_offered or empty:
            self.welcome.show()
            self.demo_button.setFocus()
            if not self.settings.demo_offered:
                self._save_settings(demo_offered=True)

    def save_again(self) -> Job | None:
        """Retry writing the shown prediction to the register (after a failed write)."""
        pred = self.case.prediction
        if pred is None or pred.record is None or self.register is None:
            return None
        job = self.start_job("Save to register", save_record_job(self.register, pred), key="save")
        job.finished.connect(lambda rid: self._on_saved_again(pred, rid))
        return job

    def _on_saved_again(self, pred: CaseOutcome, record_id: int) -> None:
        pred.record_id = int(record_id)
        pred.record_error = None
        self.register_tab.refresh()
        self.statusBar().showMessage(f"Saved in the register as case {record_id}.", 8000)
        self._update_actions()
        self.stepDone.emit("saved")

    def open_case(self, prediction_id: int) -> Job | None:
        """Re-open a case from the register: its folder if still there, else the record alone."""
        register = self.register
        if register is None:
            return None
        job = self.start_job("Open case", lambda _p: records.read_case(register, prediction_id))
        job.finished.connect(self._show_case)
        return job

    def _show_case(self, case: records.RecordedCase) -> None:
        record = case.record
        folder = Path(record.source_folder) if record.source_folder else None

        def show_recorded(outcome: ImportOutcome | None = None) -> None:
            self.register_tab.mark_shown(case.case_id)  # reviewed now, if it never was
            key = record.study_uid
            if outcome is not None and key in {study_key(s) for _, s in iter_studies(outcome.scan)}:
                self.browser.select_study(key)
            self.case.recorded = case.result
            self.result_panel.set_result(case.result, None)
            # the model's threshold is not in the record: no line rather than a wrong one
            self.vote_strip.set_result([s.probability for s in case.result.slices],
                                       [s.label for s in case.result.slices],
                                       [s.votes for s in case.result.slices], None)
            self.tabs.setCurrentIndex(0)
            self.stepDone.emit("reopened")

        if folder is not None and folder.is_dir():
            self.import_folder(folder, then=show_recorded)
        else:
            self.case = CaseState()
            self.browser.clear()
            self.viewer.clear()
            show_recorded()
            self.statusBar().showMessage(
                f"Case {case.case_id}: the source folder {folder or '(unknown)'} is gone; "
                "showing the recorded result only.",
                10000,
            )

    def export_csv_dialog(self) -> None:
        """Export the register as CSV (pseudonymisation offered)."""
        self.register_tab.export_dialog()

    def cams_at(self, pair_index: int) -> dict[str, np.ndarray]:
        """phase → CAM of ``pair_index`` from the study's CAM result (empty when not computed)."""
        cam = self.case.cam
        if cam is None or pair_index not in cam.pair_indices:
            return {}
        return {phase: cam.map_for(phase, pair_index) for phase in cam.maps}

    def export_pdf(self, path: Path) -> Job | None:
        """Write the one-page PDF report of the case on view (in a worker); errors are shown."""
        from app.ui.report_pdf import case_report, strongest_responder_slice, write_case_report

        pred = self.case.prediction
        if pred is None:
            return None
        try:
            index = strongest_responder_slice(pred.result)
            report = case_report(
                pred.study, pred.result, self.cams_at(index), pred.model.description,
                pair_index=index,
                cam_scale=1.0,  # the maps are normalised by the study's global maximum
                case_id=pred.record_id,
                series_labels=self._series_labels(pred.study),
                warnings=pred.warnings)
        except HCCError as exc:
            dialogs.show_error(self, exc.message, exc.details or "")
            return None
        job = self.start_job("PDF report", lambda _p: write_case_report(path, report))
        job.finished.connect(self._pdf_written)
        return job

    def _series_labels(self, study: AssembledStudy) -> dict[str, str]:
        """phase → "#3 ART 5.0 B30f" for the report (series number and description)."""
        from app.ui.study_browser import series_label

        scan_study = self.browser.study(self.case.key or "")
        by_uid = {s.uid: series_label(s) for s in (scan_study.series if scan_study else [])}
        return {p: by_uid[uid] for p, uid in study.assignment.items() if uid in by_uid}

    def report_folder(self) -> Path:
        """Where the report's save dialog starts: the last report's folder, else Documents.

        Never the DICOM folder (issue 17, item 9): a report saved there mixes with the images
        and is often on a read-only medium.
        """
        if self._report_dir is not None:
            return self._report_dir
        docs = QtCore.QStandardPaths.writableLocation(QtCore.QStandardPaths.StandardLocation.DocumentsLocation)
        return Path(docs) if docs and Path(docs).is_dir() else Path.home()

    def export_pdf_dialog(self) -> None:
        """Ask for a file name and write the case report."""
        pred = self.case.prediction
        if pred is None:
            return
        name = f"hcc-response-{pred.study.patient_id or 'case'}-{pred.record_id or 'unsaved'}.pdf"
        start = str(self.report_folder() / name)
        dialog = QtWidgets.QFileDialog(self, "Export PDF report", start, "PDF (*.pdf)")
        dialog.setAcceptMode(QtWidgets.QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix("pdf")
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(lambda f: self.export_pdf(Path(f)))
        dialog.open()

    def _pdf_written(self, path: Path) -> None:
        self._report_dir = Path(path).parent
        self.statusBar().showMessage(f"Report written to {path}", 8000)
        self.stepDone.emit("report")
