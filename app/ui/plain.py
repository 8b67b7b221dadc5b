"""Text from DICOM files is shown as text, never as markup (issue 14, item 4).

Qt guesses whether a label's text, a tooltip or a message box's text is HTML
(``Qt::mightBeRichText``: a tag-like word on the first line is enough). A series description
such as ``<img src=...>`` or ``<h1 style="color:red">RESPONDER 99%</h1>`` was therefore rendered:
an image loaded from disk, a red headline in an error dialog. Every widget that shows text which
may come from a file (descriptions, patient names and IDs, institution, error messages quoting
them, model cards) uses these helpers:

* :func:`plain_label` — a ``QLabel`` (or message box) whose text is always plain;
* :func:`plain_tip` — a tooltip that shows its text literally: converted to rich text with every
  character escaped, so Qt's guess cannot go wrong either way (an escaped text that Qt took for
  plain would show ``&lt;`` literally);
* :func:`esc` — escape a piece of text going into markup that the app writes itself.

Tree, list, table and combo items draw their text plainly; only their tooltips need care.
"""

from __future__ import annotations

import html
from typing import TypeVar

from PySide6 import QtCore, QtGui, QtWidgets

_W = TypeVar("_W", QtWidgets.QLabel, QtWidgets.QMessageBox)


def esc(text: object) -> str:
    """``text`` escaped for markup written by the app (quotes included)."""
    return html.escape(str(text), quote=True)


def plain_tip(text: str) -> str:
    """A tooltip that Qt shows as the literal ``text`` (line breaks kept); "" stays ""."""
    if not text:
        return ""
    return QtGui.Qt.convertFromPlainText(text, QtCore.Qt.WhiteSpaceMode.WhiteSpaceNormal)


def plain_label(widget: _W) -> _W:
    """Make ``widget`` show its text as plain text, whatever it contains; returns it."""
    widget.setTextFormat(QtCore.Qt.TextFormat.PlainText)
    return widget
