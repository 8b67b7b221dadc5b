"""Measurements on the phase viewers: distance, elliptical/rectangular ROI, crosshair.

What a hepatologist does in Weasis or RadiAnt to check a lesion (issue 17): draw an ROI on the
lesion and read its mean ± SD HU in the plain, arterial and portal phase — arterial
enhancement and portal washout are the LI-RADS hallmarks of HCC — and measure its diameter.

Decisions:

- **Millimetres, linked across phases.** A measurement is stored once, in patient x/y (mm),
  and drawn on all three panes at the same position; each pane computes its statistics on
  its *own* slice at the shared table position. Drawing it once in one phase and reading it in
  three is the point (the phases share a frame of reference; the viewers are linked in mm).
- **Statistics from the acquired pixels** whose centres lie inside the shape (no resampling),
  on the HU array of the :class:`~app.dicom.types.Volume`; the area shown is the drawn
  shape's (π·a·b or w·h), like the workstations, and the pixel count is kept for the reader.
- **Cheap on scroll** (the viewer's p95 ≤ 30 ms, bench/ui_viewer_speed.py): the graphics items
  are made once per measurement and pane; a scroll only recomputes the statistics on the
  bounding box of each ROI and sets a label's text.
- Tools are modes of the viewers' left mouse button ("navigate" = pan); the right button stays
  W/L and the wheel stays slice scrolling whatever the tool.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.ui.viewer import PhaseViewer, SliceGeometry

#: The left-button modes, in toolbar order, with their hot keys and toolbar text.
TOOLS: dict[str, tuple[str, str]] = {
    "navigate": ("N", "Pan"),
    "distance": ("D", "Distance"),
    "ellipse": ("E", "Ellipse ROI"),
    "rectangle": ("R", "Rectangle ROI"),
    "crosshair": ("X", "Crosshair"),
}

MEASURE_COLOR = QtGui.QColor("#ffd166")
CROSSHAIR_COLOR = QtGui.QColor("#4fc3f7")
#: Drags shorter than this (mm) are clicks, not measurements.
MIN_SIZE_MM = 0.5


@dataclass(frozen=True)
class Measurement:
    """One distance or ROI in patient millimetres (x to the right, y towards posterior).

    ``(x0, y0)`` is where the drag started and ``(x1, y1)`` where it ended; for an ROI they
    are opposite corners of its bounding box.
    """

    kind: str
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def length_mm(self) -> float:
        """Length of the line (a distance) or of the box's diagonal."""
        return math.hypot(self.x1 - self.x0, self.y1 - self.y0)

    @property
    def box(self) -> tuple[float, float, float, float]:
        """``(left, top, right, bottom)`` in mm."""
        return (min(self.x0, self.x1), min(self.y0, self.y1), max(self.x0, self.x1), max(self.y0, self.y1))

    @property
    def area_mm2(self) -> float:
        """Area of the drawn shape (0 for a distance)."""
        left, top, right, bottom = self.box
        w, h = right - left, bottom - top
        if self.kind == "ellipse":
            return math.pi * w * h / 4.0
        if self.kind == "rectangle":
            return w * h
        return 0.0

    @property
    def is_roi(self) -> bool:
        return self.kind in ("ellipse", "rectangle")


@dataclass(frozen=True)
class RoiStats:
    """HU statistics of an ROI on one slice."""

    mean: float
    sd: float
    n_pixels: int
    area_mm2: float

    def text(self) -> str:
        """``"87 ± 12 HU · 3.14 cm²"``."""
        return f"{self.mean:.0f} ± {self.sd:.0f} HU · {self.area_mm2 / 100.0:.2f} cm²"


def roi_stats(hu_slice: np.ndarray, geometry: SliceGeometry, m: Measurement) -> RoiStats | None:
    """Mean ± SD HU of the acquired pixels whose centres lie inside ROI ``m`` (None: no pixel).

    Works on the acquired array (rows × cols as stored), mapping pixel centres to mm with the
    same geometry the viewer draws with, so flipped series are measured where they are shown.
    """
    if not m.is_roi:
        return None
    left, top, right, bottom = m.box
    cols = np.arange(geometry.cols)
    rows = np.arange(geometry.rows)
    dc = geometry.cols - 1 - cols if geometry.flip_cols else cols
    dr = geometry.rows - 1 - rows if geometry.flip_rows else rows
    xs = geometry.x0 + (dc + 0.5) * geometry.col_mm
    ys = geometry.y0 + (dr + 0.5) * geometry.row_mm
    col_sel = np.flatnonzero((xs >= left) & (xs <= right))
    row_sel = np.flatnonzero((ys >= top) & (ys <= bottom))
    if col_sel.size == 0 or row_sel.size == 0:
        return None
    values = hu_slice[np.ix_(row_sel, col_sel)].astype(np.float64)
    if m.kind == "ellipse":
        cx, cy = (left + right) / 2.0, (top + bottom) / 2.0
        a, b = max((right - left) / 2.0, 1e-9), max((bottom - top) / 2.0, 1e-9)
        inside = ((xs[col_sel][None, :] - cx) / a) ** 2 + ((ys[row_sel][:, None] - cy) / b) ** 2 <= 1.0
        values = values[inside]
    else:
        values = values.ravel()
    if values.size == 0:
        return None
    return RoiStats(float(values.mean()), float(values.std()), int(values.size), m.area_mm2)


class _PaneItems:
    """The graphics items of one measurement on one pane: the shape and its label."""

    def __init__(self, view: pg.ViewBox, m: Measurement) -> None:
        pen = QtGui.QPen(MEASURE_COLOR)
        pen.setCosmetic(True)  # 2 screen pixels at any zoom
        pen.setWidthF(2.0)
        self.shape: QtWidgets.QGraphicsItem
        if m.kind == "distance":
            self.shape = QtWidgets.QGraphicsLineItem()
        elif m.kind == "ellipse":
            self.shape = QtWidgets.QGraphicsEllipseItem()
        else:
            self.shape = QtWidgets.QGraphicsRectItem()
        self.shape.setPen(pen)  # type: ignore[attr-defined]
        self.shape.setZValue(20)
        self.label = pg.TextItem(color=MEASURE_COLOR, anchor=(0, 1), fill=pg.mkBrush(0, 0, 0, 150))
        self.label.setZValue(21)
        view.addItem(self.shape)
        view.addItem(self.label)
        self.view = view
        self._text = ""
        self.place(m)

    def place(self, m: Measurement) -> None:
        if isinstance(self.shape, QtWidgets.QGraphicsLineItem):
            self.shape.setLine(m.x0, m.y0, m.x1, m.y1)
        else:
            left, top, right, bottom = m.box
            self.shape.setRect(QtCore.QRectF(left, top, right - left, bottom - top))  # type: ignore[attr-defined]
        left, top, right, _bottom = m.box
        self.label.setPos(right if m.kind == "distance" else left, top)

    def set_text(self, text: str) -> None:
        """Set the label's text; unchanged text is not set again (a text item re-lays itself
        out and repaints on every ``setText``, and most scrolls change few labels)."""
        if text != self._text:
            self._text = text
            self.label.setText(text)

    def remove(self) -> None:
        self.view.removeItem(self.shape)
        self.view.removeItem(self.label)


class _Crosshair:
    """A reference position on one pane: a vertical and a horizontal line."""

    def __init__(self, view: pg.ViewBox) -> None:
        pen = pg.mkPen(CROSSHAIR_COLOR, width=1, style=QtCore.Qt.PenStyle.DashLine)
        self.lines = (pg.InfiniteLine(angle=90, pen=pen, movable=False),
                      pg.InfiniteLine(angle=0, pen=pen, movable=False))
        for line in self.lines:
            line.setZValue(19)
            line.setVisible(False)
            view.addItem(line)

    def set(self, point: tuple[float, float] | None) -> None:
        for line in self.lines:
            line.setVisible(point is not None)
        if point is not None:
            self.lines[0].setValue(point[0])
            self.lines[1].setValue(point[1])


class MeasureController(QtCore.QObject):
    """Measurements and the crosshair of a set of linked phase viewers.

    The :class:`~app.ui.viewer_panel.ViewerPanel` owns one and calls :meth:`refresh` when the
    slices change. Signals: ``toolChanged(str)``; ``measured(str)``, a one-line summary of the
    last measurement or reference point across phases for the status bar; ``referenceChanged``
    with the crosshair's (x, y) in mm (the coronal view follows it).
    """

    toolChanged = QtCore.Signal(str)
    measured = QtCore.Signal(str)
    referenceChanged = QtCore.Signal(float, float)

    def __init__(self, viewers: Mapping[str, PhaseViewer], parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.viewers = dict(viewers)
        self._tool = "navigate"
        self._measurements: list[Measurement] = []
        self._items: list[dict[str, _PaneItems]] = []
        self._draft: Measurement | None = None
        self._draft_items: dict[str, _PaneItems] | None = None
        self._reference: tuple[float, float] | None = None
        self._cross = {phase: _Crosshair(v.view) for phase, v in self.viewers.items()}
        for viewer in self.viewers.values():
            viewer.view.sigToolDrag.connect(self._dragged)
            viewer.view.sigToolClick.connect(self._clicked)

    # -- state ---------------------------------------------------------------------------------
    def tool(self) -> str:
        return self._tool

    def set_tool(self, tool: str) -> None:
        """Choose the left-button mode (a key of :data:`TOOLS`)."""
        if tool not in TOOLS:
            raise KeyError(f"no tool {tool!r}; known: {list(TOOLS)}")
        self._tool = tool
        for viewer in self.viewers.values():
            viewer.view.tool = tool
            viewer.setCursor(
                QtCore.Qt.CursorShape.ArrowCursor if tool == "navigate" else QtCore.Qt.CursorShape.CrossCursor
            )
        self.toolChanged.emit(tool)

    def measurements(self) -> list[Measurement]:
        return list(self._measurements)

    def reference(self) -> tuple[float, float] | None:
        """The crosshair's (x, y) in mm, None when not set."""
        return self._reference

    def add(self, m: Measurement) -> None:
        """Add a measurement (drawn on every pane) and report it."""
        self._measurements.append(m)
        self._items.append({p: _PaneItems(v.view, m) for p, v in self.viewers.items()})
        self._update_labels(len(self._measurements) - 1)
        self.measured.emit(self.summary(m))

    def clear(self) -> None:
        """Remove every measurement and the crosshair."""
        for items in self._items:
            for pane in items.values():
                pane.remove()
        self._items.clear()
        self._measurements.clear()
        self._drop_draft()
        self.set_reference(None)

    def set_reference(self, point: tuple[float, float] | None) -> None:
        """Set (or with None remove) the crosshair at patient (x, y) mm on every pane."""
        self._reference = point
        for cross in self._cross.values():
            cross.set(point)
        if point is not None:
            self.referenceChanged.emit(point[0], point[1])
            self.measured.emit(self.reference_text())

    # -- read-outs -------------------------------------------------------------------------------
    def stats(self, phase: str, index: int) -> RoiStats | None:
        """Statistics of measurement ``index`` on ``phase``'s slice on view."""
        viewer = self.viewers[phase]
        volume, geometry, z = viewer.volume, viewer.geometry_mm, viewer.current_index()
        if volume is None or geometry is None or z is None:
            return None
        return roi_stats(volume.hu[z], geometry, self._measurements[index])

    def label_text(self, phase: str, index: int) -> str:
        """The label drawn on ``phase``'s pane for measurement ``index``."""
        m = self._measurements[index]
        if m.kind == "distance":
            return f"{m.length_mm:.1f} mm"
        st = self.stats(phase, index)
        return st.text() if st is not None else "outside the image"

    def summary(self, m: Measurement) -> str:
        """One line across the phases, e.g. for an ROI:
        ``"Ellipse ROI 3.14 cm²: plain 45 ± 9 · arterial 121 ± 14 · portal 98 ± 11 HU"``."""
        if m.kind == "distance":
            return f"Distance {m.length_mm:.1f} mm"
        index = self._measurements.index(m)
        parts = []
        for phase in self.viewers:
            st = self.stats(phase, index)
            if st is not None:
                parts.append(f"{phase} {st.mean:.0f} ± {st.sd:.0f}")
        title = TOOLS[m.kind][1]
        return f"{title} {m.area_mm2 / 100.0:.2f} cm²: " + (" · ".join(parts) + " HU" if parts else "no pixels")

    def reference_text(self) -> str:
        """``"Reference (12.0, -40.5) mm: plain 45 HU · arterial 120 HU · portal 98 HU"``."""
        if self._reference is None:
            return ""
        x, y = self._reference
        parts = []
        for phase, viewer in self.viewers.items():
            geometry, volume, z = viewer.geometry_mm, viewer.volume, viewer.current_index()
            hit = geometry.pixel_at(x, y) if geometry is not None else None
            if hit is not None and volume is not None and z is not None:
                parts.append(f"{phase} {float(volume.hu[z, hit[0], hit[1]]):.0f} HU")
        return f"Reference ({x:.1f}, {y:.1f}) mm: " + (" · ".join(parts) or "outside the images")

    def refresh(self) -> None:
        """Recompute the labels after the slices changed (cheap: bounding boxes only)."""
        for i in range(len(self._measurements)):
            self._update_labels(i)
        if self._reference is not None:
            self.measured.emit(self.reference_text())

    # -- gestures -------------------------------------------------------------------------------
    def _dragged(self, start: QtCore.QPointF, now: QtCore.QPointF, stage: str) -> None:
        if self._tool == "crosshair":
            self.set_reference((now.x(), now.y()))
            return
        if self._tool not in ("distance", "ellipse", "rectangle"):
            return
        m = Measurement(self._tool, start.x(), start.y(), now.x(), now.y())
        if stage == "finish":
            self._drop_draft()
            if m.length_mm >= MIN_SIZE_MM:
                self.add(m)
            return
        if self._draft_items is None:
            self._draft_items = {p: _PaneItems(v.view, m) for p, v in self.viewers.items()}
        for pane in self._draft_items.values():
            pane.place(m)
            pane.set_text(f"{m.length_mm:.1f} mm" if m.kind == "distance" else "")
        self._draft = m

    def _clicked(self, point: QtCore.QPointF) -> None:
        if self._tool == "crosshair":
            self.set_reference((point.x(), point.y()))

    def _drop_draft(self) -> None:
        if self._draft_items is not None:
            for pane in self._draft_items.values():
                pane.remove()
        self._draft_items = None
        self._draft = None

    def _update_labels(self, index: int) -> None:
        for phase, pane in self._items[index].items():
            pane.set_text(self.label_text(phase, index))


__all__ = ["TOOLS", "Measurement", "MeasureController", "RoiStats", "roi_stats"]
