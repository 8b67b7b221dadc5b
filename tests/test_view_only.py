"""View any series (issue 17): a study that cannot be predicted is still shown, with the reason.

Real fault: the TotalSegmentator example in ``../shared/data`` is a real single-phase CT
(classified portal). Before the fix its panes said "no series assigned" and assigning it by
hand raised an error box.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from qt_text import shown_text

from app.dicom.assembly import assemble_for_viewing, assemble_study
from app.dicom.errors import AssemblyError
from app.dicom.scan import scan_folder


def _only_study(folder: Path):  # type: ignore[no-untyped-def]
    scan = scan_folder(folder)
    studies = [st for p in scan.patients for st in p.studies]
    assert len(studies) == 1
    return studies[0]


def test_single_phase_ct_is_loaded_for_viewing(shared_data: Path) -> None:
    study = _only_study(shared_data / "totalsegmentator_example_ct")
    with pytest.raises(AssemblyError) as err:
        assemble_study(study)
    viewed = assemble_for_viewing(study, err.value.message)
    assert viewed.view_only_reason == err.value.message
    assert not viewed.predictable and viewed.pairs == []
    assert list(viewed.volumes) == ["portal"]  # the series' own phase call
    assert viewed.volumes["portal"].n_slices == 20
    # the user's choice wins: the same series in the plain pane
    uid = viewed.assignment["portal"]
    by_hand = assemble_for_viewing(study, "why", {"plain": uid})
    assert list(by_hand.volumes) == ["plain"] and by_hand.overrides == {"plain": uid}


def test_nothing_loadable_keeps_the_assembly_error() -> None:
    import ui_fixtures as fx

    scan = fx.constructed_scan()
    study = scan.patients[0].studies[0]  # constructed series point at no files
    with pytest.raises(AssemblyError, match="the reason"):
        assemble_for_viewing(study, "the reason")


pytest.importorskip("PySide6")


@pytest.mark.gui
def test_single_phase_study_opens_in_the_viewer(qtbot, main_window, shared_data: Path) -> None:  # type: ignore[no-untyped-def]
    w = main_window
    errors = w.errors
    steps: list[str] = []
    w.stepDone.connect(steps.append)
    w.import_folder(shared_data / "totalsegmentator_example_ct")
    qtbot.waitUntil(lambda: "imported" in steps or bool(errors), timeout=120_000)
    assert not errors
    viewers = w.viewer.viewers
    assert viewers["portal"].volume is not None and not viewers["portal"].shows_empty_notice()
    assert viewers["plain"].shows_empty_notice()
    assert not w.act_predict.isEnabled()
    assert "no plain" in w.act_predict.toolTip()
    assert "Prediction is not possible" in w.result_panel.text()
    assert "Viewing only" in w.browser.assembly_note.text()
    # item 5: the combo leads with the phase call and never hides the rest of its text
    combo = w.browser.combos["portal"]
    assert combo.currentText().startswith("portal 100 % · ")
    assert shown_text(combo.toolTip()) == combo.currentText()  # escaped rich text (issue 14)
    assert combo.view().minimumWidth() >= combo.fontMetrics().horizontalAdvance(combo.currentText())

    # assigning the series to another pane by hand: no error box, the choice stays
    uid = w.case.study.assignment["portal"]
    steps.clear()
    w.set_override("plain", uid)
    qtbot.waitUntil(lambda: "assembled" in steps or bool(errors), timeout=120_000)
    assert not errors
    assert w.case.study.assignment == {"plain": uid}
    assert viewers["plain"].volume is not None
    assert w.browser.combos["plain"].currentData() == uid
