"""The three synchronised phase viewers (app.ui.viewer, app.ui.viewer_panel, cam_overlay).

The test study is built from numpy arrays with deliberately different geometry per phase, so
that the tests catch a viewer that confuses pair indices with slice indices or pixels with mm:

- plain: 20 slices at z = -100 + 5 k, 64 × 64 px of 0.8 mm;
- arterial: 24 slices at z = -110 + 5 k (slice index = plain index + 2), 48 × 56 px of 1.0 mm;
- portal: 20 slices at z = -97.5 + 5 k, 64 × 64 px, written with rows along -x and columns
  along -y (the displayed image must be mirrored both ways so that patient left stays on
  screen right and anterior up).

Every voxel has a value unique to (phase, slice, row, column): ``hu = base + 10 k + r - c / 100``.
"""

from __future__ import annotations

import os

import numpy as np
import pyqtgraph as pg
import pytest
import ui_fixtures as fx
from PySide6 import QtCore, QtGui, QtWidgets

from app.dicom.types import AssembledStudy, SlicePair, Volume
from app.ui.cam_overlay import COLORMAPS, get_colormap, overlay_lut
from app.ui.viewer import PhaseViewer, SliceGeometry
from app.ui.viewer_panel import ViewerPanel, link_vote_strip
from app.ui.vote_strip import VoteStrip
from app.ui.windowing import PRESETS, drag_window, make_window, preset

pytestmark = pytest.mark.gui



LIVER_RANGE = (-70.0, -40.0)
PHASE_BASE = {"plain": 0.0, "arterial": 1000.0, "portal": 2000.0}


def make_volume(
    phase: str,
    n: int,
    z0: float,
    rows: int,
    cols: int,
    spacing: float,
    flipped: bool = False,
) -> Volume:
    """A volume whose voxel values encode (phase, slice, row, column)."""
    k, r, c = np.meshgrid(np.arange(n), np.arange(rows), np.arange(cols), indexing="ij")
    hu = (PHASE_BASE[phase] + 10.0 * k + r - c / 100.0).astype(np.float32)
    z = z0 + 5.0 * np.arange(n, dtype=float)
    direction = np.eye(3)
    origin_x, origin_y = -cols * spacing / 2.0, -rows * spacing / 2.0
    if flipped:
        # rows run towards patient right (-x), columns towards anterior (-y); the normal
        # (row x column) stays +z, as for a patient scanned feet first and prone-flipped.
        direction = np.diag([-1.0, -1.0, 1.0])
        origin_x, origin_y = -origin_x, -origin_y
    return Volume(
        hu=hu,
        z_positions=z,
        origin=(origin_x, origin_y, float(z[0])),
        pixel_spacing=(spacing, spacing),
        slice_spacing=5.0,
        direction=direction,
        sop_instance_uids=[f"1.2.3.{phase}.{i}" for i in range(n)],
        series_uid=f"1.2.3.{phase}",
        slice_thickness=5.0,
    )


def make_study(with_pairs: bool = True) -> AssembledStudy:
    """The three-phase study described in the module docstring.

    Pairs run over z_ref = -85 .. -25 mm (13 pairs); the liver range is -70 .. -40 mm in every
    phase, so pairs 3..9 are in the liver range.
    """
    volumes = {
        "plain": make_volume("plain", 20, -100.0, 64, 64, 0.8),
        "arterial": make_volume("arterial", 24, -110.0, 48, 56, 1.0),
        "portal": make_volume("portal", 20, -97.5, 64, 64, 0.8, flipped=True),
    }
    pairs: list[SlicePair] = []
    if with_pairs:
        for z_ref in np.arange(-85.0, -24.0, 5.0):
            index = {p: v.index_of_z(float(z_ref)) for p, v in volumes.items()}
            z_mm = {p: float(volumes[p].z_positions[i]) for p, i in index.items()}
            pairs.append(SlicePair(z_ref=float(z_ref), index=index, z_mm=z_mm))
    return AssembledStudy(
        patient_id="TEST-001",
        patient_name="Test^Patient",
        study_uid="1.2.3",
        study_date="20260101",
        study_description="CT liver multiphase",
        assignment={p: v.series_uid for p, v in volumes.items()},
        volumes=volumes,
        liver_range_mm=dict.fromkeys(volumes, LIVER_RANGE),
        pairs=pairs,
    )


def cam_like(volume: Volume, centre: tuple[int, int], peak: float = 2.0) -> np.ndarray:
    """A Gaussian blob the shape of one slice of ``volume`` (a stand-in for a Grad-CAM map)."""
    rows, cols = volume.hu.shape[1:]
    r, c = np.mgrid[0:rows, 0:cols]
    d2 = (r - centre[0]) ** 2 + (c - centre[1]) ** 2
    return (peak * np.exp(-d2 / (2 * 6.0**2))).astype(np.float32)


# --------------------------------------------------------------------------- fixtures / helpers
@pytest.fixture
def study() -> AssembledStudy:
    return make_study()


@pytest.fixture
def panel(qtbot, study: AssembledStudy) -> ViewerPanel:  # type: ignore[no-untyped-def]
    widget = ViewerPanel()
    qtbot.addWidget(widget)
    widget.resize(1200, 480)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_study(study)
    return widget


def assert_at_pair(panel: ViewerPanel, study: AssembledStudy, i: int) -> None:
    """Every viewer displays the slice that pair ``i`` assigns to its phase."""
    assert panel.pair_index() == i
    for phase, viewer in panel.viewers.items():
        expected = study.pairs[i].index[phase]
        assert viewer.current_index() == expected, phase
        shown = viewer.geometry_mm.display(study.volumes[phase].hu[expected])  # type: ignore[union-attr]
        np.testing.assert_array_equal(viewer.image_item.image, shown)


def wheel(viewer: PhaseViewer, steps: float, ctrl: bool = False) -> None:
    """Send a real wheel event (``steps`` notches of 120 units) to the middle of the viewport."""
    vp = viewer.viewport()
    pos = QtCore.QPointF(vp.width() / 2, vp.height() / 2)
    ev = QtGui.QWheelEvent(
        pos,
        vp.mapToGlobal(pos),
        QtCore.QPoint(0, 0),
        QtCore.QPoint(0, int(120 * steps)),
        QtCore.Qt.MouseButton.NoButton,
        QtCore.Qt.KeyboardModifier.ControlModifier if ctrl else QtCore.Qt.KeyboardModifier.NoModifier,
        QtCore.Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QtWidgets.QApplication.sendEvent(vp, ev)


def view_centre_and_scale(view: pg.ViewBox) -> tuple[float, float, float]:
    (x0, x1), (y0, y1) = view.viewRange()
    return (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / view.width()


# --------------------------------------------------------------------------- pure helpers
def test_window_presets_and_drag() -> None:
    assert [(p.name, p.width, p.level) for p in PRESETS] == [
        ("Abdomen", 400, 50), ("Liver", 150, 70), ("Soft tissue", 350, 40), ("Bone", 1800, 400),
        ("Lung", 1500, -600), ("Model W400/L0", 400, 0)
    ]
    assert preset("liver").levels == (-5.0, 145.0)
    start = make_window(400, 50)
    dragged = drag_window(start, 25, -10)  # right widens, up lowers the level
    assert dragged.width > 400 and dragged.level < 50
    assert drag_window(start, 0, 0) == preset("Abdomen")  # back to the start: the preset again
    assert make_window(-5, 99999).width >= 1 and make_window(-5, 99999).level <= 4000


def test_geometry_maps_mm_to_acquired_pixels(study: AssembledStudy) -> None:
    for phase, vol in study.volumes.items():
        g = SliceGeometry.of(vol)
        for r, c in [(0, 0), (5, 17), (g.rows - 1, g.cols - 1)]:
            assert g.pixel_at(*g.centre_mm(r, c)) == (r, c), phase
        # The displayed image is in patient orientation: x grows to the right, y downwards.
        x_left, _ = g.centre_mm(0, 0)
        x_right, _ = g.centre_mm(0, g.cols - 1)
        assert (x_right > x_left) == (phase != "portal")
    assert SliceGeometry.of(study.volumes["portal"]).flips == (True, True)
    assert SliceGeometry.of(study.volumes["plain"]).flips == (False, False)


def shown_viewer(qtbot, volume: Volume, description: str, size: int = 600) -> PhaseViewer:  # type: ignore[no-untyped-def]
    """A PhaseViewer of ``size`` × ``size`` px on screen with ``volume`` in it."""
    viewer = PhaseViewer("arterial")
    qtbot.addWidget(viewer)
    viewer.resize(size, size)
    viewer.show()
    qtbot.waitExposed(viewer)
    viewer.set_volume(volume, description)
    return viewer


def test_long_description_does_not_hide_the_orientation_letter(qtbot, study: AssembledStudy) -> None:  # type: ignore[no-untyped-def]
    """Issue 17 item 5: the PLAIN pane's "A" was hidden behind a long series description."""
    viewer = shown_viewer(qtbot, study.volumes["plain"], "ABDOMEN NATIVE 5.0 mm B30f soft tissue kernel iDose 3", 520)
    qtbot.wait(20)
    assert viewer.orientation_letters()["A"]
    assert "iDose 3" in viewer.corner_texts()["tl"]  # wrapped, not cut


def test_a_pane_note_wider_than_a_narrow_pane_wraps_inside_it(qtbot, study: AssembledStudy) -> None:  # type: ignore[no-untyped-def]
    """A 3-pane viewer on a 1,500 px screen gives each pane under 300 px: the note of a slice the
    model did not use was one line wider than the pane, cut off on both sides."""
    viewer = shown_viewer(qtbot, study.volumes["arterial"], "ART 5.0 B30f", 260)
    viewer.show_slice(0, "in liver range · not used by the model (no tumour seen): no heat map")
    qtbot.wait(20)
    note = viewer._corners["tr"]
    box = note.mapRectToParent(note.boundingRect())
    pane = viewer.view.boundingRect()
    assert pane.width() < 300
    assert box.left() >= pane.left() and box.right() <= pane.right() + 0.5, (box, pane)
    assert "no heat map" in viewer.corner_texts()["tr"]  # wrapped, not cut


def test_orientation_letters_never_cover_corner_texts(qtbot, study: AssembledStudy) -> None:  # type: ignore[no-untyped-def]
    viewer = shown_viewer(qtbot, study.volumes["arterial"], "ART 5.0 B30f")
    assert viewer.orientation_letters() == dict.fromkeys("RLAP", True)
    viewer.resize(170, 500)  # a tall narrow viewer: the corner texts meet in the middle
    qtbot.wait(20)
    letters = viewer.orientation_letters()
    assert letters["R"] and letters["L"] and not letters["P"]
    corners = [c.mapRectToParent(c.boundingRect()) for c in viewer._corners.values() if c.toPlainText()]
    for i, a in enumerate(corners):  # corner texts do not overlap each other either
        assert not any(a.intersects(b) for b in corners[i + 1 :])
    for item in viewer._edges.values():
        if item.isVisible():
            assert not any(item.mapRectToParent(item.boundingRect()).intersects(r) for r in corners)


def test_colormaps_are_offline_and_ramped() -> None:
    for name in COLORMAPS:
        assert get_colormap(name) is not None
        lut = overlay_lut(name)
        assert lut.shape == (256, 4)
        assert lut[0, 3] == 0 and lut[-1, 3] == 255  # weak activations are transparent
    with pytest.raises(ValueError):
        get_colormap("no-such-map")


# --------------------------------------------------------------------------- scrolling
def test_study_opens_in_the_liver_range_with_all_phases_paired(
    panel: ViewerPanel, study: AssembledStudy
) -> None:
    mask = panel.liver_mask()
    z = np.array([p.z_ref for p in study.pairs])
    np.testing.assert_array_equal(mask, (z >= -70) & (z <= -40))
    assert mask[panel.pair_index()]
    assert_at_pair(panel, study, panel.pair_index())
    np.testing.assert_array_equal(panel.slider.marks(), mask)
    # the arterial volume is offset by two slices: pair index != slice index
    i = panel.pair_index()
    assert study.pairs[i].index["arterial"] == study.pairs[i].index["plain"] + 2


def test_wheel_moves_all_viewers_and_ctrl_wheel_zooms(
    qtbot, panel: ViewerPanel, study: AssembledStudy  # type: ignore[no-untyped-def]
) -> None:
    start = panel.pair_index()
    with qtbot.waitSignal(panel.pairIndexChanged) as sig:
        wheel(panel.viewers["arterial"], +1)
    assert sig.args == [start + 1]
    assert_at_pair(panel, study, start + 1)
    wheel(panel.viewers["portal"], -1)
    wheel(panel.viewers["portal"], -1)
    assert_at_pair(panel, study, start - 1)

    # a touchpad's small deltas add up: half a notch does nothing, the second half one slice
    wheel(panel.viewers["portal"], 0.5)
    assert panel.pair_index() == start - 1
    wheel(panel.viewers["portal"], 0.5)
    assert_at_pair(panel, study, start)
    wheel(panel.viewers["portal"], -1)

    before = panel.viewers["plain"].view.viewRange()
    wheel(panel.viewers["plain"], +2, ctrl=True)
    assert panel.pair_index() == start - 1  # Ctrl+wheel does not scroll
    after = panel.viewers["plain"].view.viewRange()
    assert after[0][1] - after[0][0] < before[0][1] - before[0][0]  # zoomed in


def test_keys_and_slider_move_all_viewers(
    qtbot, panel: ViewerPanel, study: AssembledStudy  # type: ignore[no-untyped-def]
) -> None:
    viewer = panel.viewers["plain"]
    viewer.setFocus()
    start = panel.pair_index()
    qtbot.keyClick(viewer, QtCore.Qt.Key.Key_Up)
    assert_at_pair(panel, study, start + 1)
    qtbot.keyClick(viewer, QtCore.Qt.Key.Key_Down)
    qtbot.keyClick(viewer, QtCore.Qt.Key.Key_Down)
    assert_at_pair(panel, study, start - 1)
    qtbot.keyClick(viewer, QtCore.Qt.Key.Key_End)
    assert_at_pair(panel, study, len(study.pairs) - 1)
    qtbot.keyClick(viewer, QtCore.Qt.Key.Key_PageDown)
    assert_at_pair(panel, study, len(study.pairs) - 11)
    qtbot.keyClick(viewer, QtCore.Qt.Key.Key_Home)
    assert_at_pair(panel, study, 0)
    qtbot.keyClick(viewer, QtCore.Qt.Key.Key_Down)  # clamped at the first pair
    assert_at_pair(panel, study, 0)

    # the same keys on the panel itself (focus on its background, not on a viewer)
    panel.setFocus()
    qtbot.keyClick(panel, QtCore.Qt.Key.Key_PageUp)
    assert_at_pair(panel, study, 10)
    qtbot.keyClick(panel, QtCore.Qt.Key.Key_End)
    assert_at_pair(panel, study, len(study.pairs) - 1)

    panel.slider.setValue(7)
    assert_at_pair(panel, study, 7)
    panel.set_pair_index(2)
    assert panel.slider.value() == 2
    assert "z = -75.0 mm" in panel.position_label.text()
    assert "outside liver range" in panel.position_label.text()
    assert panel.viewers["arterial"].corner_texts()["tr"].startswith(
        f"z = {study.pairs[2].z_mm['arterial']:.1f} mm"
    )


def test_study_without_pairs_shows_middle_slices(qtbot) -> None:  # type: ignore[no-untyped-def]
    study = make_study(with_pairs=False)
    panel = ViewerPanel()
    qtbot.addWidget(panel)
    panel.set_study(study)
    assert not panel.paired and panel.count() == 20
    plain = study.volumes["plain"]
    # no liver-range mask without pairs? the liver range is known: start in its middle
    z = float(plain.z_positions[panel.pair_index()])
    assert -70 <= z <= -40
    for phase, viewer in panel.viewers.items():
        assert viewer.current_index() == study.volumes[phase].index_of_z(z)
    panel.clear()
    assert panel.pair_index() == -1
    assert all(v.current_index() is None for v in panel.viewers.values())


# --------------------------------------------------------------------------- window / level
def test_presets_apply_to_all_three_image_items(qtbot, panel: ViewerPanel) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(panel.windowChanged) as sig:
        panel.set_preset("Liver")
    assert sig.args == [150.0, 70.0]
    for viewer in panel.viewers.values():
        assert tuple(viewer.image_item.levels) == (-5.0, 145.0)
        assert viewer.corner_texts()["bl"].split("\n") == ["W 150  L 70", "Liver"]
    panel.set_window(400, 0)
    for viewer in panel.viewers.values():
        assert tuple(viewer.image_item.levels) == (-200.0, 200.0)
        assert "Model W400/L0" in viewer.corner_texts()["bl"]
    # the levels survive scrolling (no autoLevels on the next slice)
    panel.step(1)
    for viewer in panel.viewers.values():
        assert tuple(viewer.image_item.levels) == (-200.0, 200.0)


def test_right_drag_on_one_viewer_windows_all(qtbot, panel: ViewerPanel) -> None:  # type: ignore[no-untyped-def]
    panel.set_preset("Abdomen")
    vp = panel.viewers["arterial"].viewport()
    start = QtCore.QPointF(vp.width() / 2, vp.height() / 2)

    def send(kind: QtCore.QEvent.Type, pos: QtCore.QPointF, buttons: QtCore.Qt.MouseButton) -> None:
        ev = QtGui.QMouseEvent(
            kind, pos, vp.mapToGlobal(pos), QtCore.Qt.MouseButton.RightButton, buttons,
            QtCore.Qt.KeyboardModifier.NoModifier,
        )
        QtWidgets.QApplication.sendEvent(vp, ev)

    right = QtCore.Qt.MouseButton.RightButton
    send(QtCore.QEvent.Type.MouseButtonPress, start, right)
    for dx in (10, 20, 30):
        qtbot.wait(20)  # pyqtgraph drops mouse moves closer than ~10 ms
        send(QtCore.QEvent.Type.MouseMove, start + QtCore.QPointF(dx, -dx / 3), right)
    send(QtCore.QEvent.Type.MouseButtonRelease, start + QtCore.QPointF(30, -10), QtCore.Qt.MouseButton.NoButton)
    expected = drag_window(preset("Abdomen"), 30, -10)
    assert panel.window_level().width == pytest.approx(expected.width)
    assert panel.window_level().level == pytest.approx(expected.level)
    for viewer in panel.viewers.values():
        assert tuple(viewer.image_item.levels) == pytest.approx(expected.levels)


# --------------------------------------------------------------------------- linked zoom / pan
def test_zoom_and_pan_are_linked_in_mm(qtbot, panel: ViewerPanel) -> None:  # type: ignore[no-untyped-def]
    plain = panel.viewers["plain"].view
    plain.setRange(xRange=(-10.0, 5.0), yRange=(-3.0, 12.0), padding=0.0)
    cx, cy, scale = view_centre_and_scale(plain)
    for phase in ("arterial", "portal"):
        ox, oy, oscale = view_centre_and_scale(panel.viewers[phase].view)
        assert ox == pytest.approx(cx, abs=1e-3) and oy == pytest.approx(cy, abs=1e-3), phase
        assert oscale == pytest.approx(scale, rel=0.01), phase  # viewers may differ by a pixel
    # a pan on another viewer comes back to the first
    panel.viewers["portal"].view.translateBy(x=4.0, y=-2.0)
    nx, ny, _ = view_centre_and_scale(plain)
    assert nx == pytest.approx(cx + 4.0, abs=1e-3) and ny == pytest.approx(cy - 2.0, abs=1e-3)

    # "Fit" shows every phase's whole slice in every viewer (the union of the fields of view)
    panel.reset_views()
    rects = [v.geometry_mm.rect for v in panel.viewers.values()]  # type: ignore[union-attr]
    for viewer in panel.viewers.values():
        (x0, x1), (y0, y1) = viewer.view.viewRange()
        for r in rects:
            assert x0 <= r.left() + 1e-6 and r.right() <= x1 + 1e-6
            assert y0 <= r.top() + 1e-6 and r.bottom() <= y1 + 1e-6


def test_resizing_does_not_ratchet_the_zoom(qtbot, panel: ViewerPanel) -> None:  # type: ignore[no-untyped-def]
    """pyqtgraph #1348: linked views with a locked aspect zoomed out a little at every resize."""
    panel.viewers["arterial"].view.setRange(xRange=(-12.0, 8.0), yRange=(-6.0, 10.0), padding=0.0)
    before = [view_centre_and_scale(v.view) for v in panel.viewers.values()]
    for w, h in [(1000, 480), (1500, 700), (900, 300), (1200, 480)]:
        panel.resize(w, h)
        qtbot.wait(10)
    after = [view_centre_and_scale(v.view) for v in panel.viewers.values()]
    for (bx, by, bs), (ax, ay, as_) in zip(before, after, strict=True):
        assert (ax, ay) == pytest.approx((bx, by), abs=1e-3)
        assert as_ == pytest.approx(bs, rel=0.01)


# --------------------------------------------------------------------------- Grad-CAM overlay
def test_cam_overlay_cache_toggle_opacity_colormap(
    qtbot, panel: ViewerPanel, study: AssembledStudy  # type: ignore[no-untyped-def]
) -> None:
    i = panel.pair_index()
    art = panel.viewers["arterial"]
    assert not art.cam.item.isVisible()
    cam = cam_like(study.volumes["arterial"], (10, 40))
    panel.set_cam_scale(4.0)
    panel.set_cam("arterial", cam, i)
    assert art.cam.item.isVisible()
    np.testing.assert_array_equal(art.cam.item.image, cam)
    assert tuple(art.cam.item.levels) == (0.0, 4.0)  # one scale per study, not per slice
    assert not panel.viewers["plain"].cam.item.isVisible()  # no CAM for plain yet
    assert "Grad-CAM" in art.corner_texts()["br"]

    # the portal CAM follows the portal slice's mirroring
    pcam = cam_like(study.volumes["portal"], (5, 8))
    panel.set_cam("portal", pcam, i)
    np.testing.assert_array_equal(panel.viewers["portal"].cam.item.image, pcam[::-1, ::-1])

    # a CAM for another pair is cached, shown only when scrolled there
    panel.set_cam("arterial", cam * 0.5, i + 1)
    np.testing.assert_array_equal(art.cam.item.image, cam)
    panel.step(1)
    np.testing.assert_array_equal(art.cam.item.image, cam * 0.5)
    assert not panel.viewers["portal"].cam.item.isVisible()
    panel.step(-1)
    assert panel.viewers["portal"].cam.item.isVisible()
    assert panel.has_cam(i, "arterial") and not panel.has_cam(i)  # plain missing

    with qtbot.waitSignal(panel.camVisibleChanged) as sig:
        panel.set_cam_visible(False)
    assert sig.args == [False]
    assert not art.cam.item.isVisible()
    panel.set_cam_visible(True)
    assert art.cam.item.isVisible()

    assert all(v.smooth() for v in panel.viewers.values())  # bilinear by default
    panel.set_smooth(False)
    assert not any(v.smooth() for v in panel.viewers.values())

    panel.set_cam_opacity(0.3)
    assert all(v.cam.item.opacity() == pytest.approx(0.3) for v in panel.viewers.values())
    panel.set_cam_colormap("viridis")
    np.testing.assert_array_equal(art.cam.item.lut, overlay_lut("viridis"))

    with pytest.raises(ValueError, match="does not match"):
        panel.set_cam("arterial", np.zeros((5, 5)), i)


def test_cam_cache_replaces_everything(panel: ViewerPanel, study: AssembledStudy) -> None:
    n = len(study.pairs)
    cams = {
        p: np.stack([cam_like(v, (20, 20), peak=k + 1.0) for k in range(n)])
        for p, v in study.volumes.items()
    }
    panel.set_cam_cache(cams, global_max=float(n))
    i = panel.pair_index()
    assert panel.has_cam(i) and panel.has_cam(0) and panel.has_cam(n - 1)
    for phase, viewer in panel.viewers.items():
        assert viewer.cam.item.isVisible()
        assert tuple(viewer.cam.item.levels) == (0.0, float(n))
        assert float(viewer.cam.item.image.max()) == pytest.approx(i + 1.0), phase
    panel.clear_cams()
    assert not any(v.cam.item.isVisible() for v in panel.viewers.values())


def test_panes_say_when_the_model_did_not_use_a_slice(panel: ViewerPanel, study: AssembledStudy) -> None:
    """A lesion-head model's Grad-CAM hides the slices that did not vote (CamResult.shown):
    the panes say why there is no heat map there, and only there."""
    n = len(study.pairs)
    cams = {p: np.stack([cam_like(v, (20, 20), peak=1.0) for _ in range(n)]) for p, v in study.volumes.items()}
    shown = [k % 2 == 0 for k in range(n)]
    panel.set_cam_cache(cams, global_max=1.0, shown=shown)
    for k in (0, 1):
        panel.set_pair_index(k)
        texts = [v.corner_texts()["tr"] for v in panel.viewers.values()]
        assert all(("not used by the model" in t) == (not shown[k]) for t in texts), (k, texts)
    panel.clear_cams()  # a new prediction: nothing is marked any more
    assert not any("not used" in v.corner_texts()["tr"] for v in panel.viewers.values())


def test_large_cam_is_block_averaged_but_stays_registered(qtbot) -> None:  # type: ignore[no-untyped-def]
    """A 512² CAM is drawn at 256² (cheaper to paint) without moving its hot spot."""
    vol = make_volume("portal", 2, 0.0, 512, 501, 0.7, flipped=True)  # odd: last column dropped
    viewer = PhaseViewer("portal")
    qtbot.addWidget(viewer)
    viewer.set_volume(vol)
    r0, c0 = 100, 301
    cam = np.zeros((512, 501), np.float32)
    cam[r0 - 1 : r0 + 1, c0 - 1 : c0 + 1] = 1.0  # a 2 x 2 block: one displayed pixel at most
    viewer.set_cam(cam)
    shown = viewer.cam.item.image
    assert shown.shape == (256, 250)
    assert float(shown.sum()) * 4 == pytest.approx(4.0)  # block means keep the total activation
    # the displayed hot pixel maps back (through the item's rect) onto the original pixels
    rr, cc = np.unravel_index(np.argmax(shown), shown.shape)
    rect = viewer.cam.item.mapRectToParent(viewer.cam.item.boundingRect())
    x = rect.left() + (cc + 0.5) * rect.width() / shown.shape[1]
    y = rect.top() + (rr + 0.5) * rect.height() / shown.shape[0]
    x0, y0 = viewer.geometry_mm.centre_mm(r0, c0)  # type: ignore[union-attr]
    assert abs(x - x0) <= 0.7 * 1.01 and abs(y - y0) <= 0.7 * 1.01


# --------------------------------------------------------------------------- cursor read-out
def test_cursor_reports_hu_of_the_pixel_under_the_mouse(
    qtbot, panel: ViewerPanel, study: AssembledStudy  # type: ignore[no-untyped-def]
) -> None:
    for phase, (r, c) in {"plain": (12, 40), "portal": (3, 50)}.items():
        viewer = panel.viewers[phase]
        k = viewer.current_index()
        assert k is not None
        x, y = viewer.geometry_mm.centre_mm(r, c)  # type: ignore[union-attr]
        scene_pos = viewer.view.mapViewToScene(QtCore.QPointF(x, y))
        qtbot.wait(20)  # pyqtgraph rate-limits mouse moves
        with qtbot.waitSignal(panel.cursorInfo) as sig:
            viewer.scene().sigMouseMoved.emit(scene_pos)
        hu = float(study.volumes[phase].hu[k, r, c])
        z = float(study.volumes[phase].z_positions[k])
        assert sig.args[0] == f"{phase}  z = {z:.1f} mm  (col {c}, row {r})  HU = {hu:.0f}"
    # outside the image: nothing is reported
    assert panel.viewers["plain"].info_at(1e4, 1e4) is None
    # with a Grad-CAM shown, its value on the study's scale follows the HU
    viewer = panel.viewers["portal"]
    cam = cam_like(study.volumes["portal"], (3, 50), peak=2.0)
    cam[0, 0] = np.nan  # a degenerate value must not break the read-out or the overlay
    panel.set_cam_scale(4.0)
    panel.set_cam("portal", cam, panel.pair_index())
    text = viewer.info_at(*viewer.geometry_mm.centre_mm(3, 50))  # type: ignore[union-attr]
    assert text is not None and text.endswith("CAM = 0.50")
    assert viewer.info_at(*viewer.geometry_mm.centre_mm(0, 0)).endswith("CAM = 0.00")  # type: ignore[union-attr]
    panel.set_cam_visible(False)
    assert "CAM" not in viewer.info_at(*viewer.geometry_mm.centre_mm(3, 50))  # type: ignore[union-attr,operator]


# --------------------------------------------------------------------------- vote strip link
def test_vote_strip_is_linked_to_the_panel(
    qtbot, panel: ViewerPanel, study: AssembledStudy  # type: ignore[no-untyped-def]
) -> None:
    strip = VoteStrip()
    qtbot.addWidget(strip)
    strip.resize(600, 80)
    strip.show()
    link_vote_strip(panel, strip)
    n = len(study.pairs)
    strip.set_result(np.linspace(0.1, 0.9, n), ["responder" if k % 2 else "non-responder" for k in range(n)])
    np.testing.assert_array_equal(strip.liver_mask(), panel.liver_mask())
    assert strip.current() == panel.pair_index()
    qtbot.mouseClick(strip, QtCore.Qt.MouseButton.LeftButton, pos=strip.bar_rect(4).center().toPoint())
    assert_at_pair(panel, study, 4)
    panel.step(2)
    assert strip.current() == 6


# --------------------------------------------------------------------------- screenshot
def test_screenshot_of_a_constructed_study(qtbot, study: AssembledStudy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Panel + vote strip + result panel on a phantom-like study, saved as a PNG (set HCC_UI_SHOT to keep it)."""

    from app.ui.result_panel import ResultPanel

    study = phantom_study()
    host = QtWidgets.QWidget()
    qtbot.addWidget(host)
    panel = ViewerPanel()
    strip = VoteStrip()
    result_panel = ResultPanel()
    left = QtWidgets.QVBoxLayout()
    left.addWidget(panel, 1)
    left.addWidget(strip)
    row = QtWidgets.QHBoxLayout(host)
    row.addLayout(left, 1)
    row.addWidget(result_panel)
    host.resize(1500, 640)
    host.show()
    qtbot.waitExposed(host)
    link_vote_strip(panel, strip)
    panel.set_study(
        study, descriptions={"plain": "Abdomen 5.0 B30f", "arterial": "ART 5.0 B30f", "portal": "PV 5.0 B30f"}
    )
    rng = np.random.default_rng(1)
    n = len(study.pairs)
    probs = np.clip(0.62 + 0.18 * rng.standard_normal(n), 0, 1)
    strip.set_result(probs, ["responder" if p >= 0.5 else "non-responder" for p in probs])
    i = panel.pair_index()
    for phase, vol in study.volumes.items():
        k = study.pairs[i].index[phase]
        panel.set_cam(phase, cam_like(vol, (60, 80), peak=1.0 if phase != "plain" else 0.5), i)
        assert k == panel.viewers[phase].current_index()
    panel.set_cam_scale(1.0)
    from app.inference.weights import WEIGHTS_SYNTHETIC, ModelDescription

    result_panel.set_result(
        fx.prediction_result([float(p) for p in probs], model_name="hcc-demo", model_version="0.1.0",
                             model_sha256="3f9a1c0b7d2e" * 5, device="CPU", device_reason="no CUDA device"),
        ModelDescription(name="hcc-demo", version="0.1.0", weights_kind=WEIGHTS_SYNTHETIC,
                         training_data={"patients": 400, "seed": 7}),
    )
    qtbot.wait(50)
    image = host.grab()
    assert image.save(os.environ.get("HCC_UI_SHOT", str(tmp_path / "ui_a.png")))
    assert not image.isNull() and image.width() >= 1000


def phantom_study() -> AssembledStudy:
    """A study that looks like CT (body, liver, aorta, a lesion) for the screenshot."""
    rows = cols = 160
    sp = 2.2
    n = 24
    yy, xx = np.mgrid[0:rows, 0:cols]
    x = (xx - cols / 2) * sp
    y = (yy - rows / 2) * sp
    body = (x / 160) ** 2 + (y / 120) ** 2 <= 1
    liver = ((x + 55) / 85) ** 2 + ((y + 5) / 70) ** 2 <= 1
    aorta = (x - 15) ** 2 + (y - 35) ** 2 <= 12**2
    spine = (x) ** 2 + (y - 70) ** 2 <= 20**2
    lesion = (x + 60) ** 2 + (y + 10) ** 2 <= 18**2
    volumes = {}
    enh = {"plain": (55, 40, 45), "arterial": (75, 280, 110), "portal": (115, 160, 70)}
    for phase, (liv, ao, les) in enh.items():
        img = np.full((rows, cols), -1000.0)
        img[body] = 30
        img[liver] = liv
        img[lesion] = les
        img[aorta] = ao
        img[spine] = 500
        vol = np.repeat(img[None], n, axis=0).astype(np.float32)
        vol += np.random.default_rng(0).normal(0, 10, vol.shape).astype(np.float32)
        z = -150.0 + 5.0 * np.arange(n)
        volumes[phase] = Volume(
            hu=vol, z_positions=z, origin=(float(x[0, 0]), float(y[0, 0]), float(z[0])),
            pixel_spacing=(sp, sp), slice_spacing=5.0, direction=np.eye(3),
            sop_instance_uids=[str(k) for k in range(n)], series_uid=phase,
        )
    pairs = [
        SlicePair(z_ref=float(z), index=dict.fromkeys(volumes, k), z_mm=dict.fromkeys(volumes, float(z)))
        for k, z in enumerate(volumes["plain"].z_positions)
    ]
    return AssembledStudy(
        patient_id="P1", patient_name="Demo", study_uid="1", study_date="20260101",
        study_description="", assignment={p: p for p in volumes}, volumes=volumes,
        liver_range_mm=dict.fromkeys(volumes, (-120.0, -60.0)), pairs=pairs,
    )


def test_qt_binding_does_not_leak_references_to_none(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Guard against PySide6 6.12.0 on Python 3.11: every void Qt call dropped a reference to
    None, and the viewers (thousands of void calls a minute) crashed the interpreter with
    "none_dealloc". 6.11.3 is fine; None is immortal from Python 3.12 on."""
    import sys

    label = QtWidgets.QLabel()
    qtbot.addWidget(label)
    before = sys.getrefcount(None)
    for _ in range(500):
        label.setText("x")
    assert sys.getrefcount(None) - before > -50


# --------------------------------------------------------------------------- real CT
def test_real_ct_hu_readout_matches_pydicom(qtbot, shared_data) -> None:  # type: ignore[no-untyped-def]
    """A real contrast CT (JPEG 2000) shown as a one-phase study: the HU under the cursor is
    the value pydicom's modality LUT gives for that pixel of that file; missing phases stay
    empty."""
    import pydicom
    from pydicom.pixels import apply_modality_lut

    from app.dicom.scan import scan_folder
    from app.dicom.volume import load_volume

    scan = scan_folder(shared_data / "totalsegmentator_example_ct")
    series = [s for p in scan.patients for st in p.studies for s in st.series if s.status != "refused"]
    assert series
    vol = load_volume(series[0])
    study = AssembledStudy(
        patient_id="x", patient_name="x", study_uid="x", study_date="", study_description="",
        assignment={"portal": vol.series_uid}, volumes={"portal": vol}, liver_range_mm={}, pairs=[],
    )
    panel = ViewerPanel()
    qtbot.addWidget(panel)
    panel.resize(900, 400)
    panel.show()
    panel.set_study(study, descriptions={"portal": series[0].description})
    viewer = panel.viewers["portal"]
    k = viewer.current_index()
    assert k == vol.n_slices // 2
    assert panel.viewers["plain"].current_index() is None and panel.viewers["arterial"].volume is None
    assert panel.viewers["plain"].shows_empty_notice() and not viewer.shows_empty_notice()
    by_uid = {inst.sop_instance_uid: inst for inst in series[0].instances}
    ds = pydicom.dcmread(by_uid[vol.sop_instance_uids[k]].path)
    hu = apply_modality_lut(ds.pixel_array, ds)
    for r, c in [(vol.hu.shape[1] // 2, vol.hu.shape[2] // 3), (40, 300)]:
        x, y = viewer.geometry_mm.centre_mm(r, c)  # type: ignore[union-attr]
        text = viewer.info_at(x, y)
        assert text is not None and text.endswith(f"HU = {float(hu[r, c]):.0f}")
        # and the position is the file's own: ImagePositionPatient + index × spacing
        ipp = [float(v) for v in ds.ImagePositionPatient]
        col_mm, row_mm = float(ds.PixelSpacing[1]), float(ds.PixelSpacing[0])
        assert x == pytest.approx(ipp[0] + c * col_mm, abs=1e-3)
        assert y == pytest.approx(ipp[1] + r * row_mm, abs=1e-3)
    panel.step(1)
    assert viewer.current_index() == k + 1


# --------------------------------------------------------------------------- real inference objects
def test_panels_show_a_real_prediction_and_gradcam(qtbot, study: AssembledStudy) -> None:  # type: ignore[no-untyped-def]
    """The widgets consume app.inference's own PredictionResult and CamResult (a tiny random
    network on the constructed study), not only test doubles."""
    torch = pytest.importorskip("torch")
    from app.inference.config import ModelConfig
    from app.inference.model import build_model
    from app.inference.predictor import predict
    from app.inference.weights import wrap_model
    from app.ui.result_panel import ResultPanel

    torch.manual_seed(0)
    loaded = wrap_model(build_model(ModelConfig(backbone="tiny", input_size=32)), device="cpu")
    result = predict(study, loaded)
    panel = ViewerPanel()
    strip = VoteStrip()
    results = ResultPanel()
    for w in (panel, strip, results):
        qtbot.addWidget(w)
    panel.set_study(study)
    link_vote_strip(panel, strip)
    strip.set_result([s.probability for s in result.slices], [s.label for s in result.slices])
    summary = results.set_result(result, loaded.description)
    assert strip.count() == len(study.pairs)
    assert summary.result.total_votes == len(study.pairs) == result.total_votes
    assert f"{result.responder_votes} of {result.total_votes} slices vote responder" in results.text()
    assert "Random-initialised weights — result meaningless" in results.text()
    assert loaded.sha256[:12] in results.text()

    # Grad-CAM (its module may land after the predictor in a fresh checkout)
    gradcam = pytest.importorskip("app.inference.gradcam")
    i = panel.pair_index()
    first = gradcam.gradcam_slice(loaded, study, i)
    panel.set_cam_result(first)
    for phase, viewer in panel.viewers.items():
        np.testing.assert_array_equal(viewer.cam.item.image, viewer.geometry_mm.display(first.maps[phase][0]))  # type: ignore[union-attr]
        assert tuple(viewer.cam.item.levels) == (0.0, 1.0)
    whole = gradcam.gradcam_study(loaded, study)
    panel.set_cam_result(whole, replace=True)
    assert all(panel.has_cam(k) for k in range(len(study.pairs)))
    j = list(whole.pair_indices).index(i)
    art = panel.viewers["arterial"]
    np.testing.assert_array_equal(art.cam.item.image, whole.maps["arterial"][j])
