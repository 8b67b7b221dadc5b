"""The Settings dialog: device, active model, register location.

It edits a copy of :class:`app.settings.Settings` and hands back the new one
(:meth:`SettingsDialog.result_settings`); the main window applies it (reopens the register,
forgets the loaded model). Choosing another model file goes through the main window's model
import (checked, its description and SHA-256 shown before use, RELIABILITY.md 17), so this
dialog only offers "Import model…" and "Use the bundled model".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from app.backup_policy import BackupPolicy
from app.dicomnet.errors import NodeConfigError
from app.paths import default_backup_dir, default_register_path
from app.settings import DEVICES, Settings
from app.ui.plain import esc, plain_label

DEVICE_TEXT = {
    "auto": "Automatic (GPU when it works, else CPU)",
    "cpu": "CPU",
    "cuda": "GPU (CUDA; falls back to CPU on trouble)",
}


def _path_row(edit: QtWidgets.QLineEdit, default: Path, browse: Callable[[], None]) -> QtWidgets.QHBoxLayout:
    """A path box showing the default location when empty, with its Browse… button."""
    edit.setPlaceholderText(str(default))
    row = QtWidgets.QHBoxLayout()
    row.addWidget(edit, 1)
    button = QtWidgets.QPushButton("Browse…")
    button.clicked.connect(browse)
    row.addWidget(button)
    return row


class SettingsDialog(QtWidgets.QDialog):
    """Edit device, model and register location; ``result_settings()`` after ``accepted``."""

    importModelRequested = QtCore.Signal()

    def __init__(
        self,
        settings: Settings,
        parent: QtWidgets.QWidget | None = None,
        *,
        bundled_model: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._bundled = bundled_model
        self._settings = settings
        self._model_path = settings.model_path
        self._model_sha = settings.model_sha256
        form = QtWidgets.QFormLayout(self)

        self.device = QtWidgets.QComboBox()
        for d in DEVICES:
            self.device.addItem(DEVICE_TEXT[d], d)
        self.device.setCurrentIndex(max(0, self.device.findData(settings.device)))
        form.addRow("Device:", self.device)

        model_box = QtWidgets.QWidget()
        ml = QtWidgets.QVBoxLayout(model_box)
        ml.setContentsMargins(0, 0, 0, 0)
        self.model_label = QtWidgets.QLabel()
        self.model_label.setWordWrap(True)
        self.model_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        ml.addWidget(self.model_label)
        row = QtWidgets.QHBoxLayout()
        self.bundled_button = QtWidgets.QPushButton("Use the bundled model")
        self.bundled_button.clicked.connect(self._use_bundled)
        row.addWidget(self.bundled_button)
        self.import_button = QtWidgets.QPushButton("Import model…")
        self.import_button.setToolTip("Check a .safetensors model, show its description and hash, then use it")
        self.import_button.clicked.connect(self._import_model)
        row.addWidget(self.import_button)
        row.addStretch(1)
        ml.addLayout(row)
        form.addRow("Model:", model_box)

        self.register_path = QtWidgets.QLineEdit(settings.register_path or "")
        form.addRow("Register:", _path_row(self.register_path, default_register_path(),
                                           self._browse_register))
        note = QtWidgets.QLabel(
            "<small>The register is a local SQLite file; a new path creates a new, empty "
            "register. Leave empty for the default location.</small>"
        )
        note.setWordWrap(True)
        form.addRow(note)
        form.addRow(self._backup_box(settings.register_backup))

        from app.ui.dicom_settings import DicomNetworkBox

        self.network_box = DicomNetworkBox(settings.dicom_network)
        form.addRow(self.network_box)
        self.error_label = plain_label(QtWidgets.QLabel())  # errors quote the model file
        self.error_label.setStyleSheet("color:#b00020;")
        self.error_label.setWordWrap(True)
        self.error_label.setVisible(False)
        form.addRow(self.error_label)

        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok
            | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self._update_model_label()
        self.resize(640, self.sizeHint().height())

    def _backup_box(self, policy: BackupPolicy) -> QtWidgets.QGroupBox:
        """Register backups: on/off, folder, how many kept, how often (:mod:`app.register.autobackup`)."""
        box = QtWidgets.QGroupBox("Register backups (automatic)")
        box.setCheckable(True)
        box.setChecked(policy.enabled)
        self.backup_box = box
        grid = QtWidgets.QFormLayout(box)
        self.backup_folder = QtWidgets.QLineEdit(policy.folder or "")
        grid.addRow("Folder:", _path_row(self.backup_folder, default_backup_dir(),
                                         self._browse_backup_folder))
        self.backup_keep = QtWidgets.QSpinBox()
        self.backup_keep.setRange(1, 1000)
        self.backup_keep.setSuffix(" backups")
        self.backup_keep.setValue(policy.keep)
        grid.addRow("Keep the last:", self.backup_keep)
        self.backup_hours = QtWidgets.QDoubleSpinBox()
        self.backup_hours.setRange(0.25, 24 * 365)
        self.backup_hours.setDecimals(2)
        self.backup_hours.setSuffix(" h")
        self.backup_hours.setValue(policy.interval_hours)
        grid.addRow("A new one after:", self.backup_hours)
        hint = QtWidgets.QLabel(
            "<small>Made with SQLite's backup API when the app starts and the last backup is "
            "older than that; the oldest beyond the number kept are removed. Better a folder on "
            "another disk or a network share that is itself backed up.</small>")
        hint.setWordWrap(True)
        grid.addRow(hint)
        return box

    def _browse_backup_folder(self) -> None:
        start = self.backup_folder.text() or str(default_backup_dir())
        dialog = QtWidgets.QFileDialog(self, "Register backup folder", start)
        dialog.setFileMode(QtWidgets.QFileDialog.FileMode.Directory)
        dialog.setOption(QtWidgets.QFileDialog.Option.ShowDirsOnly, True)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(self.backup_folder.setText)
        dialog.open()

    def _update_model_label(self) -> None:
        if self._model_path:
            sha = f"<br>SHA-256 <tt>{self._model_sha}</tt>" if self._model_sha else ""
            self.model_label.setText(f"Imported model <b>{esc(Path(self._model_path).name)}</b>{sha}")
        elif self._bundled is not None:
            self.model_label.setText("The bundled model (checked against its recorded SHA-256).")
        else:
            self.model_label.setText(
                "No trained model is installed: a <b>random-initialised</b> model is used (its "
                "results are meaningless) until one is imported."
            )
        self.bundled_button.setEnabled(self._model_path is not None)

    def _use_bundled(self) -> None:
        self._model_path = None
        self._model_sha = None
        self._update_model_label()

    def _import_model(self) -> None:
        # The main window checks the file and asks before using it; close this dialog first
        # so that the user sees one thing at a time.
        self.reject()
        self.importModelRequested.emit()

    def _browse_register(self) -> None:
        start = self.register_path.text() or str(default_register_path())
        dialog = QtWidgets.QFileDialog(self, "Register location", start, "Register (*.sqlite *.db)")
        dialog.setAcceptMode(QtWidgets.QFileDialog.AcceptMode.AcceptSave)
        dialog.setOption(QtWidgets.QFileDialog.Option.DontConfirmOverwrite, True)
        dialog.setDefaultSuffix("sqlite")
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(self.register_path.setText)
        dialog.open()

    def accept(self) -> None:
        """Close only with valid DICOM network settings; otherwise say what is wrong."""
        try:
            self.network_box.result()
        except NodeConfigError as exc:
            self.error_label.setText(exc.message)
            self.error_label.setVisible(True)
            return
        super().accept()

    def result_settings(self) -> Settings:
        """The settings as edited (unchanged fields kept)."""
        reg = self.register_path.text().strip() or None
        return dataclasses.replace(
            self._settings,
            device=str(self.device.currentData()),
            model_path=self._model_path,
            model_sha256=self._model_sha,
            register_path=reg,
            dicom_network=self.network_box.result(),
            register_backup=BackupPolicy(
                enabled=self.backup_box.isChecked(),
                folder=self.backup_folder.text().strip() or None,
                keep=self.backup_keep.value(),
                interval_hours=float(self.backup_hours.value()),
            ),
        )
