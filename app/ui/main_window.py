"""The main window: import → check the phases → predict → explain → record.

Layout: menus and a toolbar on top; on the left a dock with the :class:`StudyBrowser`
(patients → studies → series, per-phase assignment, confirmation banner); in the centre two
tabs, "Viewer" (three synchronised phase viewers, the per-slice vote strip, the result panel)
and "Register"; in the status bar the device, the model, the cursor position/HU, and the
running job's progress with a Cancel button.

What the window keeps is only *which* case is open (:class:`CaseState`); every long step is a
Qt-free function from :mod:`app.ui.jobs` run by the :class:`JobManager` in a worker thread, so
the event loop never stalls (RELIABILITY.md 29). Errors come back as data and are shown through
:mod:`app.ui.dialogs` (27); closing cancels and waits for the workers (28).

The flow of one case:

1. ``import_folder`` scans the folder and assembles its first study (one job, cancellable).
2. The browser shows the phases; a changed phase re-assembles with that override (one click
   per phase); a doubtful assignment must be confirmed before Predict is enabled.
3. ``predict`` loads the model once (cached), predicts, writes the register record (a failed
   write keeps the result on screen and offers "Save to register again").
4. Grad-CAM runs next: the slice in view first, then the whole study in the background.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtGui, QtWidgets

from app import PHASES, __version__
from app.case.flow import CaseOutcome, shown_warnings
from app.case.model import ModelHolder
from app.dicom.types import AssembledStudy
from app.errors import HCCError
from app.settings import Settings, load_settings
from app.ui import dialogs, jobs
from app.ui.case_state import CaseState
from app.ui.pacs_actions import PacsActions
from app.ui.plain import plain_label, plain_tip
from app.ui.register_tab import RegisterTab
from app.ui.study_browser import StudyBrowser
from app.ui.window_model import ModelMenus
from app.ui.window_register import RegisterActions
from app.ui.workers import Job, JobManager

if TYPE_CHECKING:  # pragma: no cover - typing only
    from app.inference.gradcam import CamResult
    from app.inference.result import PredictionResult

log = logging.getLogger(__name__)


class MainWindow(ModelMenus, RegisterActions, QtWidgets.QMainWindow):
    """Top-level window: menus, the study browser, the three viewers, the register."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or load_settings()
        self.jobs = JobManager(self)
        self.models = ModelHolder()
        self.case = CaseState()
        self.register = None
        self._register_error = None
        self._closing = False
        self._active_job: Job | None = None
        self._viewed = jobs.ViewedSlice()
        self._bundled = None
        self._cam_steps: set[str] = set()
        self._last_dialog = None
        self._report_dir: Path | None = None  # where the last PDF report went

        self.setWindowTitle(f"HCC Response {__version__}")
        self.setAcceptDrops(True)
        self.resize(1500, 920)
        self._open_register()
        self._build_actions()
        self._build_central()
        from app.ui.viewer_tools import ViewerTools

        self.tools = ViewerTools(self)  # coronal, tags, thumbnails, help (issue 17)
        self.viewer_tool_actions = self.tools.view_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_status()
        # Measurements and the crosshair report in their own label (a temporary status message
        # would hide the HU read-out next to it).
        self.measure_label = plain_label(QtWidgets.QLabel())
        self.statusBar().addWidget(self.measure_label, 1)
        self.viewer.measure.measured.connect(self.measure_label.setText)
        self.jobs.jobStarted.connect(self._on_job_started)
        self.jobs.busyChanged.connect(self._on_busy)
        self._restore_window_state()
        self._update_actions()
        self._update_model_label()
        # Import the engine (torch, pydicom...) in the background while the user looks around.
        self.warmup = self.jobs.start("Starting", jobs.warmup_job(), key="warmup")
        self.warmup.done.connect(self._on_warm)
        if self._register_error:
            QtCore.QTimer.singleShot(
                0,
                lambda: dialogs.show_error(
                    self,
                    "The case register could not be opened; predictions will not be recorded "
                    "until it is fixed (Settings → register location).",
                    self._register_error or "",
                ),
            )

    # ------------------------------------------------------------------------ construction
    def _action(self, text: str, slot: Callable[[], object], shortcut: str | None = None,
                icon: QtWidgets.QStyle.StandardPixmap | None = None, tip: str = "") -> QtGui.QAction:
        act = QtGui.QAction(text, self)
        if icon is not None:
            act.setIcon(self.style().standardIcon(icon))
        if shortcut:
            act.setShortcut(QtGui.QKeySequence(shortcut))
        if tip:
            act.setStatusTip(tip)
            act.setToolTip(tip)
        act.triggered.connect(lambda _checked=False: slot())
        return act

    def _build_actions(self) -> None:
        sp = QtWidgets.QStyle.StandardPixmap
        self.act_import = self._action("&Import folder…", self.import_folder_dialog, "Ctrl+O", sp.SP_DirOpenIcon, "Import a DICOM folder")
        self.act_demo = self._action("Open &demo study", self.open_demo, None, sp.SP_FileDialogContentsView, "Generate (once) and open a synthetic demo study")
        self.act_predict = self._action("&Predict", self.predict, "Ctrl+P", sp.SP_MediaPlay, "Predict the response for the study on view")
        self.act_cancel = self._action("Cancel", self.cancel_jobs, "Esc", sp.SP_BrowserStop, "Cancel the running job")
        self.act_pdf = self._action("Export PDF &report…", self.export_pdf_dialog, "Ctrl+E", None, "One-page PDF report of this case")
        self.act_csv = self._action("Export register &CSV…", self.export_csv_dialog)
        self.act_save_again = self._action("&Save to register again", self.save_again, None, None, "Retry writing the last prediction to the register")
        self.act_quit = self._action("&Quit", self.close, "Ctrl+Q")
        self.act_model = self._action("Model &description…", self.show_model_description)
        self.act_import_model = self._action("&Import model…", self.import_model_dialog)
        self.act_settings = self._action("&Settings…", self.show_settings)
        self.act_about = self._action("&About HCC Response", self.show_about)
        self.act_intended = self._action("&Intended use", self.show_intended_use)
        self.pacs = PacsActions(self)
        self.pacs.stepDone.connect(self.stepDone)
        self.act_cam = QtGui.QAction("Heatmap (Grad-CAM)", self)
        self.act_cam.setCheckable(True)
        self.act_cam.setChecked(True)
        self.act_cam.setShortcut(QtGui.QKeySequence("H"))
        self.act_cam.setToolTip("Show or hide the Grad-CAM heatmaps (H)")
        self.act_cam.toggled.connect(self.set_cam_visible)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        for act in (self.act_import, self.act_demo):
            file_menu.addAction(act)
        file_menu.addSeparator()
        file_menu.addAction(self.pacs.pacs_action)
        file_menu.addSeparator()
        for act in (self.act_pdf, self.pacs.export_action, self.pacs.send_action, self.act_csv,
                    self.act_save_again):
            file_menu.addAction(act)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)
        model_menu = bar.addMenu("&Model")
        model_menu.addAction(self.act_model)
        model_menu.addAction(self.act_import_model)
        view_menu = bar.addMenu("&View")
        view_menu.addAction(self.act_cam)
        view_menu.addActions(self.viewer.view_actions())
        view_menu.addSeparator()
        for act in self.viewer_tool_actions:
            view_menu.addAction(act)
        settings_menu = bar.addMenu("&Settings")
        settings_menu.addAction(self.act_settings)
        help_menu = bar.addMenu("&Help")
        help_menu.addActions(self.tools.help_actions())
        help_menu.addSeparator()
        help_menu.addAction(self.act_about)
        help_menu.addAction(self.act_intended)

    def _build_toolbar(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("mainToolbar")
        tb.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.addAction(self.act_import)
        tb.addAction(self.act_predict)
        # W/L and the Grad-CAM toggle live once, in the viewer's own toolbar (issue 17, item 6).
        tb.addSeparator()
        tb.addAction(self.act_pdf)

    def _build_central(self) -> None:
        from app.ui.result_panel import ResultPanel
        from app.ui.viewer_panel import ViewerPanel, link_vote_strip
        from app.ui.vote_strip import VoteStrip

        self.browser = StudyBrowser()
        self.browser.studySelected.connect(self._on_study_selected)
        self.browser.overrideRequested.connect(self.set_override)
        self.browser.confirmRequested.connect(self.confirm_assignment)
        dock = QtWidgets.QDockWidget("Studies", self)
        dock.setObjectName("studiesDock")
        dock.setWidget(self.browser)
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.resizeDocks([dock], [450], QtCore.Qt.Orientation.Horizontal)

        self.viewer = ViewerPanel()
        self.vote_strip = VoteStrip()
        link_vote_strip(self.viewer, self.vote_strip)
        self.viewer.camVisibleChanged.connect(self._sync_cam_action)
        self.viewer.pairIndexChanged.connect(self._on_pair_changed)
        self.result_panel = ResultPanel()

        self.welcome = QtWidgets.QFrame()
        self.welcome.setObjectName("welcome")
        self.welcome.setStyleSheet(
            "#welcome { background: #e8f1fb; border: 1px solid #8fb3de; border-radius: 4px; }"
            "#welcome QLabel { color: #12324f; }"
        )
        wl = QtWidgets.QHBoxLayout(self.welcome)
        self.welcome_text = QtWidgets.QLabel(
            "<b>Welcome to HCC Response.</b> No study is open. Try the demo study (a synthetic "
            "three-phase liver CT generated on this computer), or import a DICOM folder — "
            "drag it onto this window or use File → Import folder."
        )
        self.welcome_text.setWordWrap(True)
        wl.addWidget(self.welcome_text, 1)
        self.demo_button = QtWidgets.QPushButton("Open the demo study")
        self.demo_button.setDefault(True)
        self.demo_button.clicked.connect(self.open_demo)
        wl.addWidget(self.demo_button)
        import_button = QtWidgets.QPushButton("Import a folder…")
        import_button.clicked.connect(self.import_folder_dialog)
        wl.addWidget(import_button)
        self.welcome.hide()

        viewer_page = QtWidgets.QWidget()
        vl = QtWidgets.QVBoxLayout(viewer_page)
        vl.setContentsMargins(2, 2, 2, 2)
        vl.addWidget(self.welcome)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        left = QtWidgets.QWidget()
        ll = QtWidgets.QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.viewer, 1)
        ll.addWidget(self.vote_strip)
        split.addWidget(left)
        split.addWidget(self.result_panel)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        split.setSizes([1000, 340])
        vl.addWidget(split, 1)

        self.register_tab = RegisterTab(self.register, jobs=self.jobs)
        self.register_tab.openCase.connect(self.open_case)
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(viewer_page, "Viewer")
        self.tabs.addTab(self.register_tab, "Register")
        self.register_tab.unshownChanged.connect(self._on_unshown)
        self.setCentralWidget(self.tabs)

    def _on_unshown(self, count: int) -> None:
        """Point at cases recorded but never shown (a kill after recording; issue 14, item 9)."""
        index = self.tabs.indexOf(self.register_tab)
        self.tabs.setTabText(index, f"Register (⚠ {count} never shown)" if count else "Register")
        if count:
            self.statusBar().showMessage(
                f"⚠ {count} recorded prediction(s) were never shown: see the Register tab.", 15000)

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.cursor_label = plain_label(QtWidgets.QLabel())
        self.viewer.cursorInfo.connect(self.cursor_label.setText)
        sb.addWidget(self.cursor_label, 1)
        self.job_label = plain_label(QtWidgets.QLabel())  # progress texts quote file names
        sb.addPermanentWidget(self.job_label)
        self.progress_bar = QtWidgets.QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setMaximumWidth(220)
        self.progress_bar.setTextVisible(False)
        self.progress_bar.hide()
        sb.addPermanentWidget(self.progress_bar)
        self.cancel_button = QtWidgets.QToolButton()
        self.cancel_button.setDefaultAction(self.act_cancel)
        self.cancel_button.hide()
        sb.addPermanentWidget(self.cancel_button)
        self.device_label = plain_label(QtWidgets.QLabel())
        sb.addPermanentWidget(self.device_label)
        self.model_label = plain_label(QtWidgets.QLabel())  # model card names are file content
        sb.addPermanentWidget(self.model_label)

    def _on_warm(self) -> None:
        """The engine is imported: find out (cheaply now) whether a bundled model exists."""
        try:
            self._bundled = jobs.bundled_model_path() or False
        except ImportError:
            self._bundled = False
        self._update_model_label()
        self.stepDone.emit("warm")
        self.start_scheduled_backup()  # after the imports: the user is not waiting for it

    # ------------------------------------------------------------------------ settings/state
    def _restore_window_state(self) -> None:
        try:
            if self.settings.window_geometry:
                self.restoreGeometry(QtCore.QByteArray(base64.b64decode(self.settings.window_geometry)))
            if self.settings.window_state:
                self.restoreState(QtCore.QByteArray(base64.b64decode(self.settings.window_state)))
        except ValueError:
            log.warning("ignoring an unreadable saved window state")

    def _update_actions(self) -> None:
        busy_case = any(
            self.jobs.running(k) is not None for k in ("study", "predict", "demo")
        )
        study = self.case.study
        can_predict = bool(study and study.predictable) and not busy_case and not self.case.needs_confirmation()
        self.act_predict.setEnabled(can_predict)
        why = f"Prediction is off: {study.view_only_reason}" if study and study.view_only_reason else ""
        self.act_predict.setToolTip(plain_tip(why or "Predict the response for the study on view"))
        self.act_import.setEnabled(not busy_case)
        self.act_demo.setEnabled(not busy_case)
        self.demo_button.setEnabled(not busy_case)
        pred = self.case.prediction
        self.act_pdf.setEnabled(pred is not None)
        self.act_save_again.setEnabled(bool(pred and pred.record is not None and pred.record_id is None and self.register is not None))
        self.act_csv.setEnabled(self.register is not None)
        self.pacs.update_enabled(busy_case)

    # ------------------------------------------------------------------------ jobs plumbing
    def _on_job_started(self, job: Job) -> None:
        self._active_job = job
        job.progress.connect(self._on_progress)
        self.job_label.setText(job.name + "…")
        self.progress_bar.setValue(0)

    def _on_progress(self, fraction: float, text: str) -> None:
        self.progress_bar.setValue(int(fraction * 1000))
        if text:
            self.job_label.setText(text)

    def _on_busy(self, busy: bool) -> None:
        self.progress_bar.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.act_cancel.setEnabled(busy)
        if not busy:
            self.job_label.clear()
        self._update_actions()

    def cancel_jobs(self) -> None:
        """Cancel every running job (the Cancel button / Esc)."""
        self.jobs.cancel_all()
        self.statusBar().showMessage("Cancelling…", 3000)

    # ------------------------------------------------------------------------ import
    def import_folder_dialog(self) -> None:
        """Ask for a folder (non-blocking) and import it."""
        start = self.settings.last_folder or str(Path.home())
        dialog = QtWidgets.QFileDialog(self, "Import a DICOM folder", start)
        dialog.setFileMode(QtWidgets.QFileDialog.FileMode.Directory)
        dialog.setOption(QtWidgets.QFileDialog.Option.ShowDirsOnly, True)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(lambda f: self.import_folder(Path(f)))
        dialog.open()

    def import_folder(self, folder: Path, *,
                      then: Callable[[jobs.ImportOutcome], None] | None = None) -> Job:
        """Scan ``folder`` and assemble its first study in the background.

        ``then(outcome)`` runs after a successful import (used when re-opening a case).
        """
        folder = Path(folder)
        self.welcome.hide()
        self.statusBar().showMessage(f"Importing {folder}…")
        job = self.start_job("Import", jobs.import_job(folder), key="study")
        job.finished.connect(lambda outcome: self._on_imported(outcome, then))
        job.cancelled.connect(lambda: self.statusBar().showMessage("Import cancelled", 5000))
        return job

    def _on_imported(self, outcome: jobs.ImportOutcome,
                     then: Callable[[jobs.ImportOutcome], None] | None = None) -> None:
        self.jobs.cancel_all()  # any CAM/assembly of the previous case is now stale
        self.case = CaseState(
            folder=outcome.folder,
            scan=outcome.scan,
            key=outcome.key,
            assembled=dict(outcome.assembled),
            errors=dict(outcome.errors),
        )
        recent = self.settings.with_recent_folder(outcome.folder)
        self._save_settings(last_folder=recent.last_folder, recent_folders=recent.recent_folders)
        self.viewer.clear()
        self.vote_strip.clear()
        self.result_panel.clear()
        self.browser.set_scan(outcome.scan, select=outcome.key)
        self._show_current_study()
        self.statusBar().showMessage(f"Imported {outcome.folder}", 5000)
        self.stepDone.emit("imported")
        if then is not None:
            then(outcome)

    def _descriptions(self, study: AssembledStudy) -> dict[str, str]:
        scan_study = self.browser.study(self.case.key or "")
        series = scan_study.series if scan_study else []
        by_uid = {s.uid: s.description for s in series}
        by_uid.update({s.series_instance_uid: s.description for s in series})
        return {p: by_uid.get(uid, "") for p, uid in study.assignment.items()}

    def _show_current_study(self) -> None:
        key = self.case.key
        if key is None:
            return
        study = self.case.study
        error = self.case.errors.get(key)
        self.browser.set_assembly(key, study, error)
        if study is not None:
            self.browser.set_confirmation(
                study.confirmation_reasons if study.needs_confirmation else None,
                key in self.case.confirmed,
            )
            self.viewer.set_study(study, self._descriptions(study))
            self.tools.study_shown(study, self.browser.study(key))
            if study.view_only_reason:
                self.result_panel.show_unavailable(study.view_only_reason)
            self.setWindowTitle(
                f"HCC Response {__version__} — {study.patient_name or study.patient_id} "
                f"({study.study_date})"
            )
        else:
            self.browser.set_confirmation(None, False)
            self.viewer.clear()
        self._update_actions()

    def _on_study_selected(self, key: str) -> None:
        if key == self.case.key and (self.case.study is not None or key in self.case.errors):
            return
        self._drop_case_jobs()
        self.case.key = key
        self.case.prediction = None
        self.case.cam = None
        self.result_panel.clear()
        self.vote_strip.clear()
        if key in self.case.assembled or key in self.case.errors:
            self._show_current_study()
        else:
            self._assemble(key)

    def _assemble(self, key: str) -> None:
        study = self.browser.study(key)
        if study is None:
            return
        self.browser.set_assembly(key, None)
        self.viewer.clear()
        overrides = self.case.overrides.get(key, {})
        job = self.start_job("Assemble", jobs.assemble_job(study, overrides), key="study")
        job.finished.connect(lambda result: self._on_assembled(key, result))
        job.failed.connect(lambda msg, _d: self._on_assembly_failed(key, msg))

    def _on_assembled(self, key: str, study: AssembledStudy) -> None:
        self.case.assembled[key] = study
        self.case.errors.pop(key, None)
        if key == self.case.key:
            self._show_current_study()
        self.stepDone.emit("assembled")

    def _on_assembly_failed(self, key: str, message: str) -> None:
        self.case.errors[key] = message
        self.case.assembled.pop(key, None)
        if key == self.case.key:
            self._show_current_study()

    def _drop_case_jobs(self) -> None:
        """Cancel the prediction/Grad-CAM of a study the user is leaving or changing."""
        for key in ("predict", "cam"):
            job = self.jobs.running(key)
            if job is not None:
                job.cancel(stale=True)

    def set_override(self, phase: str, uid: str) -> None:
        """Use series ``uid`` for ``phase`` in the current study (re-assembles in a worker)."""
        key = self.case.key
        if key is None:
            return
        current = self.case.study.assignment.get(phase) if self.case.study else None
        if uid == current:
            return
        self._drop_case_jobs()
        self.case.overrides.setdefault(key, {})[phase] = uid
        self.case.confirmed.discard(key)
        self.case.prediction = None
        self.case.cam = None
        self.result_panel.clear()
        self.vote_strip.clear()
        self.case.assembled.pop(key, None)
        self._assemble(key)

    def confirm_assignment(self) -> None:
        """Ask the user to confirm a doubtful assignment (the banner's button)."""
        study = self.case.study
        key = self.case.key
        if study is None or key is None:
            return

        def answered(ok: bool) -> None:
            if ok and self.case.key == key:
                self.case.confirmed.add(key)
                self._show_current_study()

        dialogs.confirm_phases(self, list(study.confirmation_reasons), dict(study.assignment), answered)

    # ------------------------------------------------------------------------ demo
    def open_demo(self) -> Job:
        """Generate the demo study once (in a worker) and import it."""
        self.welcome.hide()
        self.statusBar().showMessage("Preparing the demo study…")
        job = self.start_job("Demo study", jobs.demo_job(), key="demo")
        job.finished.connect(self._on_demo_ready)
        return job

    def _on_demo_ready(self, folder: Path) -> None:
        self.stepDone.emit("demo")
        self.import_folder(Path(folder))

    # ------------------------------------------------------------------------ predict
    def predict(self) -> Job | None:
        """Predict the response for the study on view (model load + predict + record)."""
        study = self.case.study
        if study is None or not study.pairs:
            return None
        if self.case.needs_confirmation():
            self.confirm_assignment()
            return None
        self.jobs.cancel_all()  # a CAM of the previous prediction must not land on this one
        self.case.prediction = None
        self.case.cam = None
        self.viewer.clear_cams()
        self.vote_strip.clear()
        self.result_panel.set_busy("Predicting…")
        # the same list the command line shows: the assembly's warnings, the chosen series' own
        # (a gap, lossy compression, file warnings) and the files the scan rejected
        warnings = shown_warnings(self.case.scan, study) + (
            [f"Assignment confirmed by the user: {'; '.join(study.confirmation_reasons)}"]
            if study.needs_confirmation
            else []
        )
        fn = jobs.predict_job(
            study,
            self.models,
            self.model_choice(),
            self.register,
            source_folder=str(self.case.folder or ""),
            warnings_shown=warnings,
        )
        job = self.start_job("Predict", fn, key="predict")
        job.progress.connect(lambda f, t: self.result_panel.set_busy(f"{t or 'Predicting'}… {f * 100:.0f} %"))
        job.finished.connect(self._on_predicted)
        job.cancelled.connect(self._on_predict_stopped)
        job.failed.connect(lambda *_: self._on_predict_stopped())
        return job

    def _on_predict_stopped(self) -> None:
        self.result_panel.clear()
        self.statusBar().showMessage("Prediction stopped; nothing was recorded.", 6000)

    def _on_predicted(self, outcome: CaseOutcome) -> None:
        if outcome.study is not self.case.study:
            return  # the user moved on to another study meanwhile
        self.case.prediction = outcome
        self._cam_steps = set()
        result = outcome.result
        self.result_panel.set_result(result, outcome.model.description, outcome.warnings)
        if outcome.record_id is not None:  # on screen now: no longer "recorded, never shown"
            self.register_tab.mark_shown(outcome.record_id)
        self.pacs.on_new_result()
        slices = result.slices
        self.vote_strip.set_result([s.probability for s in slices], [s.label for s in slices],
                                   [s.votes for s in slices], outcome.model.config.threshold)
        self._update_model_label()
        self.register_tab.refresh()
        if outcome.record_id is not None:
            self.register_tab.select_id(outcome.record_id)
            self.statusBar().showMessage(f"Prediction recorded in the register as case {outcome.record_id}.", 8000)
        elif outcome.record_error:
            dialogs.show_error(
                self,
                "The prediction is shown but was NOT saved in the register: "
                f"{outcome.record_error}. Use File → Save to register again once the problem "
                "is fixed.",
            )
        self._update_actions()
        self._show_a_voting_slice(result)
        self.stepDone.emit("predicted")
        self._start_cam(outcome)

    def _show_a_voting_slice(self, result: PredictionResult) -> None:
        """Move the viewer to the key slice when the slice on screen took no part in the vote.

        A lesion-head model draws heat maps only on the slices in which it sees tumour (those
        that vote); the viewer opens mid-liver, which for the demo study and model 2026.6 was a
        tumour-free slice: the first prediction showed "not used by the model" and no heat at
        all. A reader already on a voting slice stays where they are."""
        here = self.viewer.pair_index()
        key = result.key_slice()
        if key is not None and not (0 <= here < len(result.slices) and result.slices[here].votes):
            self.viewer.set_pair_index(key)

    # ------------------------------------------------------------------------ Grad-CAM
    def _start_cam(self, outcome: CaseOutcome) -> None:
        first = max(self.viewer.pair_index(), 0)
        self._viewed.index = first
        fn = jobs.cam_job(outcome.study, self.models, outcome.model, first, self._viewed)
        job = self.start_job("Grad-CAM", fn, key="cam")
        job.partial.connect(lambda sc: self._on_cam_slice(outcome, sc))
        job.finished.connect(lambda cam: self._on_cam_study(outcome, cam))

    def _on_cam_slice(self, outcome: CaseOutcome, sc: jobs.SliceCam) -> None:
        if outcome is not self.case.prediction:
            return
        if sc.global_max:
            self.viewer.set_cam_scale(sc.global_max)
        for phase, cam in sc.cams.items():
            self.viewer.set_cam(phase, cam, sc.pair_index)
        if "cam-slice" not in self._cam_steps:
            self._cam_steps.add("cam-slice")
            self.stepDone.emit("cam-slice")

    def _on_cam_study(self, outcome: CaseOutcome, cam: CamResult) -> None:
        if outcome is not self.case.prediction:
            return
        self.case.cam = cam
        # CamResult maps are already divided by the study's global maximum: scale 0..1.
        self.viewer.set_cam_cache(jobs.cams_by_pair(cam, len(outcome.study.pairs)), 1.0, cam.shown)
        self.stepDone.emit("cam-study")

    def set_cam_visible(self, visible: bool) -> None:
        """Show or hide the Grad-CAM heatmaps (toolbar toggle, H)."""
        self.viewer.set_cam_visible(visible)

    def _sync_cam_action(self, visible: bool) -> None:
        if self.act_cam.isChecked() != visible:
            self.act_cam.setChecked(visible)

    def _on_pair_changed(self, index: int) -> None:
        # The Grad-CAM job explains the levels around this one next (it reads it between passes).
        self._viewed.index = max(int(index), 0)

    # ------------------------------------------------------------------------ drag and drop
    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:  # noqa: N802
        if self._dropped_folder(event.mimeData()) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:  # noqa: N802
        folder = self._dropped_folder(event.mimeData())
        if folder is not None:
            event.acceptProposedAction()
            self.import_folder(folder)

    @staticmethod
    def _dropped_folder(mime: QtCore.QMimeData) -> Path | None:
        for url in mime.urls() if mime.hasUrls() else []:
            if url.isLocalFile():
                path = Path(url.toLocalFile())
                return path if path.is_dir() else path.parent
        return None

    # ------------------------------------------------------------------------ closing
    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802
        """Cancel and wait for the workers (bounded), save the window state, close the register."""
        self._closing = True
        if not self.jobs.shutdown(5000):
            log.error("some background jobs did not stop in time")
        self._save_settings(
            window_geometry=base64.b64encode(bytes(self.saveGeometry().data())).decode("ascii"),
            window_state=base64.b64encode(bytes(self.saveState().data())).decode("ascii"),
        )
        if self.register is not None:
            try:
                self.register.close()
            except HCCError:
                log.warning("closing the register failed", exc_info=True)
        super().closeEvent(event)


__all__ = ["MainWindow", "CaseState", "PHASES"]
