"""Coronal reformat of the assigned phases: check the liver range and the pairing (issue 17).

One coronal plane per phase, cut from the volume already loaded for the axial viewers (no
file is read again) at one anterior-posterior position: the crosshair's when it is set, else
the middle of the image. Geometry-correct: each pane is drawn in millimetres — patient x
across (radiological: patient right on screen left, as the axial panes), table position z
upwards (head at the top) — with ``z`` spacing from the slice positions and ``x`` spacing from
the pixel spacing, and a locked aspect ratio, so a 5 mm slice is five times as tall as a 1 mm
pixel is wide. On each pane: the liver range found for that phase (dashed lines) and the level
on view in the axial panes (solid line); a click moves the axial panes to that level.

:func:`coronal_plane` is the geometry, free of widgets and tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from app import PHASES
from app.dicom.types import Volume
from app.ui.liver_slider import LIVER_BAND_COLOR
from app.ui.viewer import ACCENT_COLOR, BACKGROUND, SliceGeometry
from app.ui.viewer_panel import ViewerPanel


@dataclass(frozen=True)
class CoronalPlane:
    """One coronal plane of a volume, ready to draw.

    Attributes
    ----------
    image:
        ``(n_slices, cols)`` HU, row 0 = the lowest z (drawn at the bottom), columns in display
        order (patient right on the left).
    rect:
        ``(x, z, width, height)`` in mm: the image's extent, pixel edges included.
    row:
        The acquired row (anterior-posterior index) the plane was cut at.
    y_mm:
        Its patient y in mm.
    """

    image: np.ndarray
    rect: tuple[float, float, float, float]
    row: int
    y_mm: float


def coronal_plane(volume: Volume, y_mm: float | None = None) -> CoronalPlane:
    """Cut ``volume`` at patient ``y_mm`` (default: the middle row) into a coronal plane.

    Slices are put in ascending z whatever their order in the volume; the z extent assumes the
    volume's regular spacing (:class:`~app.dicom.types.Volume` is built from positions and
    refuses gaps, so ``slice_spacing`` holds).
    """
    g = SliceGeometry.of(volume)
    if y_mm is None:
        row = g.rows // 2
    else:
        hit = g.pixel_at(g.x0 + g.col_mm / 2, y_mm)
        row = hit[0] if hit is not None else int(np.clip(round((y_mm - g.y0) / g.row_mm - 0.5), 0, g.rows - 1))
    image = volume.hu[:, row, :]
    if g.flip_cols:
        image = image[:, ::-1]
    z = np.asarray(volume.z_positions, dtype=float)
    if len(z) > 1 and z[-1] < z[0]:
        image, z = image[::-1], z[::-1]
    dz = abs(float(volume.slice_spacing)) or (float(z[-1] - z[0]) / max(len(z) - 1, 1)) or 1.0
    rect = (g.x0, float(z[0]) - dz / 2, g.cols * g.col_mm, len(z) * dz)
    y = g.centre_mm(row, 0)[1]
    return CoronalPlane(np.ascontiguousarray(image), rect, row, y)


class CoronalView(QtWidgets.QDialog):
    """A non-modal window with the coronal planes of the study on view in ``panel``.

    Follows the panel: W/L, the axial level (the solid line), the crosshair's y (re-cut), a new
    study (re-cut). ``panes[phase]`` = (viewbox, image item, level line) for tests.
    """

    def __init__(self, panel: ViewerPanel, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Coronal reformat")
        self.panel = panel
        self.planes: dict[str, CoronalPlane] = {}
        self.panes: dict[str, tuple[pg.ViewBox, pg.ImageItem, pg.InfiniteLine]] = {}
        self._liver_lines: dict[str, list[pg.InfiniteLine]] = {}
        self._y_mm: float | None = None
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground(BACKGROUND)
        for col, phase in enumerate(PHASES):
            view = pg.ViewBox(lockAspect=True, invertY=False, enableMenu=False)
            view.setBackgroundColor(BACKGROUND)
            self.graphics.addLabel(f"<b style='color:{ACCENT_COLOR}'>{phase.upper()}</b>", row=0, col=col)
            self.graphics.addItem(view, row=1, col=col)
            image = pg.ImageItem(axisOrder="row-major")
            view.addItem(image)
            level = pg.InfiniteLine(angle=0, pen=pg.mkPen(ACCENT_COLOR, width=1), movable=False)
            view.addItem(level)
            self.panes[phase] = (view, image, level)
            view.scene().sigMouseClicked.connect(lambda ev, v=view: self._clicked(v, ev))
        self.info = QtWidgets.QLabel()
        self.info.setWordWrap(True)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.info)
        panel.windowChanged.connect(lambda *_: self._apply_window())
        panel.pairIndexChanged.connect(lambda _i: self._update_level())
        panel.measure.referenceChanged.connect(lambda _x, y: self.set_y(y))
        self.resize(1100, 640)
        self.refresh()

    def set_y(self, y_mm: float | None) -> None:
        """Re-cut every phase at patient ``y_mm`` (None: the middle row)."""
        self._y_mm = y_mm
        self.refresh()

    def refresh(self) -> None:
        """Cut the planes of the panel's current study and draw them."""
        study = self.panel.study
        volumes = study.volumes if study is not None else {}
        if self._y_mm is None and self.panel.measure.reference() is not None:
            self._y_mm = self.panel.measure.reference()[1]  # type: ignore[index]
        self.planes = {p: coronal_plane(v, self._y_mm) for p, v in volumes.items()}
        for phase, (view, image, _level) in self.panes.items():
            for line in self._liver_lines.pop(phase, []):
                view.removeItem(line)
            plane = self.planes.get(phase)
            if plane is None:
                image.clear()
                continue
            image.setImage(plane.image, autoLevels=False, levels=self.panel.window_level().levels)
            image.setRect(QtCore.QRectF(*plane.rect))
            lines = []
            for z in (study.liver_range_mm.get(phase, ()) if study is not None else ()):
                pen = pg.mkPen(LIVER_BAND_COLOR.lighter(150), width=1, style=QtCore.Qt.PenStyle.DashLine)
                line = pg.InfiniteLine(pos=float(z), angle=0, pen=pen, movable=False)
                view.addItem(line)
                lines.append(line)
            self._liver_lines[phase] = lines
            view.setRange(rect=QtCore.QRectF(*plane.rect), padding=0.0)
        y = next(iter(self.planes.values())).y_mm if self.planes else None
        self.info.setText(
            (f"Coronal planes at y = {y:.1f} mm (set the crosshair, X, to choose the plane). " if y is not None else "")
            + "Solid line: the level on view; dashed: the liver range found in that phase. "
            "Click a plane to go to that level."
        )
        self._update_level()

    def level_z(self, phase: str) -> float | None:
        """The z (mm) of the solid line on ``phase``'s pane (None when hidden)."""
        line = self.panes[phase][2]
        return float(line.value()) if line.isVisible() else None  # type: ignore[arg-type]

    def _apply_window(self) -> None:
        levels = self.panel.window_level().levels
        for _view, image, _line in self.panes.values():
            if image.image is not None:
                image.setLevels(levels)

    def _update_level(self) -> None:
        indices = self.panel.indices_at(self.panel.pair_index()) if self.panel.count() else {}
        study = self.panel.study
        for phase, (_view, _image, line) in self.panes.items():
            idx = indices.get(phase)
            visible = study is not None and idx is not None and phase in study.volumes
            line.setVisible(visible)
            if visible:
                line.setValue(float(study.volumes[phase].z_positions[idx]))  # type: ignore[union-attr,index]

    def _clicked(self, view: pg.ViewBox, ev: object) -> None:
        pos = ev.scenePos()  # type: ignore[attr-defined]
        if not view.sceneBoundingRect().contains(pos):
            return
        z = view.mapSceneToView(pos).y()
        self.go_to_z(z)

    def go_to_z(self, z: float) -> None:
        """Move the axial panes to the position nearest table position ``z`` (mm)."""
        n = self.panel.count()
        if not n:
            return
        zs = np.array([self.panel.z_at(i) for i in range(n)], dtype=float)
        self.panel.set_pair_index(int(np.argmin(np.abs(zs - z))))


__all__ = ["CoronalPlane", "CoronalView", "coronal_plane"]
