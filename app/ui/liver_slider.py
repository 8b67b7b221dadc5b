"""The slice slider of the viewer panel, with the liver range painted as a band behind its
groove: the user sees at a glance which positions the model will read (the liver range) while
scrolling through the whole study."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

#: Colour of the liver-range band on the slider and the vote strip (a muted teal that differs
#: from both vote colours).
LIVER_BAND_COLOR = QtGui.QColor(64, 160, 150, 110)


class LiverRangeSlider(QtWidgets.QSlider):
    """Horizontal slice slider that paints the liver range as a band behind its groove."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(QtCore.Qt.Orientation.Horizontal, parent)
        self._mask = np.zeros(0, dtype=bool)
        self.setMinimumHeight(22)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)

    def set_marks(self, mask: np.ndarray) -> None:
        """``mask[i]`` True where position ``i`` lies in the liver range."""
        self._mask = np.asarray(mask, dtype=bool)
        self.update()

    def marks(self) -> np.ndarray:
        """The liver-range mask in use."""
        return self._mask

    def paintEvent(self, ev: QtGui.QPaintEvent) -> None:  # noqa: N802
        if self._mask.any() and self.maximum() >= self.minimum():
            opt = QtWidgets.QStyleOptionSlider()
            self.initStyleOption(opt)
            style = self.style()
            groove = style.subControlRect(
                QtWidgets.QStyle.ComplexControl.CC_Slider, opt,
                QtWidgets.QStyle.SubControl.SC_SliderGroove, self,
            )
            handle = style.subControlRect(
                QtWidgets.QStyle.ComplexControl.CC_Slider, opt,
                QtWidgets.QStyle.SubControl.SC_SliderHandle, self,
            )
            n = self.maximum() - self.minimum()
            span = groove.width() - handle.width()
            step = span / n if n > 0 else 0.0
            left = groove.left() + handle.width() / 2.0
            painter = QtGui.QPainter(self)
            painter.setPen(QtCore.Qt.PenStyle.NoPen)
            painter.setBrush(LIVER_BAND_COLOR)
            for start, stop in _runs(self._mask):
                x0 = left + (start - 0.5) * step
                x1 = left + (stop - 0.5) * step
                painter.drawRect(QtCore.QRectF(x0, 2.0, max(x1 - x0, 2.0), self.height() - 4.0))
            painter.end()
        super().paintEvent(ev)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of consecutive True runs (stop exclusive)."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for i, v in enumerate(mask):
        if v and start is None:
            start = i
        elif not v and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(mask)))
    return runs


__all__ = ["LIVER_BAND_COLOR", "LiverRangeSlider"]
