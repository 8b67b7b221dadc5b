"""What every part of the main window shares: its state, its widgets, and the job plumbing.

The main window is split by subject — the flow of a case (:mod:`app.ui.main_window`), the
register and report side (:mod:`app.ui.window_register`), the model and settings menus
(:mod:`app.ui.window_model`). Each part derives from :class:`WindowParts`, which declares the
attributes the window builds in ``__init__`` and implements the plumbing they all use, so that
each part is type-checked against the real window.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from PySide6 import QtCore, QtWidgets

from app.case.model import ModelChoice, ModelHolder
from app.settings import Settings, save_settings
from app.ui import dialogs
from app.ui.case_state import CaseState
from app.ui.workers import Job, JobFn, JobManager

if TYPE_CHECKING:  # pragma: no cover - typing only
    from app.register import Register
    from app.ui.jobs import ImportOutcome
    from app.ui.register_tab import RegisterTab
    from app.ui.result_panel import ResultPanel
    from app.ui.study_browser import StudyBrowser
    from app.ui.viewer_panel import ViewerPanel
    from app.ui.vote_strip import VoteStrip

log = logging.getLogger(__name__)


class WindowParts(QtWidgets.QMainWindow):
    """The main window's shared state and plumbing (see the module docstring)."""

    #: Emitted after each step of the flow, for tests and the screenshot script:
    #: "imported", "assembled", "predicted", "cam-slice", "cam-study", "saved", "demo",
    #: "reopened", "report", "warm".
    stepDone = QtCore.Signal(str)

    settings: Settings
    jobs: JobManager
    models: ModelHolder
    case: CaseState
    register: Register | None
    _register_error: str | None
    _closing: bool
    #: the bundled model file, False when none is installed, None until known
    _bundled: Path | Literal[False] | None
    _last_dialog: QtWidgets.QDialog | None
    _report_dir: Path | None

    browser: StudyBrowser
    viewer: ViewerPanel
    vote_strip: VoteStrip
    result_panel: ResultPanel
    register_tab: RegisterTab
    tabs: QtWidgets.QTabWidget
    welcome: QtWidgets.QFrame
    demo_button: QtWidgets.QPushButton
    model_label: QtWidgets.QLabel
    device_label: QtWidgets.QLabel

    def _save_settings(self, **changes: Any) -> None:
        """Apply changes to the settings and write them (a failure is logged, not fatal)."""
        self.settings = dataclasses.replace(self.settings, **changes)
        try:
            save_settings(self.settings)
        except OSError as exc:
            log.warning("could not save the settings: %s", exc)

    def model_choice(self) -> ModelChoice:
        """The model file, expected hash and device the settings ask for."""
        s = self.settings
        return ModelChoice(Path(s.model_path) if s.model_path else None, s.model_sha256, s.device,
                           random_if_missing=True)

    def start_job(self, name: str, fn: JobFn, key: str | None = None) -> Job:
        """Run ``fn(progress)`` in a worker; failures become an error dialog."""
        job = self.jobs.start(name, fn, key=key)
        job.failed.connect(lambda msg, details: self._on_job_failed(name, msg, details))
        job.done.connect(self._update_actions)
        self._update_actions()
        return job

    def _on_job_failed(self, name: str, message: str, details: str) -> None:
        if self._closing:
            return
        self.statusBar().showMessage(f"{name} failed: {message}", 8000)
        dialogs.show_error(self, message, details)

    def _update_actions(self) -> None:
        """Enable the actions that make sense now (the window implements it)."""
        raise NotImplementedError

    def _update_model_label(self) -> None:
        """Show the active model and device in the status bar (the model menus implement it)."""
        raise NotImplementedError

    def _open_register(self) -> None:
        """Open the register the settings name (the register side implements it)."""
        raise NotImplementedError

    def start_scheduled_backup(self) -> Job | None:
        """The automatic register backup when due (the register side implements it)."""
        raise NotImplementedError

    def import_folder(self, folder: Path, *,
                      then: Callable[[ImportOutcome], None] | None = None) -> Job:
        """Import a DICOM folder in the background (the window implements it)."""
        raise NotImplementedError
