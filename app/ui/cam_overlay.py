"""Grad-CAM heat-map overlay for one viewer: colour map, opacity, one scale per study.

The overlay is a second ``pg.ImageItem`` stacked above the CT image in the same millimetre
rectangle (the CAM arrays come from ``app.inference`` already mapped back to the original
slice geometry, rows × columns of the :class:`~app.dicom.types.Volume`). Its lookup table has
an alpha ramp: weak activations are transparent, so the anatomy stays readable and only the
regions the model attended to are tinted. The whole layer's opacity is the user's slider.

The scale is fixed for the whole study (``0 .. global_max`` of ``CamResult``), never per slice:
per-slice normalisation would paint the hottest region of every slice red and make slices
impossible to compare (DESIGN.md step 5).
"""

from __future__ import annotations

import cv2
import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

#: Colour maps offered in the toolbar. "jet" is what the paper's figures (and most Grad-CAM
#: publications) use; the perceptually uniform ones are kinder to colour-blind readers.
COLORMAPS: tuple[str, ...] = ("jet", "turbo", "inferno", "viridis", "hot")
DEFAULT_COLORMAP = "jet"
DEFAULT_OPACITY = 0.45

#: Largest CAM side drawn on screen. Grad-CAM maps are upsampled from a 7 × 7 (ResNet-18 at
#: 224 px) grid, so a 512² map carries no more detail than a 256² one, but painting the
#: semi-transparent RGBA image costs in proportion to its pixels (bench/ui_viewer_speed.py).
MAX_CAM_DISPLAY = 256

#: Activations below this fraction of the scale are fully transparent; alpha rises linearly
#: to 1 at ``ALPHA_FULL``. Keeps the CT visible where the model did not look.
ALPHA_START = 0.15
ALPHA_FULL = 0.5

# jet and hot ship with matplotlib, which this application does not bundle; their classic
# definitions (piecewise linear in RGB) are short enough to carry here.
_JET = (
    (0.0, (0, 0, 128)),
    (0.11, (0, 0, 255)),
    (0.125, (0, 0, 255)),
    (0.34, (0, 219, 255)),
    (0.35, (0, 229, 246)),
    (0.64, (255, 255, 0)),
    (0.66, (255, 238, 0)),
    (0.89, (255, 30, 0)),
    (0.91, (232, 0, 0)),
    (1.0, (128, 0, 0)),
)
_HOT = (
    (0.0, (10, 0, 0)),
    (0.365, (255, 0, 0)),
    (0.746, (255, 255, 0)),
    (1.0, (255, 255, 255)),
)


def get_colormap(name: str) -> pg.ColorMap:
    """Return the pyqtgraph colour map called ``name``.

    ``"jet"`` and ``"hot"`` are built here (pyqtgraph only has them through matplotlib); every
    other name goes to ``pg.colormap.get``, which reads pyqtgraph's bundled maps offline.

    Raises
    ------
    ValueError
        When ``name`` is not a known colour map.
    """
    table = {"jet": _JET, "hot": _HOT}.get(name.lower())
    if table is not None:
        pos = np.array([p for p, _ in table], dtype=float)
        colors = np.array([c for _, c in table], dtype=np.ubyte)
        return pg.ColorMap(pos, colors, name=name.lower())
    try:
        cmap = pg.colormap.get(name)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise ValueError(f"unknown colour map {name!r}; offered: {', '.join(COLORMAPS)}") from exc
    if cmap is None:
        raise ValueError(f"unknown colour map {name!r}; offered: {', '.join(COLORMAPS)}")
    return cmap


def overlay_lut(name: str, n: int = 256) -> np.ndarray:
    """RGBA lookup table ``(n, 4)`` uint8 for colour map ``name`` with the transparency ramp.

    Why a ramp and not a constant alpha: a constant alpha veils the whole slice in the colour
    of zero activation (dark blue for jet) and hides the anatomy the reader needs to judge
    whether the highlighted region makes sense.
    """
    lut = get_colormap(name).getLookupTable(0.0, 1.0, n, alpha=True).astype(np.ubyte)
    x = np.linspace(0.0, 1.0, n)
    alpha = np.clip((x - ALPHA_START) / (ALPHA_FULL - ALPHA_START), 0.0, 1.0)
    lut[:, 3] = np.round(alpha * 255).astype(np.ubyte)
    return lut


class CamOverlay:
    """The heat-map layer of one viewer (a thin owner of one ``pg.ImageItem``).

    Parameters
    ----------
    view:
        The ``pg.ViewBox`` the CT image lives in; the overlay is added above it (z = 10).

    Notes
    -----
    The item is created once and reused: each slice change only calls ``setImage`` with fixed
    levels (cheap), never builds a new item (which would re-layout the scene).
    """

    def __init__(self, view: pg.ViewBox) -> None:
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setZValue(10)
        view.addItem(self.item)
        self._scale: float | None = None
        self._user_visible = True
        self._has_data = False
        self._colormap = DEFAULT_COLORMAP
        self.item.setLookupTable(overlay_lut(self._colormap))
        self.item.setOpacity(DEFAULT_OPACITY)
        self.item.setVisible(False)

    # -- properties -------------------------------------------------------------------
    @property
    def colormap(self) -> str:
        """Name of the colour map in use."""
        return self._colormap

    @property
    def scale(self) -> float | None:
        """The study-wide maximum the colours are scaled to (None: per-slice fallback)."""
        return self._scale

    @property
    def has_data(self) -> bool:
        """True when a CAM is shown for the current slice (regardless of the toggle)."""
        return self._has_data

    # -- setters ----------------------------------------------------------------------
    def set_scale(self, global_max: float | None) -> None:
        """Fix the colour scale to ``0 .. global_max`` (one normalisation per study)."""
        self._scale = float(global_max) if global_max is not None and global_max > 0 else None

    def set_colormap(self, name: str) -> None:
        """Switch the colour map (see :data:`COLORMAPS`); raises ValueError for unknown names."""
        self.item.setLookupTable(overlay_lut(name))
        self._colormap = name

    def set_opacity(self, opacity: float) -> None:
        """Opacity of the whole layer, 0 (invisible) .. 1 (opaque where activated)."""
        self.item.setOpacity(min(max(float(opacity), 0.0), 1.0))

    def set_visible(self, visible: bool) -> None:
        """The user's toggle; the layer shows only when toggled on AND a CAM is present."""
        self._user_visible = bool(visible)
        self.item.setVisible(self._user_visible and self._has_data)

    def set_cam(self, cam: np.ndarray | None, rect: QtCore.QRectF, flip: tuple[bool, bool]) -> None:
        """Show ``cam`` (rows × columns of the CT slice) in ``rect`` (mm), or hide when None.

        ``flip`` = (flip columns, flip rows), the same display flips as the CT slice so that
        both layers stay registered pixel for pixel.
        """
        if cam is None:
            self._has_data = False
            self.item.setVisible(False)
            return
        data = np.asarray(cam, dtype=np.float32)
        if flip[0]:
            data = data[:, ::-1]
        if flip[1]:
            data = data[::-1, :]
        data, rect = _decimate(data, rect)
        top = self._scale
        if top is None:
            # No study-wide scale was given (a single slice computed on its own): fall back to
            # this slice's own maximum so the layer is still readable.
            top = float(np.nanmax(data)) if data.size else 1.0
            top = top if top > 0 else 1.0
        self.item.setImage(data, autoLevels=False, levels=(0.0, top))
        self.item.setRect(rect)
        self._has_data = True
        self.item.setVisible(self._user_visible)


def _decimate(data: np.ndarray, rect: QtCore.QRectF) -> tuple[np.ndarray, QtCore.QRectF]:
    """Block-average ``data`` to at most :data:`MAX_CAM_DISPLAY` per side; shrink ``rect`` to match.

    Block means (not every n-th sample) keep the map registered with the CT: each displayed
    value sits at the centre of the pixels it stands for. When the size is not a multiple of
    the block, the last partial block at the far (right/bottom) edge is dropped and the
    rectangle shrinks by exactly those pixels, so nothing is stretched.
    """
    rows, cols = data.shape
    step = max(1, -(-max(rows, cols) // MAX_CAM_DISPLAY))
    if step == 1:
        return data, rect
    r, c = rows // step, cols // step
    # INTER_AREA with an integer factor is exactly the block mean, ~20x faster than numpy's
    # strided mean over a reshaped view (the profile of bench/ui_viewer_speed.py).
    blocks = cv2.resize(
        np.ascontiguousarray(data[: r * step, : c * step]), (c, r), interpolation=cv2.INTER_AREA
    )
    shrunk = QtCore.QRectF(
        rect.x(), rect.y(), rect.width() * (c * step) / cols, rect.height() * (r * step) / rows
    )
    return np.ascontiguousarray(blocks, dtype=np.float32), shrunk
