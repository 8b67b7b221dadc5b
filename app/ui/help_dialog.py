"""Help: the keyboard and mouse page and the user guide, inside the app (issue 17).

The shortcuts page is generated from the window's own actions (every ``QAction`` with a
shortcut, its menu text and key), plus the mouse gestures of the viewers that are not actions,
so it cannot drift from what the keys really do. The user guide is ``docs/user-guide.md``,
rendered with Qt's Markdown support; in a frozen bundle it travels in ``docs/`` next to
``resources/`` (packaging/hcc-response.spec).
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6 import QtGui, QtWidgets

from app.paths import resources_dir

#: Viewer gestures that are not actions (mouse), in the order a new user needs them.
MOUSE_GESTURES: tuple[tuple[str, str], ...] = (
    ("Wheel / ↑ ↓", "previous / next slice (all three phases together)"),
    ("Page Up / Page Down", "ten slices"),
    ("Home / End", "first / last slice"),
    ("Ctrl + wheel", "zoom (linked across the phases)"),
    ("Left drag", "pan, or measure with the tool chosen (distance, ellipse, rectangle)"),
    ("Left click (crosshair tool)", "set the reference position on all panes"),
    ("Right drag", "window/level: right-left = width, up-down = level"),
    ("Mouse over an image", "position, HU (and Grad-CAM value) in the status bar"),
    ("Right click on a series (browser, thumbnails)", "show it in a pane; DICOM tags"),
)


def user_guide_path() -> Path:
    """``docs/user-guide.md`` of the source tree or of the frozen bundle."""
    return resources_dir().parent / "docs" / "user-guide.md"


def shortcut_rows(window: QtWidgets.QWidget) -> list[tuple[str, str]]:
    """(key, what it does) for every action of ``window`` that has a shortcut, sorted by text."""
    rows: dict[tuple[str, str], None] = {}
    for act in window.findChildren(QtGui.QAction):
        key = act.shortcut().toString(QtGui.QKeySequence.SequenceFormat.NativeText)
        if key:
            rows[(key, act.text().replace("&", "").rstrip("…").strip())] = None
    return sorted(rows, key=lambda r: r[1].lower())


def shortcuts_html(window: QtWidgets.QWidget) -> str:
    """The keyboard and mouse page."""
    def table(rows: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> str:
        cells = "".join(
            f"<tr><td style='padding-right:16px'><b>{html.escape(k)}</b></td><td>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        return f"<table cellspacing='2'>{cells}</table>"

    return (
        "<h3>Keyboard</h3>" + table(shortcut_rows(window))
        + "<h3>Mouse</h3>" + table(MOUSE_GESTURES)
    )


class HelpDialog(QtWidgets.QDialog):
    """Two tabs: "Keyboard and mouse" and "User guide"."""

    def __init__(self, window: QtWidgets.QWidget, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent or window)
        self.setWindowTitle("HCC Response help")
        self.tabs = QtWidgets.QTabWidget()
        self.shortcuts = QtWidgets.QTextBrowser()
        self.shortcuts.setHtml(shortcuts_html(window))
        self.tabs.addTab(self.shortcuts, "Keyboard and mouse")
        self.guide = QtWidgets.QTextBrowser()
        self.guide.setOpenExternalLinks(False)
        path = user_guide_path()
        try:
            self.guide.setMarkdown(path.read_text(encoding="utf-8"))
        except OSError as exc:
            self.guide.setPlainText(f"The user guide ({path}) could not be read: {exc.strerror}")
        self.tabs.addTab(self.guide, "User guide")
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(buttons)
        self.resize(720, 680)

    def show_tab(self, name: str) -> None:
        """Bring the "shortcuts" or "guide" tab to the front."""
        self.tabs.setCurrentWidget(self.guide if name == "guide" else self.shortcuts)


__all__ = ["HelpDialog", "MOUSE_GESTURES", "shortcut_rows", "shortcuts_html", "user_guide_path"]
