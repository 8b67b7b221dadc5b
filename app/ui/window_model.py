"""The main window's model and settings menus: the model's description, importing a site model,
the Settings dialog, About and Intended use.

A part of :class:`app.ui.main_window.MainWindow` (see :mod:`app.ui.window_base`),
kept apart so that the window's module holds the flow of a case and stays readable. Loading or
checking a model runs in a worker like every other long step; the register's audit entry for an
accepted model is written by a worker too.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtWidgets

from app import INTENDED_USE
from app.case.imports import importing
from app.progress import Progress
from app.settings import Settings
from app.ui import dialogs
from app.ui.plain import plain_tip
from app.ui.settings_dialog import SettingsDialog
from app.ui.window_base import WindowParts

if TYPE_CHECKING:  # pragma: no cover - typing only
    from app.inference.weights import LoadedModel
    from app.ui.workers import Job

log = logging.getLogger(__name__)


class ModelMenus(WindowParts):
    """Model description, model import, settings and help, for :class:`MainWindow`."""

    def _update_model_label(self) -> None:
        loaded = self.models.loaded
        if loaded is not None:
            desc = loaded.description
            self.model_label.setText(f"Model: {desc.name} [{loaded.sha256[:12]}]")
            self.model_label.setToolTip(plain_tip(f"{desc.name} {desc.version}\n{desc.weights_kind}\n"
                                                   f"SHA-256 {loaded.sha256}"))
        elif self.settings.model_path:
            self.model_label.setText(f"Model: {Path(self.settings.model_path).name} (loads on first prediction)")
        elif self._bundled is None:
            self.model_label.setText("Model: …")  # known once the engine is loaded (warm-up)
        elif isinstance(self._bundled, Path):
            self.model_label.setText(f"Model: bundled {self._bundled.name} (loads on first prediction)")
        else:
            self.model_label.setText("Model: none installed — random-initialised weights will be used")
        result = self.case.prediction.result if self.case.prediction else None
        if result is not None and result.device:
            kind = "GPU" if result.device.startswith("cuda") else "CPU"
            self.device_label.setText(f"{kind}: {result.device}"
                                      + (" (fallback to CPU)" if result.device_fallback else ""))
            self.device_label.setToolTip(plain_tip(result.device_reason))
        else:
            self.device_label.setText(f"Device: {self.settings.device}")

    def show_model_description(self) -> None:
        """Show the active model's description and hash (loads the model if needed)."""
        loaded = self.models.loaded
        if loaded is not None:
            self._show_description(loaded)
            return
        holder, choice = self.models, self.model_choice()
        job = self.start_job("Load model", lambda p: holder.get(choice, p), key="model")
        job.finished.connect(self._show_description)

    def _show_description(self, loaded: LoadedModel) -> None:
        self._update_model_label()
        dialog = dialogs.ModelDescriptionDialog(loaded.description, loaded.sha256,
                                                str(loaded.path or ""), self)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        self._last_dialog = dialog

    def import_model_dialog(self) -> None:
        """Ask for a .safetensors model file and check it (see :meth:`import_model`)."""
        dialog = QtWidgets.QFileDialog(self, "Import a model", str(Path.home()), "Model (*.safetensors)")
        dialog.setFileMode(QtWidgets.QFileDialog.FileMode.ExistingFile)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(lambda f: self.import_model(Path(f)))
        dialog.open()

    def import_model(self, path: Path) -> Job:
        """Check a site model (load on CPU: keys, shapes, NaN, hash), then offer to use it."""

        def check(progress: Progress) -> LoadedModel:
            with importing(progress):
                from app.inference.weights import load_model

            progress.update(0.1, f"checking {path.name}")
            return load_model(path, "cpu")

        job = self.start_job("Check model", check, key="model")
        job.finished.connect(lambda loaded: self._offer_imported_model(path, loaded))
        return job

    def _offer_imported_model(self, path: Path, loaded: LoadedModel) -> None:
        from app import model_history

        self._show_description(loaded)
        sha = loaded.sha256
        # a model that prepares the images differently is shown with the difference first
        change = model_history.compare(loaded)
        differs = ("\n\nIts preprocessing differs from the model used before "
                   f"({change.previous}):\n"
                   + "\n".join(f"• {d}" for d in change.differences)
                   if change is not None else "")

        def answered(use: bool) -> None:
            if use:
                self.use_model(path, sha)
                model_history.remember(loaded)

        dialogs.ask(
            self,
            f"Use the model {path.name} (SHA-256 {sha[:16]}…) for new predictions?{differs}",
            answered,
            yes="Use this model",
            no="Keep the current model",
        )

    def use_model(self, path: Path, sha256: str) -> Job | None:
        """Copy an accepted model into the user's models folder and make it active.

        Returns the job writing the audit entry to the register (None without a register).
        """
        from app.paths import models_dir

        target = models_dir() / path.name
        try:
            if path.resolve() != target.resolve():
                shutil.copy2(path, target)
                side = path.with_suffix(".json")
                if side.exists():
                    shutil.copy2(side, target.with_suffix(".json"))
        except OSError as exc:
            dialogs.show_error(self, f"The model could not be copied to {target}: {exc.strerror}")
            return None
        self._save_settings(model_path=str(target), model_sha256=sha256)
        self.models.forget()
        self._update_model_label()
        self.statusBar().showMessage(f"Model {path.name} is now active.", 8000)
        register = self.register
        if register is None:
            return None
        job = self.jobs.start("Log model import", lambda _p: register.log_event(
            "model_import", {"path": str(target), "sha256": sha256}))
        job.failed.connect(lambda msg, _d: log.warning("could not log the model import: %s", msg))
        return job

    def show_settings(self) -> None:
        """Open the Settings dialog; accepted changes go through :meth:`apply_settings`."""
        bundled = self._bundled if isinstance(self._bundled, Path) else None
        dialog = SettingsDialog(self.settings, self, bundled_model=bundled)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.importModelRequested.connect(self.import_model_dialog)
        dialog.accepted.connect(lambda: self.apply_settings(dialog.result_settings()))
        dialog.open()
        self._last_dialog = dialog

    def apply_settings(self, new: Settings) -> None:
        """Adopt new settings: reopen the register / forget the model where they changed."""
        old = self.settings
        self._save_settings(**{f.name: getattr(new, f.name) for f in dataclasses.fields(Settings)})
        if (old.model_path, old.model_sha256, old.device) != (new.model_path, new.model_sha256, new.device):
            self.models.forget()
        if old.register_path != new.register_path:
            if self.register is not None:
                self.register.close()
            self._open_register()
            self.register_tab.set_register(self.register)
            if self._register_error:
                dialogs.show_error(self, "The case register could not be opened.", self._register_error)
        if (old.register_path, old.register_backup) != (new.register_path, new.register_backup):
            # a new backup folder gets its first backup now: an unwritable share is found at once
            self.start_scheduled_backup()
        self._update_model_label()
        self._update_actions()

    def show_about(self) -> None:
        """The About box with versions, the active model and the register."""
        loaded = self.models.loaded
        extra = f"Model: {loaded.identity}" if loaded is not None else ""
        if self.register is not None:
            extra += f"\nRegister: {self.register.path}"
        dialog = dialogs.AboutDialog(self, extra.strip())
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        self._last_dialog = dialog

    def show_intended_use(self) -> None:
        """The intended-use notice."""
        dialogs.show_info(self, INTENDED_USE)  # message boxes are plain text
