"""One phase viewer: a CT slice on pyqtgraph with corner texts, W/L drag and a CAM layer.

:class:`PhaseViewer` shows one slice of one :class:`~app.dicom.types.Volume` in millimetres
(patient x to the right, anterior up), like the viewers of a radiology workstation: black
background, the phase and series in the top-left corner, slice position top-right, the window
bottom-left. It owns no scroll state; :class:`app.ui.viewer_panel.ViewerPanel` owns the shared
position and tells each viewer which slice to show. User gestures leave the viewer as signals:

- ``stepRequested(int)``: wheel or arrow keys asked for ±n slices,
- ``jumpRequested(str)``: Home / End,
- ``windowDragged(float, float, bool)``: right-drag by (dx, dy) screen pixels since the drag
  started; the bool is True at the start of a drag,
- ``cursorInfo(str)``: "arterial  z = -123.5 mm  (120, 87)  HU = 87" under the mouse.

Rendering a slice is cheap by design (RELIABILITY 29): the two ``ImageItem`` objects are made
once, ``setImage`` gets a view into the volume with fixed levels (``autoLevels=False``), and
nothing is precomputed on the UI thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.dicom.types import Volume
from app.ui.cam_overlay import CamOverlay
from app.ui.windowing import DEFAULT_WINDOW, WindowLevel

# One place that guarantees the orientation contract even when a widget is built without the
# application bootstrap (tests, a designer preview): row-major = arrays are [row, column].
pg.setConfigOptions(imageAxisOrder="row-major")

BACKGROUND = "#000000"
TEXT_COLOR = "#e6e6e6"
ACCENT_COLOR = "#ffd166"
#: Largest share of a viewer's width a corner text may take before it wraps.
CORNER_WIDTH_SHARE = 0.4


@dataclass(frozen=True)
class SliceGeometry:
    """Where a volume's slices lie on screen, in millimetres of the patient's x/y.

    The viewer draws every phase in patient coordinates (not pixel indices) so that volumes
    with different matrices, spacings or fields of view still line up anatomically and zoom/pan
    can be linked between viewers in mm.

    Attributes
    ----------
    x0, y0:
        Patient x and y (mm) of the displayed image's top-left corner (the pixel edge, not
        its centre).
    col_mm, row_mm:
        Column spacing (x) and row spacing (y) in mm.
    rows, cols:
        Matrix size.
    flip_cols, flip_rows:
        True when the series' row/column direction points towards -x / -y; the displayed
        slice is then mirrored so that patient left is always on screen right and anterior
        always up (radiological convention), whatever the scanner wrote.
    """

    x0: float
    y0: float
    col_mm: float
    row_mm: float
    rows: int
    cols: int
    flip_cols: bool = False
    flip_rows: bool = False

    @classmethod
    def of(cls, volume: Volume) -> SliceGeometry:
        """Geometry of ``volume``'s slices from its origin, spacing and direction.

        Assumes an axial series (the intended use): the row direction is along ±x and the
        column direction along ±y. Oblique in-plane rotation is not resampled (a few degrees of
        rotation would only make the mm read-out approximate, never wrong by more than that).
        """
        rows, cols = int(volume.hu.shape[1]), int(volume.hu.shape[2])
        row_mm, col_mm = (float(s) for s in volume.pixel_spacing)
        direction = np.asarray(volume.direction, dtype=float).reshape(3, 3)
        flip_cols = bool(direction[0][0] < 0)  # columns run towards patient right (-x)
        flip_rows = bool(direction[1][1] < 0)  # rows run towards anterior (-y)
        ox, oy = float(volume.origin[0]), float(volume.origin[1])
        # ``origin`` is the centre of pixel (0, 0); the image rectangle starts half a pixel
        # before it. A flipped axis starts at the far end of the acquired range.
        x0 = (ox - (cols - 1) * col_mm if flip_cols else ox) - col_mm / 2
        y0 = (oy - (rows - 1) * row_mm if flip_rows else oy) - row_mm / 2
        return cls(x0, y0, col_mm, row_mm, rows, cols, flip_cols, flip_rows)

    @property
    def rect(self) -> QtCore.QRectF:
        """The image rectangle in mm for ``ImageItem.setRect``."""
        return QtCore.QRectF(self.x0, self.y0, self.cols * self.col_mm, self.rows * self.row_mm)

    @property
    def flips(self) -> tuple[bool, bool]:
        return (self.flip_cols, self.flip_rows)

    def display(self, image: np.ndarray) -> np.ndarray:
        """``image`` (rows × cols, acquisition order) as displayed (a view; no copy)."""
        if self.flip_cols:
            image = image[:, ::-1]
        if self.flip_rows:
            image = image[::-1, :]
        return image

    def pixel_at(self, x_mm: float, y_mm: float) -> tuple[int, int] | None:
        """``(row, col)`` of the acquired pixel under patient position (x, y), or None outside."""
        c = int(np.floor((x_mm - self.x0) / self.col_mm))
        r = int(np.floor((y_mm - self.y0) / self.row_mm))
        if not (0 <= r < self.rows and 0 <= c < self.cols):
            return None
        if self.flip_cols:
            c = self.cols - 1 - c
        if self.flip_rows:
            r = self.rows - 1 - r
        return r, c

    def centre_mm(self, row: int, col: int) -> tuple[float, float]:
        """Patient (x, y) of the centre of acquired pixel (row, col); inverse of :meth:`pixel_at`."""
        dc = self.cols - 1 - col if self.flip_cols else col
        dr = self.rows - 1 - row if self.flip_rows else row
        return (self.x0 + (dc + 0.5) * self.col_mm, self.y0 + (dr + 0.5) * self.row_mm)


class SliceViewBox(pg.ViewBox):
    """A ViewBox with the gestures of a DICOM viewer.

    Left drag pans (pyqtgraph's default), Ctrl+wheel zooms, a plain wheel asks for the next or
    previous slice, and a right drag changes the window instead of zooming. The context menu
    is off: a right click starts W/L, and the toolbar has every action the menu would offer.
    """

    sigWheelStep = QtCore.Signal(int)
    sigWindowDrag = QtCore.Signal(float, float, bool)
    #: A left drag with a measuring tool: (start, now) in mm, stage "start" / "move" / "finish".
    sigToolDrag = QtCore.Signal(QtCore.QPointF, QtCore.QPointF, str)
    #: A left click with a measuring tool (the crosshair): the point in mm.
    sigToolClick = QtCore.Signal(QtCore.QPointF)

    def __init__(self) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.setBackgroundColor(BACKGROUND)
        self._wheel_rest = 0
        #: "navigate" (left drag pans) or a tool of :mod:`app.ui.measure` (left drag measures).
        self.tool = "navigate"

    def wheelEvent(self, ev: QtWidgets.QGraphicsSceneWheelEvent, axis: int | None = None) -> None:  # noqa: N802
        if ev.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        # One slice per wheel notch (120 units). Touchpads send many small deltas; adding them
        # up keeps a gentle swipe from racing through the whole study.
        self._wheel_rest += ev.delta()
        steps = int(self._wheel_rest / 120)
        if steps:
            self._wheel_rest -= steps * 120
            self.sigWheelStep.emit(steps)
        ev.accept()

    def mouseDragEvent(self, ev: object, axis: int | None = None) -> None:  # noqa: N802
        button = ev.button()  # type: ignore[attr-defined]
        if button == QtCore.Qt.MouseButton.RightButton:
            ev.accept()  # type: ignore[attr-defined]
            start = ev.buttonDownScreenPos(button)  # type: ignore[attr-defined]
            now = ev.screenPos()  # type: ignore[attr-defined]
            self.sigWindowDrag.emit(
                float(now.x() - start.x()), float(now.y() - start.y()), bool(ev.isStart())  # type: ignore[attr-defined]
            )
            return
        if button == QtCore.Qt.MouseButton.LeftButton and self.tool != "navigate":
            ev.accept()  # type: ignore[attr-defined]
            start = self.mapSceneToView(ev.buttonDownScenePos(button))  # type: ignore[attr-defined]
            now = self.mapSceneToView(ev.scenePos())  # type: ignore[attr-defined]
            stage = "start" if ev.isStart() else "finish" if ev.isFinish() else "move"  # type: ignore[attr-defined]
            self.sigToolDrag.emit(start, now, stage)
            return
        super().mouseDragEvent(ev, axis)

    def mouseClickEvent(self, ev: object) -> None:  # noqa: N802
        if ev.button() == QtCore.Qt.MouseButton.LeftButton and self.tool != "navigate":  # type: ignore[attr-defined]
            ev.accept()  # type: ignore[attr-defined]
            self.sigToolClick.emit(self.mapSceneToView(ev.scenePos()))  # type: ignore[attr-defined]
            return
        super().mouseClickEvent(ev)


class PhaseViewer(pg.GraphicsLayoutWidget):
    """Viewer of one contrast phase.

    Parameters
    ----------
    phase:
        ``"plain"``, ``"arterial"`` or ``"portal"``; shown in the corner and in the cursor text.
    parent:
        Qt parent.

    Usage
    -----
    ``set_volume(volume, description)`` once per study, then ``show_slice(index)`` on every
    scroll, ``set_window(wl)`` on W/L changes, ``set_cam(array | None)`` when a CAM for the
    current slice is (or is not) available. ``image_item``, ``view`` and ``cam`` are public so
    that tests and the panel can inspect them.
    """

    stepRequested = QtCore.Signal(int)
    jumpRequested = QtCore.Signal(str)
    windowDragged = QtCore.Signal(float, float, bool)
    cursorInfo = QtCore.Signal(str)

    def __init__(self, phase: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent=parent)
        self.phase = phase
        self.setBackground(BACKGROUND)
        self.ci.setContentsMargins(0, 0, 0, 0)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(160, 160)
        self.set_smooth(True)

        self.view = SliceViewBox()
        self.addItem(self.view)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.image_item.setZValue(0)
        self.view.addItem(self.image_item)
        self.cam = CamOverlay(self.view)

        self._volume: Volume | None = None
        self._geometry: SliceGeometry | None = None
        self._cam_data: np.ndarray | None = None
        self._index: int | None = None
        self._window: WindowLevel = DEFAULT_WINDOW
        self._description = ""
        self._note = ""
        self._inverted = False
        #: Patient (x, y) mm under the mouse while it is over this viewer: the HU read-out is
        #: refreshed there when the slice changes under a still mouse (wheel scrolling).
        self._hover_mm: tuple[float, float] | None = None

        # Corner texts are children of the ViewBox itself (not of its scene-scaled child
        # group), so they stay fixed in screen pixels while the image zooms and pans.
        self._corners = {key: self._make_corner() for key in ("tl", "tr", "bl", "br")}
        self._corner_html: dict[str, str] = {}
        self._natural_width: dict[str, float] = {}
        # Orientation letters at the edges: the display is always radiological (patient right
        # on screen left, anterior up) whatever the series' direction cosines, see SliceGeometry.
        self._empty = self._make_corner()
        self._empty.setHtml("<span style='color:#8a8a8a'>no series assigned to this phase</span>")
        self._edges = {key: self._make_corner() for key in ("R", "L", "A", "P")}
        for letter, item in self._edges.items():
            item.setHtml(f"<span style='color:#9a9a9a'>{letter}</span>")
            item.setVisible(False)
        self.view.sigResized.connect(self._place_corners)

        self.view.sigWheelStep.connect(self.stepRequested)
        self.view.sigWindowDrag.connect(self.windowDragged)
        self.scene().sigMouseMoved.connect(self._mouse_moved)
        self._update_corners()

    # -- public API ------------------------------------------------------------------
    @property
    def volume(self) -> Volume | None:
        """The volume shown (None before :meth:`set_volume`)."""
        return self._volume

    @property
    def geometry_mm(self) -> SliceGeometry | None:
        """Display geometry of the current volume in mm."""
        return self._geometry

    def set_smooth(self, smooth: bool) -> None:
        """Bilinear (True) or nearest-neighbour (False) magnification of the slice on screen.

        Smooth is what radiology workstations show by default; nearest-neighbour shows the
        acquired pixels as blocks (useful when checking a single pixel's HU).
        """
        self.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, bool(smooth))
        self.viewport().update()

    def smooth(self) -> bool:
        """True when the slice is magnified bilinearly."""
        return bool(self.renderHints() & QtGui.QPainter.RenderHint.SmoothPixmapTransform)

    def current_index(self) -> int | None:
        """Index (into the volume) of the slice on screen, None when empty."""
        return self._index

    def window_level(self) -> WindowLevel:
        """The window/level in use."""
        return self._window

    def set_volume(self, volume: Volume | None, description: str = "") -> None:
        """Show ``volume`` (None clears the viewer); resets the view to fit the slice."""
        self._volume = volume
        self._description = description
        self._note = ""  # a note of the previous study must not linger on an empty pane
        self._index = None
        self._cam_data = None
        self.cam.set_cam(None, QtCore.QRectF(), (False, False))
        if volume is None or volume.n_slices == 0:
            self._geometry = None
            self.image_item.clear()
            self._update_corners()
            self._place_corners()
            return
        self._geometry = SliceGeometry.of(volume)
        self.show_slice(volume.n_slices // 2)
        self._place_corners()
        self.reset_view()

    def show_slice(self, index: int, note: str = "") -> None:
        """Display slice ``index`` of the volume (clamped); ``note`` goes to a corner.

        Cheap: a view into the HU array, fixed levels, the same ImageItem.
        """
        if self._volume is None or self._geometry is None:
            return
        index = min(max(int(index), 0), self._volume.n_slices - 1)
        self._note = note
        if index != self._index:
            self._index = index
            data = self._geometry.display(self._volume.hu[index])
            self.image_item.setImage(data, autoLevels=False, levels=self._window.levels)
            self.image_item.setRect(self._geometry.rect)
            if self._hover_mm is not None:
                text = self.info_at(*self._hover_mm)
                if text is not None:
                    self.cursorInfo.emit(text)
        self._update_corners()

    def set_inverted(self, inverted: bool) -> None:
        """Show the grey scale inverted (white = low HU), as radiologists use for fine lines."""
        self._inverted = bool(inverted)
        self.image_item.setLookupTable(INVERTED_LUT if self._inverted else None)
        self._update_corners()

    def inverted(self) -> bool:
        """True while the grey scale is inverted."""
        return self._inverted

    def leaveEvent(self, ev: QtCore.QEvent) -> None:  # noqa: N802
        self._hover_mm = None
        super().leaveEvent(ev)

    def set_window(self, window: WindowLevel) -> None:
        """Apply a window/level: only the levels change, the image data stays."""
        self._window = window
        self.image_item.setLevels(window.levels)
        self._update_corners()

    def set_cam(self, cam: np.ndarray | None) -> None:
        """Overlay ``cam`` (rows × cols of the current slice, raw CAM values) or remove it.

        Raises
        ------
        ValueError
            When the CAM's shape differs from the slice's (it would be drawn misregistered).
        """
        if cam is not None and self._geometry is not None:
            expected = (self._geometry.rows, self._geometry.cols)
            if tuple(np.shape(cam)) != expected:
                raise ValueError(
                    f"{self.phase}: CAM shape {np.shape(cam)} does not match the slice {expected}"
                )
        if self._geometry is None:
            cam = None
        if cam is not None:
            # NaN/Inf from a degenerate gradient would poison the colour lookup; they mean
            # "no activation".
            cam = np.nan_to_num(np.asarray(cam, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        self._cam_data = cam
        rect = self._geometry.rect if self._geometry is not None else QtCore.QRectF()
        flips = self._geometry.flips if self._geometry is not None else (False, False)
        self.cam.set_cam(cam, rect, flips)
        self._update_corners()

    def reset_view(self) -> None:
        """Fit the whole slice into the viewer."""
        if self._geometry is not None:
            self.view.setRange(rect=self._geometry.rect, padding=0.0)

    def info_at(self, x_mm: float, y_mm: float) -> str | None:
        """Status text for patient position (x, y) on the current slice, None outside it.

        Format: ``"arterial  z = -123.5 mm  (col 120, row 87)  HU = 87"`` — the pixel
        indices are those of the acquired image, so they can be checked in any DICOM tool.
        While a Grad-CAM is shown, ``"  CAM = 0.83"`` follows: the activation on the overlay's
        scale (1 = the study's strongest), so a reader can compare regions and slices.
        """
        if self._volume is None or self._geometry is None or self._index is None:
            return None
        hit = self._geometry.pixel_at(x_mm, y_mm)
        if hit is None:
            return None
        r, c = hit
        hu = float(self._volume.hu[self._index, r, c])
        z = float(self._volume.z_positions[self._index])
        text = f"{self.phase}  z = {z:.1f} mm  (col {c}, row {r})  HU = {hu:.0f}"
        cam = self._cam_data
        if cam is not None and self.cam.item.isVisible():
            top = self.cam.scale
            if top is None:
                top = float(cam.max()) or 1.0
            text += f"  CAM = {float(cam[r, c]) / top:.2f}"
        return text

    def shows_empty_notice(self) -> bool:
        """True while the viewer says that no series is assigned to its phase."""
        return self._empty.isVisible()

    def orientation_letters(self) -> dict[str, bool]:
        """Which of the R / L / A / P edge letters are shown (hidden where a corner text needs the room)."""
        return {letter: item.isVisible() for letter, item in self._edges.items()}

    def corner_texts(self) -> dict[str, str]:
        """Plain text of the four corner overlays (for tests and screenshots)."""
        return {key: item.toPlainText().replace("\xa0", " ") for key, item in self._corners.items()}

    # -- events ------------------------------------------------------------------------
    def keyPressEvent(self, ev: QtGui.QKeyEvent) -> None:  # noqa: N802
        step = KEY_STEPS.get(QtCore.Qt.Key(ev.key()))
        if step is not None:
            self.stepRequested.emit(step)
            ev.accept()
            return
        jump = KEY_JUMPS.get(QtCore.Qt.Key(ev.key()))
        if jump is not None:
            self.jumpRequested.emit(jump)
            ev.accept()
            return
        super().keyPressEvent(ev)

    def _mouse_moved(self, scene_pos: QtCore.QPointF) -> None:
        if not self.view.sceneBoundingRect().contains(scene_pos):
            return
        p = self.view.mapSceneToView(scene_pos)
        self._hover_mm = (p.x(), p.y())
        text = self.info_at(p.x(), p.y())
        if text is not None:
            self.cursorInfo.emit(text)

    # -- corner texts ----------------------------------------------------------------------
    def _make_corner(self) -> QtWidgets.QGraphicsTextItem:
        item = QtWidgets.QGraphicsTextItem()
        item.setParentItem(self.view)
        item.setDefaultTextColor(QtGui.QColor(TEXT_COLOR))
        font = item.font()
        font.setPointSizeF(9.0)
        item.setFont(font)
        item.setZValue(100)
        item.setAcceptedMouseButtons(QtCore.Qt.MouseButton.NoButton)
        return item

    def _update_corners(self) -> None:
        tl = f"<b style='color:{ACCENT_COLOR}'>{self.phase.upper()}</b>"
        if self._description:
            tl += f"<br>{_escape(self._description)}"
        tr = bl = br = ""
        if self._volume is not None and self._index is not None:
            z = float(self._volume.z_positions[self._index])
            tr = f"z = {z:.1f} mm<br>slice {self._index + 1} / {self._volume.n_slices}"
            g = self._geometry
            if g is not None:
                br = f"{g.cols}×{g.rows}<br>{g.col_mm:.2f} mm/px"
        bl = _escape(self._window.label())
        if self._window.name:
            bl += f"<br>{_escape(self._window.name)}"
        if self._inverted:
            bl += "<br>inverted"
        if self.cam.has_data and self.cam.item.isVisible():
            br = f"Grad-CAM ({self.cam.colormap})<br>{br}"
        if self._note:
            tr += f"<br>{_escape(self._note)}"
        texts = {"tl": tl, "tr": tr, "bl": bl, "br": br}
        changed = False
        for key, html in texts.items():
            if self._corner_html.get(key) == html:
                continue  # re-laying out rich text costs ~0.5 ms; most scrolls change one corner
            align = "right" if key.endswith("r") else "left"
            item = self._corners[key]
            item.setTextWidth(-1)
            item.setHtml(f"<div align='{align}'>{html}</div>")
            self._natural_width[key] = item.boundingRect().width()
            self._corner_html[key] = html
            changed = True
        if changed:
            self._place_corners()

    def _place_corners(self) -> None:
        bounds = self.view.boundingRect()
        margin = 4.0
        # A corner text may take at most 40 % of the width and wraps beyond it: a long series
        # description must not run under the orientation letter at the top centre.
        # (A narrow viewer keeps single lines: there the letters give way, see below.)
        # A text wider than the whole viewer (a pane note in a narrow pane) wraps at its width
        # instead of running off both edges.
        limit = bounds.width() * CORNER_WIDTH_SHARE
        full = max(bounds.width() - 2 * margin, 40.0)
        for key, item in self._corners.items():
            natural = self._natural_width.get(key, 0.0)
            if bounds.width() >= 300 and natural > limit:
                width = limit
            elif natural > full:
                width = full
            else:
                width = -1.0
            if item.textWidth() != width:
                item.setTextWidth(width)
        for key, item in self._corners.items():
            size = item.boundingRect()
            x = bounds.left() + margin if key[1] == "l" else bounds.right() - size.width() - margin
            y = bounds.top() + margin if key[0] == "t" else bounds.bottom() - size.height() - margin
            item.setPos(x, y)
        # A narrow viewer: stack the right-hand texts under (top) / the left-hand texts over
        # (bottom) their neighbours instead of printing one over the other.
        tl, tr, bl, br = (self._corners[k] for k in ("tl", "tr", "bl", "br"))
        if _rect(tl).intersects(_rect(tr)):
            tr.setPos(tr.pos().x(), _rect(tl).bottom() + 2)
        if _rect(bl).intersects(_rect(br)):
            bl.setPos(bl.pos().x(), _rect(br).top() - bl.boundingRect().height() - 2)
        cx, cy = bounds.center().x(), bounds.center().y()
        self._empty.setVisible(self._volume is None)
        size = self._empty.boundingRect()
        self._empty.setPos(cx - size.width() / 2, cy - size.height() / 2)
        for letter, item in self._edges.items():
            size = item.boundingRect()
            item.setVisible(self._volume is not None)
            if letter == "R":
                item.setPos(bounds.left() + margin, cy - size.height() / 2)
            elif letter == "L":
                item.setPos(bounds.right() - size.width() - margin, cy - size.height() / 2)
            elif letter == "A":
                item.setPos(cx - size.width() / 2, bounds.top() + margin)
            else:
                item.setPos(cx - size.width() / 2, bounds.bottom() - size.height() - margin)
        # In a narrow viewer the corner texts reach the middle: an orientation letter that
        # would overlap one gives way (the corner texts carry information, the letters are a
        # convenience).
        corner_rects = [_rect(c) for c in self._corners.values() if c.toPlainText()]
        for item in self._edges.values():
            if item.isVisible():
                item.setVisible(not any(_rect(item).intersects(r) for r in corner_rects))


#: Keys that move the shared slice position (Up = one slice head-wards, as pairs are ordered
#: by ascending table position) and keys that jump to the ends.
#: Grey ramp reversed: ``ImageItem`` maps the window to 0..255, this table reverses it.
INVERTED_LUT = np.arange(255, -1, -1, dtype=np.ubyte)

KEY_STEPS: dict[QtCore.Qt.Key, int] = {
    QtCore.Qt.Key.Key_Up: 1,
    QtCore.Qt.Key.Key_Down: -1,
    QtCore.Qt.Key.Key_PageUp: 10,
    QtCore.Qt.Key.Key_PageDown: -10,
}
KEY_JUMPS: dict[QtCore.Qt.Key, str] = {
    QtCore.Qt.Key.Key_Home: "first",
    QtCore.Qt.Key.Key_End: "last",
}


def _rect(item: QtWidgets.QGraphicsItem) -> QtCore.QRectF:
    """``item``'s bounds in its parent's (the ViewBox's) coordinates."""
    return item.mapRectToParent(item.boundingRect())


def _escape(text: str) -> str:
    """HTML-escape ``text``, keeping double spaces (HTML would collapse them)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("  ", "&nbsp; ")
