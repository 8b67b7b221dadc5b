"""The main window. Minimal until the desktop-application issue lands."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtWidgets

from app import INTENDED_USE, __version__


class MainWindow(QtWidgets.QMainWindow):
    """Top-level window: menus, the study browser, the three viewers, the register."""

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle(f"HCC Response {__version__}")
        self.resize(1400, 900)
        label = QtWidgets.QLabel(
            "<h2>HCC Response</h2><p>Import a DICOM folder (File → Import).</p>"
            f"<p><i>{INTENDED_USE}</i></p>"
        )
        label.setWordWrap(True)
        self.setCentralWidget(label)
        self.statusBar().showMessage("Ready")

    def import_folder(self, folder: Path) -> None:
        self.statusBar().showMessage(f"Import of {folder} is not available yet")

    def offer_demo(self) -> None:
        self.statusBar().showMessage("Demo study not available yet")
