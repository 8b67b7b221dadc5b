"""What Qt shows for a text: literal or rendered markup, the way a label or tooltip decides.

GUI tests of issue 14 (no HTML from DICOM files) compare what a widget *shows* with the text
from the file; this module renders a widget's text as Qt would, so that a test can neither pass
on an escaped string that Qt shows as "&lt;b&gt;" nor on markup that Qt renders.
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui


def shown_text(text: str, fmt: QtCore.Qt.TextFormat = QtCore.Qt.TextFormat.AutoText) -> str:
    """The characters a reader sees for ``text`` shown with format ``fmt``.

    AutoText follows Qt's own guess (``Qt.mightBeRichText``), as tooltips and labels do.
    Markup is rendered by ``QTextDocument`` (whitespace simplified, as Qt displays it).
    """
    rich = fmt == QtCore.Qt.TextFormat.RichText or (
        fmt == QtCore.Qt.TextFormat.AutoText and QtGui.Qt.mightBeRichText(text))
    if not rich:
        return text
    doc = QtGui.QTextDocument()
    doc.setHtml(text)
    return doc.toPlainText()


def rendered_images(text: str, fmt: QtCore.Qt.TextFormat = QtCore.Qt.TextFormat.AutoText) -> int:
    """How many images the markup of ``text`` would load (0 for plain text)."""
    rich = fmt == QtCore.Qt.TextFormat.RichText or (
        fmt == QtCore.Qt.TextFormat.AutoText and QtGui.Qt.mightBeRichText(text))
    if not rich:
        return 0
    doc = QtGui.QTextDocument()
    doc.setHtml(text)
    count = 0
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            if it.fragment().charFormat().isImageFormat():
                count += 1
            it += 1
        block = block.next()
    return count
