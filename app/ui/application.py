"""Builds the QApplication and the main window (the one bootstrap of STYLE.md 9).

``run_gui`` sets pyqtgraph's row-major image order, creates the application, installs the
exception hook (an exception escaping a Qt slot is logged and shown in a dialog, never a
crash: RELIABILITY.md 27), shows the main window and imports the folder given on the command
line or offers the demo study on a first start.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

_previous_hook: Any = None


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """Log an uncaught exception (typically raised in a slot) and show it; keep running."""
    if issubclass(exc_type, KeyboardInterrupt):
        if _previous_hook is not None:
            _previous_hook(exc_type, exc, tb)
        return
    details = "".join(traceback.format_exception(exc_type, exc, tb))
    log.error("uncaught exception in the GUI:\n%s", details)
    try:
        from PySide6 import QtWidgets

        from app.errors import HCCError
        from app.ui import dialogs

        if QtWidgets.QApplication.instance() is None:
            return
        message = exc.message if isinstance(exc, HCCError) else f"Unexpected error: {exc_type.__name__}: {exc}"
        dialogs.show_error(QtWidgets.QApplication.activeWindow(), message, details)
    except Exception:  # the hook itself must never raise: log and give up on the dialog
        log.exception("could not show the error dialog")


def install_excepthook() -> None:
    """Route uncaught exceptions (slots included: PySide6 reports them via sys.excepthook)."""
    global _previous_hook
    if sys.excepthook is not _excepthook:
        _previous_hook = sys.excepthook
        sys.excepthook = _excepthook


def configure_pyqtgraph() -> None:
    """pyqtgraph options the viewers rely on (row-major images: ``[row, col]`` = ``[y, x]``)."""
    import pyqtgraph as pg

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)


def run_gui(
    folder: Path | None = None,
    offer_demo: bool = True,
    exit_after: float | None = None,
    screenshot: Path | None = None,
) -> int:
    """Start the event loop with the main window; returns the exit status.

    Parameters
    ----------
    folder:
        A DICOM folder to import at start.
    offer_demo:
        Offer the demo study when started without a folder (first start / empty register).
    exit_after:
        Quit after this many seconds (smoke tests, start-up timing, packaging checks).
    screenshot:
        With ``exit_after``: save a picture of the window just before quitting.
    """
    from app.platform_check import require_platform

    # Before the QApplication: a missing xcb library makes Qt abort the process with a bare
    # message; this raises InputError (exit code 2) with the packages to install instead.
    require_platform()

    from PySide6 import QtCore, QtWidgets

    from app import __version__

    configure_pyqtgraph()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("HCC Response")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("HCCResponse")
    install_excepthook()

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
    status = int(app.exec())
    # A job busy with one long step when the window closed stops at its next check; wait for
    # it so that no thread is destroyed while running (RELIABILITY.md 28).
    if not window.jobs.wait_all(60_000):
        log.error("background jobs still running at exit")
    return status
