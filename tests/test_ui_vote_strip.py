"""The per-slice vote strip (app.ui.vote_strip)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore, QtGui

from app.ui.vote_strip import NON_RESPONDER_COLOR, RESPONDER_COLOR, VoteStrip, is_responder_label

pytestmark = pytest.mark.gui


@pytest.fixture
def strip(qtbot) -> VoteStrip:  # type: ignore[no-untyped-def]
    widget = VoteStrip()
    qtbot.addWidget(widget)
    widget.resize(640, 90)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_labels_in_every_spelling() -> None:
    assert is_responder_label("responder") and is_responder_label("Responder ")
    assert not is_responder_label("non-responder") and not is_responder_label("non_responder")
    assert is_responder_label(1) and not is_responder_label(0)
    assert is_responder_label(True) and not is_responder_label(False)


def test_click_on_each_bar_emits_its_index(qtbot, strip: VoteStrip) -> None:  # type: ignore[no-untyped-def]
    n = 30
    strip.set_result(np.linspace(0, 1, n), ["responder"] * 15 + ["non-responder"] * 15)
    assert strip.count() == n
    for i in (0, 7, 29):
        with qtbot.waitSignal(strip.sliceClicked) as sig:
            qtbot.mouseClick(strip, QtCore.Qt.MouseButton.LeftButton, pos=strip.bar_rect(i).center().toPoint())
        assert sig.args == [i]
    # the left margin (axis labels) is not a bar
    with qtbot.assertNotEmitted(strip.sliceClicked):
        qtbot.mouseClick(strip, QtCore.Qt.MouseButton.LeftButton, pos=QtCore.QPoint(3, 40))


def test_bars_are_drawn_with_vote_colour_and_height(strip: VoteStrip) -> None:
    probs = [0.9, 0.2, 0.6, 0.1]
    strip.set_result(probs, ["responder", "non-responder", "responder", "non-responder"])
    strip.set_current(2)
    image = strip.grab().toImage()
    plot_bottom = strip.height() - strip.BOTTOM
    plot_h = plot_bottom - strip.TOP
    for i, p in enumerate(probs):
        x = int(strip.bar_rect(i).center().x())
        # a pixel inside the bar (just above the baseline) has the vote colour ...
        inside = QtGui.QColor(image.pixel(x, plot_bottom - 3))
        expected = RESPONDER_COLOR if i % 2 == 0 else NON_RESPONDER_COLOR
        assert inside.rgb() == expected.rgb(), i
        # ... and a pixel clearly above the bar's top does not
        above_y = int(plot_bottom - p * plot_h) - 4
        if above_y > strip.TOP + 2:
            assert QtGui.QColor(image.pixel(x, above_y)).rgb() != expected.rgb(), i


def test_liver_band_current_marker_and_clear(strip: VoteStrip) -> None:
    strip.set_result([0.5, 0.7, 0.2], [1, 1, 0])
    strip.set_liver_mask([False, True, True])
    strip.set_current(1)
    np.testing.assert_array_equal(strip.liver_mask(), [False, True, True])
    np.testing.assert_array_equal(strip.votes(), [True, True, False])
    assert strip.current() == 1
    image = strip.grab().toImage()
    band_y = strip.height() - strip.BOTTOM + 5
    from app.ui.vote_strip import LIVER_COLOR

    assert QtGui.QColor(image.pixel(int(strip.bar_rect(1).center().x()), band_y)).rgb() == LIVER_COLOR.rgb()
    assert QtGui.QColor(image.pixel(int(strip.bar_rect(0).center().x()), band_y)).rgb() != LIVER_COLOR.rgb()
    strip.clear()
    assert strip.count() == 0 and strip.current() == -1 and strip.liver_mask().size == 0
    assert strip.index_at(strip.width() / 2) is None


def test_mismatched_lengths_are_refused(strip: VoteStrip) -> None:
    with pytest.raises(ValueError, match="3 probabilities but 2 labels"):
        strip.set_result([0.1, 0.2, 0.3], ["responder", "responder"])


def test_drag_scrubs_through_bars(qtbot, strip: VoteStrip) -> None:  # type: ignore[no-untyped-def]
    strip.set_result([0.5] * 10, [1] * 10)
    seen: list[int] = []
    strip.sliceClicked.connect(seen.append)
    strip.sliceClicked.connect(strip.set_current)
    qtbot.mousePress(strip, QtCore.Qt.MouseButton.LeftButton, pos=strip.bar_rect(1).center().toPoint())
    for i in (2, 3, 3, 4):
        ev = QtGui.QMouseEvent(
            QtCore.QEvent.Type.MouseMove, strip.bar_rect(i).center(), strip.mapToGlobal(strip.bar_rect(i).center()),
            QtCore.Qt.MouseButton.NoButton, QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier,
        )
        QtGui.QGuiApplication.sendEvent(strip, ev)
    qtbot.mouseRelease(strip, QtCore.Qt.MouseButton.LeftButton, pos=strip.bar_rect(4).center().toPoint())
    assert seen == [1, 2, 3, 4]  # no repeats while the mouse stays on a bar


def test_threshold_line_and_slices_that_did_not_vote(strip: VoteStrip) -> None:
    """A lesion-head model: threshold 0.32 drawn where it is (not at 0.5), and the bars of the
    slices that did not take part in the vote drawn faint, their tooltip saying why."""
    probs = [0.4, 0.4, 0.4, 0.4]
    strip.set_result(probs, ["responder"] * 4, voting=[True, False, True, False], threshold=0.32)
    assert strip.threshold() == pytest.approx(0.32) and strip.voting().tolist() == [True, False, True, False]
    image = strip.grab().toImage()
    plot_bottom = strip.height() - strip.BOTTOM
    plot_h = plot_bottom - strip.TOP
    colours = [QtGui.QColor(image.pixel(int(strip.bar_rect(i).center().x()), plot_bottom - 3)) for i in range(4)]
    assert colours[0].rgb() == RESPONDER_COLOR.rgb() == colours[2].rgb()
    assert colours[1].rgb() != RESPONDER_COLOR.rgb() and colours[1].rgb() == colours[3].rgb()  # faint
    # the dashed line (grid grey) lies at the threshold's height, not at 0.5: look for its
    # pixels in the 1-px gaps between the bars
    grid = QtGui.QColor(150, 150, 150).rgb()
    row_cut = plot_bottom - 0.32 * plot_h
    gaps = [int(strip.bar_rect(i).right()) for i in range(3)]
    line_rows = {y for x in gaps for y in range(strip.TOP, plot_bottom) if image.pixel(x, y) == grid}
    assert line_rows and all(abs(y - row_cut) <= 1.5 for y in line_rows), (line_rows, row_cut)
    with pytest.raises(ValueError, match="voting flags"):
        strip.set_result(probs, ["responder"] * 4, voting=[True])
    strip.clear()  # the next study has no prediction yet: no threshold of the last one lingers
    assert strip.threshold() is None
