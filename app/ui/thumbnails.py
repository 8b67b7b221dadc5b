"""Series thumbnail strip: every series of the study at a glance (issue 17).

One small picture per series (its middle slice, abdomen window) with its number, description
and phase call; the series in a pane are marked. A right click offers "Show in the … pane"
(the same override as the study browser's phase combos, so any series — a delayed phase, a
thin recon — can be viewed) and "DICOM tags…". Series already loaded in a pane get their picture
from that volume (no file read: the import → predict → Grad-CAM path decodes nothing more,
bench/ui_heartbeat.py); the others are decoded in a worker (:func:`thumbnail_job`, one file
per series), so a study with many series never blocks the UI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app import PHASES
from app.dicom.types import SeriesInfo
from app.progress import Progress
from app.ui.plain import plain_tip
from app.ui.windowing import DEFAULT_WINDOW

THUMB_PX = 84
ROLE_UID = QtCore.Qt.ItemDataRole.UserRole
ROLE_HAS_IMAGE = QtCore.Qt.ItemDataRole.UserRole + 1


def thumbnail(hu_slice: np.ndarray) -> np.ndarray:
    """A ``THUMB_PX`` grey uint8 picture of one HU slice (abdomen window)."""
    import cv2

    lo, hi = DEFAULT_WINDOW.levels
    grey = np.clip((np.asarray(hu_slice, dtype=np.float32) - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)
    h, w = grey.shape
    scale = THUMB_PX / max(h, w)
    return cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def thumbnail_job(series: Sequence[SeriesInfo]) -> Callable[[Progress], dict[str, np.ndarray]]:
    """A job decoding the middle slice of each series into a ``THUMB_PX`` grey uint8 picture.

    A series that cannot be decoded gets no picture (its item keeps the placeholder); the
    error surfaces when the series is loaded for viewing.
    """
    chosen = list(series)

    def run(progress: Progress) -> dict[str, np.ndarray]:
        from app.dicom.errors import DicomError
        from app.dicom.volume import load_volume

        out: dict[str, np.ndarray] = {}
        for k, s in enumerate(chosen):
            progress.check()
            progress.update(k / max(len(chosen), 1), f"thumbnail of series {s.series_number}")
            if not s.instances:
                continue
            try:
                vol = load_volume(s, indices=[len(s.instances) // 2], workers=1)
            except DicomError:
                continue
            out[s.uid] = thumbnail(vol.hu[0])
        progress.update(1.0, "thumbnails")
        return out

    return run


class ThumbnailStrip(QtWidgets.QListWidget):
    """A horizontal strip of series pictures.

    Signals
    -------
    showInPane(str, str)
        (phase, series uid): "Show in the … pane" was chosen.
    tagsRequested(str)
        The series' tags were asked for.
    """

    showInPane = QtCore.Signal(str, str)
    tagsRequested = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QtWidgets.QListView.ViewMode.IconMode)
        self.setFlow(QtWidgets.QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QtWidgets.QListView.Movement.Static)
        self.setIconSize(QtCore.QSize(THUMB_PX, THUMB_PX))
        self.setGridSize(QtCore.QSize(THUMB_PX + 60, THUMB_PX + 44))
        self.setWordWrap(True)
        self.setFixedHeight(THUMB_PX + 62)
        self.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self.itemDoubleClicked.connect(lambda item: self.tagsRequested.emit(item.data(ROLE_UID)))
        self._items: dict[str, QtWidgets.QListWidgetItem] = {}

    def set_series(self, series: Sequence[SeriesInfo], assignment: Mapping[str, str]) -> None:
        """List ``series`` (placeholders until :meth:`set_images`); mark those in a pane."""
        self.clear()
        self._items.clear()
        in_pane = {uid: phase for phase, uid in assignment.items()}
        for s in series:
            number = f"#{s.series_number} " if s.series_number is not None else ""
            call = s.phase_call.phase if s.phase_call is not None else "?"
            text = f"{number}{s.description or '(no description)'}\n{call} · {s.n_slices} sl"
            if s.uid in in_pane:
                text = f"▶ {in_pane[s.uid]}: {text}"
            item = QtWidgets.QListWidgetItem(_placeholder(), text)
            item.setData(ROLE_UID, s.uid)
            item.setToolTip(plain_tip(text + f"\n{s.uid}\nRight click: show in a pane, DICOM tags"))
            item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignHCenter)
            self.addItem(item)
            self._items[s.uid] = item

    def set_images(self, images: Mapping[str, np.ndarray]) -> None:
        """Put the decoded pictures on their items (unknown uids ignored)."""
        for uid, grey in images.items():
            item = self._items.get(uid)
            if item is not None:
                item.setIcon(QtGui.QIcon(QtGui.QPixmap.fromImage(_qimage(grey))))
                item.setData(ROLE_HAS_IMAGE, True)

    def uids(self) -> list[str]:
        return list(self._items)

    def has_image(self, uid: str) -> bool:
        item = self._items.get(uid)
        return bool(item is not None and item.data(ROLE_HAS_IMAGE))

    def series_menu(self, uid: str) -> QtWidgets.QMenu:
        """The context menu of series ``uid``."""
        menu = QtWidgets.QMenu(self)
        for phase in PHASES:
            act = menu.addAction(f"Show in the {phase} pane")
            act.triggered.connect(lambda _c=False, p=phase: self.showInPane.emit(p, uid))
        menu.addSeparator()
        tags = menu.addAction("DICOM tags…")
        tags.triggered.connect(lambda _c=False: self.tagsRequested.emit(uid))
        return menu

    def _menu(self, pos: QtCore.QPoint) -> None:
        item = self.itemAt(pos)
        if item is None:
            return
        menu = self.series_menu(item.data(ROLE_UID))
        menu.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(self.viewport().mapToGlobal(pos))


def _qimage(grey: np.ndarray) -> QtGui.QImage:
    grey = np.ascontiguousarray(grey, dtype=np.uint8)
    h, w = grey.shape
    return QtGui.QImage(grey.data, w, h, w, QtGui.QImage.Format.Format_Grayscale8).copy()


def _placeholder() -> QtGui.QIcon:
    pix = QtGui.QPixmap(THUMB_PX, THUMB_PX)
    pix.fill(QtGui.QColor(30, 30, 30))
    return QtGui.QIcon(pix)


__all__ = ["ThumbnailStrip", "thumbnail_job"]
