"""The per-slice vote strip under the viewers: one bar per slice pair, click to jump there.

Each bar's height is the model's responder probability for that slice triplet, its colour the
slice's vote (blue = responder, orange = non-responder: a pair that colour-blind readers can
tell apart, and the tooltip says it in words). A dashed line marks the model's decision
threshold (0.5 for the paper's model; the model card's for others, e.g. 0.32), a teal band under
the bars the liver range, and a white frame the slice on view. Slices that did not take part in
the patient's vote (a lesion-head model lets only the slices in which it sees tumour vote) are
drawn faint, so that the strip shows the same count as the result panel. Drawn with QPainter: a few hundred
rectangles are crisper and cheaper than a plot widget with axes nobody reads.

Use it with :func:`app.ui.viewer_panel.link_vote_strip` (click → viewers jump, scroll → marker
moves, liver range from the panel), then ``set_result(probabilities, labels)`` after a
prediction and ``clear()`` when a new study is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

#: Vote colours shared with the result panel. Not red/green (colour-blind readers, and red
#: reads as "bad outcome" which a non-responder prediction is not for certain).
RESPONDER_COLOR = QtGui.QColor(44, 123, 182)
NON_RESPONDER_COLOR = QtGui.QColor(232, 140, 30)
LIVER_COLOR = QtGui.QColor(64, 160, 150)
BACKGROUND_COLOR = QtGui.QColor(24, 24, 24)
GRID_COLOR = QtGui.QColor(150, 150, 150)
TEXT_COLOR = QtGui.QColor(220, 220, 220)


def is_responder_label(label: object) -> bool:
    """True for a responder vote, whatever its spelling.

    Accepts the strings ``"responder"`` / ``"non-responder"`` (``app.inference``'s labels),
    booleans and 1/0.
    """
    if isinstance(label, str):
        text = label.strip().lower().replace("_", "-")
        return text in ("responder", "r", "1", "true", "cr/pr", "yes")
    return bool(label)


class VoteStrip(QtWidgets.QWidget):
    """One bar per paired slice, coloured by vote, height = probability; click jumps.

    Signals
    -------
    sliceClicked(int)
        The pair index under a click (or a drag with the left button held: scrubbing).
    """

    sliceClicked = QtCore.Signal(int)

    #: Left margin for the 0 / threshold / 1 labels, bottom margin for the liver band (pixels).
    LEFT = 30
    RIGHT = 6
    TOP = 6
    BOTTOM = 12

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._probs = np.zeros(0, dtype=float)
        self._responder = np.zeros(0, dtype=bool)
        self._voting = np.zeros(0, dtype=bool)
        self._threshold: float | None = None  # no prediction: no decision line
        self._liver = np.zeros(0, dtype=bool)
        self._current = -1
        self.setMinimumHeight(64)
        self.setMaximumHeight(110)
        self.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Fixed
        )
        self.setMouseTracking(True)
        self.setCursor(QtCore.Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Per-slice vote: click a bar to show that slice")

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802
        return QtCore.QSize(600, 84)

    # -- public API --------------------------------------------------------------------
    def set_result(self, per_slice_probs: Sequence[float], labels: Sequence[object],
                   voting: Sequence[bool] | None = None, threshold: float | None = 0.5) -> None:
        """Show a prediction: responder probability and vote of every pair, in pair order;
        ``voting`` marks the pairs that took part in the patient's vote (all when None),
        ``threshold`` the model's decision threshold (no line when unknown).

        Raises
        ------
        ValueError
            When the two sequences differ in length (they must describe the same pairs).
        """
        probs = np.asarray(list(per_slice_probs), dtype=float)
        if len(labels) != len(probs):
            raise ValueError(f"{len(probs)} probabilities but {len(labels)} labels")
        flags = np.ones(len(probs), dtype=bool) if voting is None else np.asarray(list(voting), dtype=bool)
        if flags.size != len(probs):
            raise ValueError(f"{len(probs)} probabilities but {flags.size} voting flags")
        self._probs = np.clip(np.nan_to_num(probs, nan=0.0), 0.0, 1.0)
        self._responder = np.array([is_responder_label(x) for x in labels], dtype=bool)
        self._voting = flags
        self._threshold = float(threshold) if threshold is not None else None
        self.update()

    def clear(self) -> None:
        """Remove the result (keeps nothing from the previous study)."""
        self._probs = np.zeros(0, dtype=float)
        self._responder = np.zeros(0, dtype=bool)
        self._voting = np.zeros(0, dtype=bool)
        self._threshold = None
        self._liver = np.zeros(0, dtype=bool)
        self._current = -1
        self.update()

    def count(self) -> int:
        """Number of bars."""
        return int(self._probs.size)

    def probabilities(self) -> np.ndarray:
        """The probabilities shown (a copy)."""
        return self._probs.copy()

    def votes(self) -> np.ndarray:
        """True where the pair voted responder (a copy)."""
        return self._responder.copy()

    def voting(self) -> np.ndarray:
        """True where the pair took part in the patient's vote (a copy)."""
        return self._voting.copy()

    def threshold(self) -> float | None:
        """The decision threshold drawn (None: none)."""
        return self._threshold

    def set_current(self, index: int) -> None:
        """Mark pair ``index`` as the one on view (-1: none)."""
        self._current = int(index)
        self.update()

    def current(self) -> int:
        """The marked pair (-1: none)."""
        return self._current

    def set_liver_mask(self, mask: Sequence[bool] | np.ndarray) -> None:
        """``mask[i]`` True where pair ``i`` lies in the liver range (drawn under the bars)."""
        self._liver = np.asarray(mask, dtype=bool)
        self.update()

    def liver_mask(self) -> np.ndarray:
        """The liver-range mask in use."""
        return self._liver

    def bar_rect(self, index: int) -> QtCore.QRectF:
        """The full-height slot of bar ``index`` in widget pixels (for hit tests and tests)."""
        n = max(self._n(), 1)
        plot = self._plot_rect()
        w = plot.width() / n
        return QtCore.QRectF(plot.left() + index * w, plot.top(), w, plot.height())

    def index_at(self, x: float) -> int | None:
        """Pair index under widget x coordinate ``x``, None outside the bars."""
        n = self._n()
        plot = self._plot_rect()
        if n == 0 or not (plot.left() <= x < plot.right()):
            return None
        return min(int((x - plot.left()) / plot.width() * n), n - 1)

    # -- events ------------------------------------------------------------------------
    def mousePressEvent(self, ev: QtGui.QMouseEvent) -> None:  # noqa: N802
        if ev.button() == QtCore.Qt.MouseButton.LeftButton:
            self._emit_at(ev.position().x())
            ev.accept()
            return
        super().mousePressEvent(ev)

    def mouseMoveEvent(self, ev: QtGui.QMouseEvent) -> None:  # noqa: N802
        x = ev.position().x()
        if ev.buttons() & QtCore.Qt.MouseButton.LeftButton:
            self._emit_at(x, only_if_moved=True)
        i = self.index_at(x)
        if i is not None and i < self._probs.size:
            vote = "responder" if self._responder[i] else "non-responder"
            if i < self._voting.size and not self._voting[i]:
                vote += " (did not vote: the model saw no tumour here)"
            liver = " · in liver range" if i < self._liver.size and self._liver[i] else ""
            self.setToolTip(f"Pair {i + 1}: p(responder) = {self._probs[i]:.2f} → {vote}{liver}")
        super().mouseMoveEvent(ev)

    def _emit_at(self, x: float, only_if_moved: bool = False) -> None:
        # A click always reports (even on the marked bar: the listener may re-centre); a drag
        # reports only when it crosses into another bar, so scrubbing does not flood.
        i = self.index_at(x)
        if i is not None and not (only_if_moved and i == self._current):
            self.sliceClicked.emit(i)

    def paintEvent(self, ev: QtGui.QPaintEvent) -> None:  # noqa: N802
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)
        p.fillRect(self.rect(), BACKGROUND_COLOR)
        plot = self._plot_rect()
        n = self._n()
        font = p.font()
        font.setPointSizeF(7.5)
        p.setFont(font)
        p.setPen(TEXT_COLOR)
        for value in (0.0, 1.0) if self._threshold is None else (0.0, self._threshold, 1.0):
            y = plot.bottom() - value * plot.height()
            p.drawText(
                QtCore.QRectF(0, y - 7, self.LEFT - 4, 14),
                int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter),
                f"{value:g}",
            )
        if n == 0:
            p.drawText(plot, int(QtCore.Qt.AlignmentFlag.AlignCenter), "No prediction yet")
            p.end()
            return
        slot = plot.width() / n
        gap = 1.0 if slot >= 4 else 0.0
        # Liver range: a band below the bars.
        p.setPen(QtCore.Qt.PenStyle.NoPen)
        p.setBrush(LIVER_COLOR)
        for i in (int(k) for k in np.flatnonzero(self._liver[:n])):
            p.drawRect(QtCore.QRectF(plot.left() + i * slot, plot.bottom() + 3, slot, 5))
        # Bars.
        for i in range(self._probs.size):
            h = float(self._probs[i]) * plot.height()
            color = QtGui.QColor(RESPONDER_COLOR if self._responder[i] else NON_RESPONDER_COLOR)
            if i < self._voting.size and not self._voting[i]:
                color.setAlpha(70)  # did not take part in the vote
            p.setBrush(color)
            p.drawRect(QtCore.QRectF(plot.left() + i * slot + gap / 2, plot.bottom() - h, slot - gap, h))
        # The decision threshold.
        if self._threshold is not None:
            p.setPen(QtGui.QPen(GRID_COLOR, 1.0, QtCore.Qt.PenStyle.DashLine))
            y_cut = plot.bottom() - self._threshold * plot.height()
            p.drawLine(QtCore.QPointF(plot.left(), y_cut), QtCore.QPointF(plot.right(), y_cut))
        # Current slice.
        if 0 <= self._current < n:
            p.setPen(QtGui.QPen(QtGui.QColor(255, 255, 255), 1.5))
            p.setBrush(QtCore.Qt.BrushStyle.NoBrush)
            r = self.bar_rect(self._current).adjusted(0.5, 0.5, -0.5, -0.5)
            if r.width() < 3:
                r.adjust(-1, 0, 1, 0)
            p.drawRect(r)
        p.end()

    # -- helpers -------------------------------------------------------------------------
    def _n(self) -> int:
        return int(self._probs.size)

    def _plot_rect(self) -> QtCore.QRectF:
        return QtCore.QRectF(
            self.LEFT,
            self.TOP,
            max(self.width() - self.LEFT - self.RIGHT, 1),
            max(self.height() - self.TOP - self.BOTTOM, 1),
        )
