"""Measurements, crosshair, W/L entry and presets, invert, cine, HU read-out (issue 17).

Two kinds of data: volumes constructed so that every voxel's value is known (geometry checks,
including a series stored mirrored), and a real synthetic DICOM study with a lesion whose
position and enhancement the generator recorded (the ROI read across the three phases).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6 import QtCore, QtWidgets  # noqa: E402
from test_ui_viewers import make_study, make_volume  # noqa: E402

from app.ui.measure import Measurement, roi_stats  # noqa: E402
from app.ui.viewer import SliceGeometry  # noqa: E402
from app.ui.viewer_panel import ViewerPanel  # noqa: E402

pytestmark = pytest.mark.gui


def _block_volume(flipped: bool):  # type: ignore[no-untyped-def]
    """1 mm pixels, zeros except 100 HU in patient x 10..20 mm, y -5..5 mm (a 10 × 10 mm block)."""
    vol = make_volume("plain", 3, 0.0, 64, 64, 1.0, flipped=flipped)
    vol.hu[:] = 0.0
    g = SliceGeometry.of(vol)
    for r in range(g.rows):
        for c in range(g.cols):
            x, y = g.centre_mm(r, c)
            if 10 <= x <= 20 and -5 <= y <= 5:
                vol.hu[:, r, c] = 100.0
    return vol, g


@pytest.mark.parametrize("flipped", [False, True])
def test_roi_stats_measure_where_the_image_is_drawn(flipped: bool) -> None:
    vol, g = _block_volume(flipped)
    inside = roi_stats(vol.hu[1], g, Measurement("rectangle", 10.5, -4.5, 18.5, 3.5))
    assert inside is not None and inside.mean == 100.0 and inside.sd == 0.0
    assert inside.n_pixels == 8 * 8 and inside.area_mm2 == pytest.approx(64.0)
    half = roi_stats(vol.hu[1], g, Measurement("rectangle", 15.5, -4, 25.5, 4))
    assert half is not None and half.mean == pytest.approx(50.0)  # 5 columns in, 5 out
    ellipse = roi_stats(vol.hu[1], g, Measurement("ellipse", -20, -20, 0, 0))
    assert ellipse is not None and ellipse.mean == 0.0
    assert ellipse.area_mm2 == pytest.approx(math.pi * 100)
    assert abs(ellipse.n_pixels - math.pi * 100) < 12  # pixel centres inside a r = 10 mm disc
    assert roi_stats(vol.hu[1], g, Measurement("ellipse", 500, 500, 510, 510)) is None
    assert roi_stats(vol.hu[1], g, Measurement("distance", 0, 0, 3, 4)) is None
    assert Measurement("distance", 0, 0, 3, 4).length_mm == 5.0


@pytest.fixture
def panel(qtbot):  # type: ignore[no-untyped-def]
    widget = ViewerPanel()
    qtbot.addWidget(widget)
    widget.resize(1300, 520)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_study(make_study())
    return widget


class FakeDrag:
    """What pyqtgraph hands ``mouseDragEvent`` (the parts SliceViewBox reads)."""

    def __init__(self, view, start_mm, now_mm, stage):  # type: ignore[no-untyped-def]
        self.view, self.stage = view, stage
        self._start = view.mapViewToScene(QtCore.QPointF(*start_mm))
        self._now = view.mapViewToScene(QtCore.QPointF(*now_mm))

    def button(self):  # type: ignore[no-untyped-def]
        return QtCore.Qt.MouseButton.LeftButton

    def buttonDownScenePos(self, _b=None):  # type: ignore[no-untyped-def]  # noqa: N802
        return self._start

    def scenePos(self):  # type: ignore[no-untyped-def]  # noqa: N802
        return self._now

    def isStart(self) -> bool:  # noqa: N802
        return self.stage == "start"

    def isFinish(self) -> bool:  # noqa: N802
        return self.stage == "finish"

    def accept(self) -> None:
        pass


def drag(view, start, end) -> None:  # type: ignore[no-untyped-def]
    mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    for now, stage in ((start, "start"), (mid, "move"), (end, "finish")):
        view.mouseDragEvent(FakeDrag(view, start, now, stage))


def test_distance_drawn_in_one_pane_shows_in_all(panel: ViewerPanel) -> None:
    panel.measure.set_tool("distance")
    view = panel.viewers["arterial"].view
    drag(view, (0.0, 0.0), (30.0, 40.0))
    [m] = panel.measure.measurements()
    assert m.kind == "distance" and m.length_mm == pytest.approx(50.0, abs=0.01)
    for phase in panel.viewers:
        assert panel.measure.label_text(phase, 0) == "50.0 mm"
    # back to panning: the viewers' left button pans again (pyqtgraph's own drag)
    panel.measure.set_tool("navigate")
    assert all(v.view.tool == "navigate" for v in panel.viewers.values())
    assert panel.tool_buttons["navigate"].isChecked()


def test_roi_linked_across_phases_follows_the_scroll(panel: ViewerPanel) -> None:
    """Each pane reads its own slice: the constructed values encode phase and slice."""
    panel.measure.set_tool("rectangle")
    drag(panel.viewers["plain"].view, (-5.0, -5.0), (5.0, 5.0))
    before = {p: panel.measure.stats(p, 0).mean for p in panel.viewers}  # type: ignore[union-attr]
    assert before["plain"] < 1000 <= before["arterial"] < 2000 <= before["portal"]
    panel.step(1)  # one pair = 5 mm = one slice in each phase: +10 HU everywhere
    after = {p: panel.measure.stats(p, 0).mean for p in panel.viewers}  # type: ignore[union-attr]
    for p in panel.viewers:
        assert after[p] - before[p] == pytest.approx(10.0, abs=0.01), p
    assert f"{after['arterial']:.0f} ±" in panel.measure.label_text("arterial", 0)
    panel.measure.clear()
    assert panel.measure.measurements() == []


def test_crosshair_sets_a_reference_on_every_pane(panel: ViewerPanel, qtbot) -> None:  # type: ignore[no-untyped-def]
    texts: list[str] = []
    panel.measure.measured.connect(texts.append)
    panel.measure.set_tool("crosshair")
    view = panel.viewers["portal"].view
    view.mouseClickEvent(_Click(view, (3.0, -2.0)))
    assert panel.measure.reference() == pytest.approx((3.0, -2.0))
    for cross in panel.measure._cross.values():
        assert all(line.isVisible() for line in cross.lines)
    assert texts and texts[-1].startswith("Reference (3.0, -2.0) mm: plain")
    assert "arterial" in texts[-1] and "portal" in texts[-1]


class _Click:
    def __init__(self, view, mm):  # type: ignore[no-untyped-def]
        self._pos = view.mapViewToScene(QtCore.QPointF(*mm))

    def button(self):  # type: ignore[no-untyped-def]
        return QtCore.Qt.MouseButton.LeftButton

    def scenePos(self):  # type: ignore[no-untyped-def]  # noqa: N802
        return self._pos

    def accept(self) -> None:
        pass


def test_window_typed_in_and_preset_hot_keys(panel: ViewerPanel, qtbot) -> None:  # type: ignore[no-untyped-def]
    panel.width_spin.setValue(1234)
    panel.level_spin.setValue(-321)
    panel.width_spin.editingFinished.emit()
    wl = panel.window_level()
    assert (wl.width, wl.level) == (1234, -321)
    assert panel.viewers["plain"].image_item.levels == pytest.approx([-938, 296])
    panel.activateWindow()
    panel.viewers["plain"].setFocus()
    for key, name in ((QtCore.Qt.Key.Key_4, "Bone"), (QtCore.Qt.Key.Key_5, "Lung"),
                      (QtCore.Qt.Key.Key_3, "Soft tissue")):
        qtbot.keyClick(panel.viewers["plain"], key)
        assert panel.window_level().name == name
        assert panel.width_spin.value() == round(panel.window_level().width)
    # a right-drag leaves the box on "Custom", never blank
    panel.viewers["plain"].windowDragged.emit(50.0, 0.0, True)
    assert panel._preset_box.currentText() == "Custom"


def test_invert_with_the_key(panel: ViewerPanel, qtbot) -> None:  # type: ignore[no-untyped-def]
    panel.viewers["arterial"].setFocus()
    qtbot.keyClick(panel.viewers["arterial"], QtCore.Qt.Key.Key_I)
    assert panel.inverted() and all(v.inverted() for v in panel.viewers.values())
    assert panel.viewers["plain"].image_item.lut is not None
    assert "inverted" in panel.viewers["portal"].corner_texts()["bl"]
    qtbot.keyClick(panel.viewers["arterial"], QtCore.Qt.Key.Key_I)
    assert not panel.inverted() and panel.viewers["plain"].image_item.lut is None


def test_cine_plays_and_wraps(panel: ViewerPanel, qtbot) -> None:  # type: ignore[no-untyped-def]
    panel.set_pair_index(panel.count() - 2)
    panel.cine.set_fps(30)
    seen: list[int] = []
    panel.pairIndexChanged.connect(seen.append)
    panel.cine_button.click()
    assert panel.cine.running()
    qtbot.waitUntil(lambda: len(seen) >= 3, timeout=5000)
    panel.cine_button.click()
    assert not panel.cine.running()
    assert seen[:3] == [panel.count() - 1, 0, 1]


def test_hu_read_out_follows_wheel_scrolling(panel: ViewerPanel) -> None:
    """Issue 17 item 4: the status text showed the old z after scrolling under a still mouse."""
    texts: list[str] = []
    panel.cursorInfo.connect(texts.append)
    viewer = panel.viewers["plain"]
    scene_pos = viewer.view.mapViewToScene(QtCore.QPointF(1.0, 1.0))
    viewer._mouse_moved(scene_pos)
    first = texts[-1]
    panel.step(1)  # the wheel: the mouse did not move
    assert texts[-1] != first
    z = float(viewer.volume.z_positions[viewer.current_index()])  # type: ignore[union-attr]
    assert f"z = {z:.1f} mm" in texts[-1]


def test_one_window_control_and_one_cam_toggle(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Issue 17 item 6: no second W/L box in the main toolbar, one Grad-CAM toggle."""
    from app.ui.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    combos = [c for c in w.findChildren(QtWidgets.QComboBox) if "Abdomen" in [c.itemText(i).split(" (")[0] for i in range(c.count())]]
    assert len(combos) == 1
    toolbar = w.findChild(QtWidgets.QToolBar, "mainToolbar")
    assert w.act_cam not in toolbar.actions()
    checks = [c for c in w.findChildren(QtWidgets.QCheckBox) if "Grad-CAM" in c.text()]
    assert len(checks) == 1
    w.act_cam.setChecked(False)  # the View menu entry and the check box stay in step
    assert not checks[0].isChecked()
    w.close()


def test_hint_and_combos_are_not_cut_off(qtbot, panel: ViewerPanel) -> None:  # type: ignore[no-untyped-def]
    """Issue 17 item 5: every label of the viewer's toolbars gets its full width."""
    panel.resize(1300, 520)
    qtbot.wait(20)
    for bar in (panel.toolbar, panel.tools_bar):
        for label in bar.findChildren(QtWidgets.QLabel):
            assert label.width() >= label.sizeHint().width(), label.text()


def test_lesion_roi_shows_enhancement_and_washout(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """On a real (synthetic) DICOM study: an ROI at the recorded lesion centre reads the
    arterial enhancement and portal washout the generator put there."""
    import ui_fixtures as fx

    from app.dicom.assembly import assemble_folder

    folder, truth = fx.generate_study(tmp_path, seed=11, matrix=128, delayed=False)
    _scan, results = assemble_folder(folder, keep_volumes=True)
    study = results[0][1]
    panel = ViewerPanel()
    qtbot.addWidget(panel)
    panel.resize(1300, 520)
    panel.show()
    panel.set_study(study)
    lesion = max(truth["lesions"], key=lambda les: les["diameter_mm"])
    x, y, z = lesion["centre_mm"]["arterial"]
    zs = np.array([panel.z_at(i) for i in range(panel.count())])
    panel.set_pair_index(int(np.argmin(np.abs(zs - z))))
    r = lesion["diameter_mm"] / 4  # well inside the lesion
    panel.measure.add(Measurement("ellipse", x - r, y - r, x + r, y + r))
    mean = {p: panel.measure.stats(p, 0).mean for p in ("plain", "arterial", "portal")}  # type: ignore[union-attr]
    assert mean["arterial"] > mean["plain"] + 20  # arterial enhancement
    assert mean["arterial"] > mean["portal"]  # washout

