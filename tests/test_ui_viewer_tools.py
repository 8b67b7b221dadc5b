"""Coronal reformat, DICOM tag viewer, series thumbnails, help, Grad-CAM colour bar (issue 17)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6 import QtCore, QtGui  # noqa: E402
from test_ui_viewers import make_study, make_volume  # noqa: E402

from app.ui.coronal import CoronalView, coronal_plane  # noqa: E402
from app.ui.viewer import SliceGeometry  # noqa: E402
from app.ui.viewer_panel import ViewerPanel  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.mark.parametrize("flipped", [False, True])
def test_coronal_plane_is_geometry_correct(flipped: bool) -> None:
    """Extent in mm from pixel and slice spacing; voxel (k, row, col) lands at its x and z."""
    vol = make_volume("arterial", 24, -110.0, 48, 56, 0.7, flipped=flipped)
    g = SliceGeometry.of(vol)
    y = g.centre_mm(30, 0)[1]
    plane = coronal_plane(vol, y)
    assert plane.row == 30 and plane.y_mm == pytest.approx(y)
    x, z, width, height = plane.rect
    assert width == pytest.approx(56 * 0.7) and height == pytest.approx(24 * 5.0)
    assert z == pytest.approx(-110.0 - 2.5)
    assert plane.image.shape == (24, 56)
    for k, col in ((0, 0), (7, 20), (23, 55)):
        x_mm = g.centre_mm(30, col)[0]
        shown_col = int((x_mm - x) / 0.7)
        shown_row = int((float(vol.z_positions[k]) - z) / 5.0)
        assert plane.image[shown_row, shown_col] == vol.hu[k, 30, col]


def test_coronal_plane_puts_descending_slices_head_up() -> None:
    vol = make_volume("plain", 10, 0.0, 16, 16, 1.0)
    vol.hu = vol.hu[::-1].copy()
    vol.z_positions = vol.z_positions[::-1].copy()
    plane = coronal_plane(vol)
    assert plane.rect[1] == pytest.approx(-2.5)
    assert plane.image[0, 0] == vol.hu[-1, 8, 0]  # the lowest z is the first (bottom) row


def test_coronal_view_follows_the_panel(qtbot) -> None:  # type: ignore[no-untyped-def]
    panel = ViewerPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.set_study(make_study())
    view = CoronalView(panel)
    qtbot.addWidget(view)
    view.show()
    assert set(view.planes) == {"plain", "arterial", "portal"}
    panel.set_pair_index(2)
    z = panel.z_at(2)
    for phase in view.planes:
        assert abs(view.level_z(phase) - z) <= 2.5  # type: ignore[operator]  # nearest slice
    panel.measure.set_reference((0.0, 10.0))  # the crosshair re-cuts the planes
    assert all(abs(p.y_mm - 10.0) <= 1.0 for p in view.planes.values())
    view.go_to_z(z + 15.0)
    assert panel.z_at(panel.pair_index()) == pytest.approx(z + 15.0)
    panel.set_window(500, 100)
    _v, image, _l = view.panes["plain"]
    assert list(image.levels) == pytest.approx([-150, 350])


def test_tag_viewer_reads_a_real_file(qtbot, shared_data: Path) -> None:  # type: ignore[no-untyped-def]
    from app.ui.tag_viewer import TagViewer

    path = sorted((shared_data / "totalsegmentator_example_ct").glob("CT.*"))[0]
    viewer = TagViewer()
    qtbot.addWidget(viewer)
    viewer.show_file(path, "portal: slice 1")
    rows = viewer.rows_text()
    assert any(r.startswith("(0008,0060) Modality CS CT") for r in rows)
    assert not any("PixelData" in r for r in rows)
    viewer.filter.setText("0028,0030")
    assert [r.split()[1] for r in viewer.rows_text()] == ["PixelSpacing"]
    viewer.filter.setText("no such tag anywhere")
    assert viewer.rows_text() == []


def test_tag_viewer_refuses_a_non_dicom_file(tmp_path: Path) -> None:
    from app.errors import InputError
    from app.ui.tag_viewer import read_tags

    bad = tmp_path / "x.dcm"
    bad.write_bytes(b"not a dicom file")
    with pytest.raises(InputError, match="cannot read the DICOM header"):
        read_tags(bad)


def test_thumbnails_tags_and_show_in_pane_on_a_real_study(qtbot, main_window, shared_data: Path) -> None:  # type: ignore[no-untyped-def]
    w = main_window
    steps: list[str] = []
    w.stepDone.connect(steps.append)
    w.import_folder(shared_data / "totalsegmentator_example_ct")
    qtbot.waitUntil(lambda: "imported" in steps, timeout=120_000)
    strip = w.tools.thumbnails
    [uid] = strip.uids()
    qtbot.waitUntil(lambda: strip.has_image(uid), timeout=60_000)
    assert strip.item(0).text().startswith("▶ portal: ")
    # the tag viewer on the slice on view names that slice's own file
    tags = w.tools.show_slice_tags("portal")
    assert tags is not None
    viewer = w.viewer.viewers["portal"]
    z = float(viewer.volume.z_positions[viewer.current_index()])
    [position] = [r for r in tags.rows_text() if r.startswith("(0020,0032)")]
    assert float(position.rsplit(",", 1)[1].strip(" ]'\"")) == pytest.approx(z, abs=0.01)
    assert str(shared_data) in tags.title.text()
    # "Show in the arterial pane" from the strip's menu
    menu = strip.series_menu(uid)
    steps.clear()
    next(a for a in menu.actions() if a.text() == "Show in the arterial pane").trigger()
    qtbot.waitUntil(lambda: "assembled" in steps, timeout=120_000)
    assert w.case.study.assignment == {"arterial": uid}
    assert w.viewer.viewers["arterial"].volume is not None
    assert not w.errors


def test_help_lists_every_shortcut_and_shows_the_guide(qtbot, main_window) -> None:  # type: ignore[no-untyped-def]
    from app.ui.help_dialog import user_guide_path

    w = main_window
    dialog = w.tools.show_help("shortcuts")
    page = dialog.shortcuts.toPlainText()
    keys = {a.shortcut().toString(QtGui.QKeySequence.SequenceFormat.NativeText)
            for a in w.findChildren(QtGui.QAction) if not a.shortcut().isEmpty()}
    assert {"1", "I", "C", "D", "E", "R", "X", "F1", "Ctrl+T", "Ctrl+P", "H"} <= keys
    for key in keys:
        assert key in page, key
    assert "Right drag" in page
    dialog.show_tab("guide")
    guide = dialog.guide.toPlainText()
    assert "user guide" in guide.lower() and "Ellipse ROI" in guide
    assert user_guide_path().is_file()
    # F1 opens it too
    dialog.close()
    w.tools.help = None
    w.activateWindow()
    qtbot.keyClick(w, QtCore.Qt.Key.Key_F1)
    assert w.tools.help is not None and w.tools.help.isVisible()


def test_cam_legend_follows_the_colour_map(qtbot) -> None:  # type: ignore[no-untyped-def]
    from app.ui.cam_legend import LEGEND_TOOLTIP, legend_image

    panel = ViewerPanel()
    qtbot.addWidget(panel)
    panel.show()
    assert panel.cam_legend.colormap() == "jet"
    assert panel.cam_legend.toolTip() == LEGEND_TOOLTIP
    assert "1 = the strongest activation in this study" in LEGEND_TOOLTIP
    panel.set_cam_colormap("viridis")
    assert panel.cam_legend.colormap() == "viridis"
    image = legend_image("jet", 200, 40)
    # left end transparent over grey, right end jet's dark red
    left = QtGui.QColor(image.pixel(4, 8))
    right = QtGui.QColor(image.pixel(195, 8))
    assert abs(left.red() - left.blue()) < 20  # grey: no colour below the threshold
    assert right.red() > 100 and right.blue() < 60
    assert np.asarray(image.constBits()).size > 0


def test_thumbnail_job_decodes_the_middle_slice(shared_data: Path) -> None:
    """The worker path (series not in a pane): one file per series, abdomen window, ≤ 84 px."""
    from app.dicom.scan import scan_folder
    from app.dicom.volume import load_volume
    from app.progress import NULL_PROGRESS
    from app.ui.thumbnails import THUMB_PX, thumbnail, thumbnail_job

    scan = scan_folder(shared_data / "totalsegmentator_example_ct")
    [series] = [s for p in scan.patients for st in p.studies for s in st.series]
    pictures = thumbnail_job([series])(NULL_PROGRESS)
    picture = pictures[series.uid]
    assert picture.dtype == np.uint8 and max(picture.shape) == THUMB_PX
    middle = load_volume(series, indices=[len(series.instances) // 2])
    assert np.array_equal(picture, thumbnail(middle.hu[0]))
