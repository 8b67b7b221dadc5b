"""Builds the QApplication and the main window (the one bootstrap of STYLE.md 9)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def run_gui(
    folder: Path | None = None,
    offer_demo: bool = True,
    exit_after: float | None = None,
    screenshot: Path | None = None,
) -> int:
    """Start the event loop with the main window; returns the exit status."""
    import pyqtgraph as pg
    from PySide6 import QtCore, QtWidgets

    from app import __version__

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("HCC Response")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("HCCResponse")

    from app.ui.main_window import MainWindow

    window = MainWindow()
    window.show()
    if folder is not None:
        window.import_folder(Path(folder))
    elif offer_demo:
        window.offer_demo()

    if exit_after is not None:

        def _finish() -> None:
            if screenshot is not None:
                window.grab().save(str(screenshot))
            window.close()
            app.quit()

        QtCore.QTimer.singleShot(int(exit_after * 1000), _finish)
    return int(app.exec())
