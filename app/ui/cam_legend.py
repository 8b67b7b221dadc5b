"""The Grad-CAM colour bar: what the heat-map colours mean (issue 17, item 12).

A heat map without a scale invites reading it as a probability map. The bar shows the colour
map in use with its transparency ramp (below :data:`~app.ui.cam_overlay.ALPHA_START` nothing
is drawn), from 0 to 1, where 1 is the study's scale — its strongest activation, or for a
lesion-head model the strong heat of the voting slices (app.inference.gradcam.display_scale) —
one scale per study, never per slice, and says so in its labels and tooltip. The same drawing feeds the PDF
report (:func:`legend_image`).
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from app.ui.cam_overlay import ALPHA_FULL, ALPHA_START, DEFAULT_COLORMAP, overlay_lut

LEGEND_TOOLTIP = (
    "Grad-CAM colour scale: how strongly each region drove the model's vote, on one scale for "
    "the whole study (1 = the strongest activation in this study; for a model with a lesion "
    "head, the strong heat of the slices that voted — the 90th percentile of their peaks — and "
    f"anything stronger is drawn at 1). Below {ALPHA_START:.2f} "
    f"nothing is drawn; the colour is fully opaque from {ALPHA_FULL:.2f}. It is not a "
    "probability and not a tumour outline."
)


def paint_legend(painter: QtGui.QPainter, rect: QtCore.QRectF, colormap: str, text_color: QtGui.QColor) -> None:
    """Draw the bar with "0" / "1 = study scale" labels into ``rect``."""
    lut = overlay_lut(colormap, 64)
    fm = painter.fontMetrics()
    label_h = fm.height()
    bar = QtCore.QRectF(rect.x(), rect.y(), rect.width(), max(rect.height() - label_h, 4.0))
    # a grey checker under the bar shows where the colours are transparent
    painter.fillRect(bar, QtGui.QColor(90, 90, 90))
    gradient = QtGui.QLinearGradient(bar.topLeft(), bar.topRight())
    for i, (r, g, b, a) in enumerate(lut):
        gradient.setColorAt(i / (len(lut) - 1), QtGui.QColor(int(r), int(g), int(b), int(a)))
    painter.fillRect(bar, QtGui.QBrush(gradient))
    painter.setPen(QtGui.QPen(text_color))
    painter.drawRect(bar)
    text_rect = QtCore.QRectF(rect.x(), bar.bottom(), rect.width(), label_h)
    painter.drawText(text_rect, int(QtCore.Qt.AlignmentFlag.AlignLeft), "0")
    painter.drawText(text_rect, int(QtCore.Qt.AlignmentFlag.AlignRight), "1 = study scale")


class CamLegend(QtWidgets.QWidget):
    """A small colour bar for the viewer toolbar; follows the colour map in use."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._colormap = DEFAULT_COLORMAP
        self.setToolTip(LEGEND_TOOLTIP)
        self.setMinimumSize(110, 30)
        self.setMaximumWidth(160)

    def colormap(self) -> str:
        return self._colormap

    def set_colormap(self, name: str) -> None:
        self._colormap = name
        self.update()

    def paintEvent(self, ev: QtGui.QPaintEvent) -> None:  # noqa: N802
        painter = QtGui.QPainter(self)
        paint_legend(painter, QtCore.QRectF(self.rect()).adjusted(1, 1, -1, -1), self._colormap,
                     self.palette().color(QtGui.QPalette.ColorRole.WindowText))
        painter.end()


def legend_image(colormap: str, width: int = 360, height: int = 40) -> QtGui.QImage:
    """The colour bar as an image (white background), for the PDF report."""
    image = QtGui.QImage(width, height, QtGui.QImage.Format.Format_RGB32)
    image.fill(QtGui.QColor("white"))
    painter = QtGui.QPainter(image)
    paint_legend(painter, QtCore.QRectF(1, 1, width - 2, height - 2), colormap, QtGui.QColor("black"))
    painter.end()
    return image


__all__ = ["CamLegend", "LEGEND_TOOLTIP", "legend_image", "paint_legend"]
