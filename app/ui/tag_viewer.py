"""DICOM tag viewer for the slice on view or any series of the study (issue 17).

What a reader opens to check what the scanner wrote: contrast tags, timing, kernel, geometry.
The header of one file is read with pydicom (``stop_before_pixels``: a few milliseconds, so on
the UI thread) and shown as a tree — tag, keyword, VR, value — with sequences as children and a
filter on any of the columns. Values are plain text in item cells (no rich text: a DICOM string
is data, never markup), long values cut at :data:`MAX_VALUE_CHARS` with the full value in the
tooltip; pixel data and other binary values show their size only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtWidgets

from app.errors import InputError
from app.ui.plain import plain_tip

MAX_VALUE_CHARS = 160
BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}


@dataclass(frozen=True)
class TagRow:
    """One data element as shown: ``(gggg,eeee)``, keyword, VR, value text, children."""

    tag: str
    keyword: str
    vr: str
    value: str
    children: tuple[TagRow, ...] = ()


def read_tags(path: Path) -> list[TagRow]:
    """The header of ``path`` as rows (file meta first), pixel data left out.

    Raises
    ------
    InputError
        The file cannot be read as DICOM (gone since the import, or damaged).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    except (OSError, InvalidDicomError) as exc:
        raise InputError(f"cannot read the DICOM header of {path}: {exc}") from exc
    rows = [_row(el) for el in ds.file_meta] if getattr(ds, "file_meta", None) else []
    return rows + [_row(el) for el in ds]


def _row(el: Any) -> TagRow:
    tag = f"({el.tag.group:04X},{el.tag.element:04X})"
    keyword = el.keyword or el.name
    if el.VR == "SQ":
        children = tuple(
            TagRow(f"item {i + 1}", "", "", "", tuple(_row(sub) for sub in item))
            for i, item in enumerate(el.value)
        )
        return TagRow(tag, keyword, "SQ", f"{len(el.value)} item(s)", children)
    if el.VR in BINARY_VRS:
        size = len(el.value) if el.value is not None else 0
        return TagRow(tag, keyword, el.VR, f"<{size} bytes>")
    value = "" if el.value is None else str(el.value)
    return TagRow(tag, keyword, el.VR, value)


class TagViewer(QtWidgets.QDialog):
    """Non-modal dialog: ``show_file(path, title)`` lists a file's tags; the filter narrows."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("DICOM tags")
        self.title = QtWidgets.QLabel()
        self.title.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.title.setWordWrap(True)
        self.filter = QtWidgets.QLineEdit()
        self.filter.setPlaceholderText("Filter (tag, keyword or value), e.g. Contrast or 0018")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._apply_filter)
        self.tree = QtWidgets.QTreeWidget()
        self.tree.setHeaderLabels(["Tag", "Keyword", "VR", "Value"])
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        for col in range(3):
            header.setSectionResizeMode(col, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.filter)
        layout.addWidget(self.tree, 1)
        self.resize(760, 640)

    def show_file(self, path: Path, title: str = "") -> None:
        """List the tags of ``path`` (raises :class:`InputError` when it cannot be read)."""
        rows = read_tags(Path(path))
        self.title.setText(f"{title}\n{path}" if title else str(path))
        self.tree.clear()
        for row in rows:
            self.tree.addTopLevelItem(_item(row))
        self._apply_filter(self.filter.text())

    def rows_text(self) -> list[str]:
        """Visible top-level rows as "tag keyword VR value" (for tests)."""
        out = []
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item is not None and not item.isHidden():
                out.append(" ".join(item.text(c) for c in range(4)))
        return out

    def _apply_filter(self, text: str) -> None:
        needle = text.strip().lower()
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item is not None:
                item.setHidden(bool(needle) and not _matches(item, needle))


def _item(row: TagRow) -> QtWidgets.QTreeWidgetItem:
    shown = row.value if len(row.value) <= MAX_VALUE_CHARS else row.value[:MAX_VALUE_CHARS] + " …"
    item = QtWidgets.QTreeWidgetItem([row.tag, row.keyword, row.vr, shown])
    if shown != row.value:
        item.setToolTip(3, plain_tip(row.value[:4000]))
    for child in row.children:
        item.addChild(_item(child))
    return item


def _matches(item: QtWidgets.QTreeWidgetItem, needle: str) -> bool:
    if any(needle in item.text(c).lower() for c in range(4)):
        return True
    return any(_matches(item.child(i), needle) for i in range(item.childCount()))  # type: ignore[arg-type]


__all__ = ["TagRow", "TagViewer", "read_tags"]
