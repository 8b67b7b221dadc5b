"""The PDF report's issue-17 fixes: series names, a visible heat map, its colour bar, and a
save dialog that does not start in the DICOM folder (item 9, item 12)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6 import QtGui  # noqa: E402
from test_ui_viewers import make_study  # noqa: E402

from app.ui.report_pdf import case_report, overlay_rgb, patient_html, render_case_report_image  # noqa: E402

pytestmark = pytest.mark.gui


def test_phases_named_by_series_number_and_description() -> None:
    study = make_study()
    text = patient_html(study, {"plain": "#2 ABD NATIVE 5.0", "arterial": "#3 ART 5.0 B30f",
                              "portal": "#4 PV 5.0 B30f"})
    assert text.index("#3 ART 5.0 B30f") < text.index(study.assignment["arterial"])
    assert "#2 ABD NATIVE 5.0" in text and "#4 PV 5.0 B30f" in text


def test_heat_map_is_visible_on_paper() -> None:
    grey = np.full((8, 8), 128, dtype=np.uint8)
    cam = np.zeros((8, 8), dtype=np.float32)
    cam[4:, 4:] = 1.0
    rgb = overlay_rgb(grey, cam, 1.0).astype(int)
    assert tuple(rgb[0, 0]) == (128, 128, 128)  # no activation: the CT untouched
    hot = rgb[6, 6]
    assert hot[0] - hot[1] > 80 and hot[0] - hot[2] > 80  # clearly red, not a faint tint


def test_report_page_has_the_colour_bar(qtbot) -> None:  # type: ignore[no-untyped-def]
    study = make_study()
    import ui_fixtures as fx

    result = fx.prediction_result([0.2 + 0.05 * i for i in range(len(study.pairs))])
    report = case_report(study, result, {}, None, pair_index=3, series_labels={"arterial": "#3 ART"})
    assert report.series_labels == {"arterial": "#3 ART"}
    image = render_case_report_image(report, dpi=60)
    arr = np.array([[QtGui.QColor(image.pixel(x, y)).getRgb()[:3] for x in range(0, image.width(), 2)]
                    for y in range(0, image.height(), 2)])
    # jet's opaque yellow and red both appear: the bar (the heat maps of this page are empty)
    yellow = (arr[..., 0] > 200) & (arr[..., 1] > 200) & (arr[..., 2] < 60)
    red = (arr[..., 0] > 200) & (arr[..., 1] < 60) & (arr[..., 2] < 60)
    assert yellow.sum() > 3 and red.sum() > 3


def test_save_dialog_starts_outside_the_dicom_folder(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from app.settings import update_settings
    from app.ui.main_window import MainWindow

    dicom = tmp_path / "dicom"
    dicom.mkdir()
    update_settings(last_folder=str(dicom), demo_offered=True)
    w = MainWindow()
    qtbot.addWidget(w)
    assert w.report_folder() != dicom
    w._pdf_written(tmp_path / "reports" / "r.pdf")
    assert w.report_folder() == tmp_path / "reports"
    qtbot.waitUntil(lambda: not w.jobs.busy, timeout=120_000)
    w.close()


def test_key_slice_is_the_strongest_of_the_slices_that_voted() -> None:
    """A lesion-head model's tumour-free slices neither vote nor get a heat map: the report's
    (and the screenshots') key slice must be one that voted, even when a tumour-free slice
    beside the tumour has the higher probability."""
    from dataclasses import replace

    from ui_fixtures import prediction_result

    from app.ui.report_pdf import ReportError, strongest_responder_slice

    result = prediction_result([0.2, 0.95, 0.6, 0.7, 0.1])
    assert strongest_responder_slice(result) == 1  # every slice voted (the paper's vote)
    voted = [False, False, True, True, False]
    lesion = replace(result, slices=[replace(s, votes=v) for s, v in zip(result.slices, voted, strict=True)])
    assert strongest_responder_slice(lesion) == 3
    with pytest.raises(ReportError):
        strongest_responder_slice(replace(result, slices=[]))


def test_many_warnings_never_push_the_intended_use_off_the_page(qtbot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The page lists what was said with the result; a long list is cut where the room ends,
    with a count and where to read the rest, and the intended-use notice stays on the page."""
    import ui_fixtures as fx

    from app.ui import report_pdf

    study = make_study()
    result = fx.prediction_result([0.3] * len(study.pairs))
    long = [f"portal series #{k}: lossy compressed (JPEG Baseline (Process 1)): HU values are "
            f"approximate ({k} files) — and a long tail of words that wraps onto a second line"
            for k in range(40)]
    few = case_report(study, result, {}, None, pair_index=2, case_id=7, warnings=long[:2])
    many = case_report(study, result, {}, None, pair_index=2, case_id=7, warnings=long)
    assert list(many.warnings) == long
    drawn: list[tuple[str, float]] = []
    real_block = report_pdf._Page.block

    def block(self, markup: str, top: float) -> float:  # type: ignore[no-untyped-def]
        drawn.append((markup, top))
        return real_block(self, markup, top)

    monkeypatch.setattr(report_pdf._Page, "block", block)
    for rep in (few, many):
        drawn.clear()
        report_pdf.render_case_report_image(rep, dpi=110)  # the screenshots' resolution
        footer_markup, footer_top = drawn[-1]
        assert "Intended use." in footer_markup
        mm = 110 / 25.4
        assert footer_top <= (273 - 22) * mm + 1  # at its place, not pushed off the page
        warnings_markup = drawn[-2][0]
        if rep is few:
            assert all(w.split(" — ")[0] in warnings_markup for w in long[:2]) and "more warning" not in warnings_markup
        else:
            assert "⚠ portal series #0:" in warnings_markup
            listed = warnings_markup.count("⚠")
            assert 2 <= listed < 40
            assert f"… and {40 - listed} more warnings: see register case 7" in warnings_markup
