"""The desktop app driven through the whole flow on a generated study (pytest-qt, offscreen).

import → check the assignment → override a phase → predict → scroll → toggle Grad-CAM →
register entry → record outcome → PDF; plus cancel (import, predict), a failing worker, a
failing register write, close while running, bad folders, re-opening a case.

Real code all the way: the synthetic generator writes DICOM, the scanner/assembler/predictor/
Grad-CAM/register of the project run in the app's worker threads. Only the dialogs are
replaced by recorders (so that nothing blocks), and a few tests slow down or break one core
call on purpose to reach a state (a long prediction to cancel, a failing GPU, a full disk).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PySide6")

import ui_fixtures as fx  # noqa: E402
from PySide6 import QtCore  # noqa: E402

from app import PHASES  # noqa: E402
from app.settings import update_settings  # noqa: E402
from app.ui import dialogs  # noqa: E402
from app.ui.main_window import MainWindow  # noqa: E402

pytestmark = pytest.mark.gui

STEP_TIMEOUT_MS = 120_000  # generous: the CI box is shared and busy


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return fx.generate_study(tmp_path_factory.mktemp("ui-study"))


class Dialogs:
    """Records what the app would have shown; answers questions as told."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []
        self.infos: list[str] = []
        self.confirm_answer = True
        self.confirm_asked = 0

    def error(self, parent: Any, message: str, details: str = "") -> None:
        self.errors.append((message, details))

    def info(self, parent: Any, message: str, details: str = "") -> None:
        self.infos.append(message)

    def confirm(self, parent: Any, reasons: Any, assignment: Any, on_answer: Any) -> None:
        self.confirm_asked += 1
        on_answer(self.confirm_answer)

    def ask(self, parent: Any, question: str, on_answer: Any, **_: Any) -> None:
        on_answer(True)


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> Dialogs:
    d = Dialogs()
    monkeypatch.setattr(dialogs, "show_error", d.error)
    monkeypatch.setattr(dialogs, "show_info", d.info)
    monkeypatch.setattr(dialogs, "confirm_phases", d.confirm)
    monkeypatch.setattr(dialogs, "ask", d.ask)
    return d


@pytest.fixture
def window(qtbot, tiny_model: tuple[Path, str], shown: Dialogs):  # type: ignore[no-untyped-def]
    import torch

    torch.set_num_threads(1)  # tiny model: per-op overhead dominates, one thread is fastest
    w = fx.open_main_window(qtbot, *tiny_model)
    w.shown = shown  # type: ignore[attr-defined]
    yield w
    w.close()
    assert not w.jobs.busy, "a job was still running after close"


def wait_step(qtbot, w: MainWindow, step: str, timeout: int = STEP_TIMEOUT_MS) -> None:  # type: ignore[no-untyped-def]
    """Wait for a step of the flow; fail at once when an error dialog came instead."""
    errors = w.shown.errors  # type: ignore[attr-defined]
    n_errors = len(errors)
    qtbot.waitUntil(lambda: step in w.steps or len(errors) > n_errors, timeout=timeout)  # type: ignore[attr-defined]
    assert step in w.steps, f"error dialog instead of {step!r}: {errors[n_errors:]}"  # type: ignore[attr-defined]


def import_and_wait(qtbot, w: MainWindow, folder: Path) -> None:  # type: ignore[no-untyped-def]
    w.steps.clear()  # type: ignore[attr-defined]
    w.import_folder(folder)
    wait_step(qtbot, w, "imported")


def test_full_flow(qtbot, window: MainWindow, generated, shown: Dialogs, tmp_path: Path) -> None:
    w = window
    folder, truth = generated
    phase_of = fx.truth_phase_of(truth)

    # import: the browser lists the patient's series; the triplet matches the truth
    import_and_wait(qtbot, w, folder)
    assert not shown.errors, shown.errors
    study = w.case.study
    assert study is not None and study.pairs
    assert {p: phase_of[uid] for p, uid in study.assignment.items()} == {p: p for p in PHASES}
    for phase in PHASES:
        assert w.browser.combos[phase].currentData() == study.assignment[phase]
        item = w.browser.series_item(study.assignment[phase])
        assert item is not None and item.font(0).bold()
    assert w.viewer.count() == len(study.pairs)
    if study.needs_confirmation:
        assert not w.act_predict.isEnabled()
        w.confirm_assignment()
    assert w.act_predict.isEnabled()

    # override one phase with one click: portal ← the delayed series, then back
    delayed = next(uid for uid, ph in phase_of.items() if ph == "other" and uid not in study.assignment.values())
    w.steps.clear()  # type: ignore[attr-defined]
    combo = w.browser.combos["portal"]
    combo.setCurrentIndex(combo.findData(delayed))
    combo.activated.emit(combo.currentIndex())
    wait_step(qtbot, w, "assembled")
    assert w.case.study is not None and w.case.study.assignment["portal"] == delayed
    assert w.case.study.overrides.get("portal") == delayed
    assert w.browser.series_item(delayed).font(0).bold()  # type: ignore[union-attr]
    portal_uid = study.assignment["portal"]
    w.steps.clear()  # type: ignore[attr-defined]
    combo.setCurrentIndex(combo.findData(portal_uid))
    combo.activated.emit(combo.currentIndex())
    wait_step(qtbot, w, "assembled")
    study = w.case.study
    assert study is not None and study.assignment["portal"] == portal_uid
    if study.needs_confirmation:
        w.confirm_assignment()

    # predict: result panel, vote strip, register record, then Grad-CAM (viewed slice first)
    w.steps.clear()  # type: ignore[attr-defined]
    w.act_predict.trigger()
    assert not w.act_predict.isEnabled()  # no second prediction while one runs
    wait_step(qtbot, w, "predicted")
    pred = w.case.prediction
    assert pred is not None and pred.record_id is not None, shown.errors
    slices = list(pred.result.slices)
    assert len(slices) == len(study.pairs)
    assert w.vote_strip.count() == len(slices)
    assert str(pred.result.label).upper() in w.result_panel.text().upper()
    assert "random" in w.result_panel.text().lower()  # random weights are never hidden
    viewed = w.viewer.pair_index()
    wait_step(qtbot, w, "cam-study")
    assert w.steps.index("cam-slice") < w.steps.index("cam-study")  # type: ignore[attr-defined]
    assert w.viewer.has_cam(viewed)
    assert all(w.viewer.has_cam(i) for i in range(len(study.pairs)))

    # scroll: the vote strip marker follows; clicking a bar moves the viewers
    w.viewer.set_pair_index(0)
    assert w.vote_strip.current() == 0
    w.vote_strip.sliceClicked.emit(len(slices) - 1)
    assert w.viewer.pair_index() == len(slices) - 1

    # CAM toggle from the toolbar
    assert w.viewer.cam_visible()
    w.act_cam.trigger()
    assert not w.viewer.cam_visible()
    assert not any(v.cam.item.isVisible() for v in w.viewer.viewers.values())
    w.act_cam.trigger()
    assert w.viewer.cam_visible()

    # the register has the case, with the model identity and input series
    rows = w.register.list_cases()
    assert [r.id for r in rows] == [pred.record_id]
    detail = w.register.get_prediction(pred.record_id)
    assert detail.record.patient_id == study.patient_id
    assert set(detail.record.series_uids.values()) == set(study.assignment.values())
    assert w.register_tab.model.rowCount() == 1

    # record an outcome from the register tab (a worker writes it)
    job = w.register_tab.record_outcome(pred.record_id, "PR", "2024-09-01", "tester")
    assert job is not None
    qtbot.waitUntil(lambda: not w.jobs.busy, timeout=STEP_TIMEOUT_MS)
    assert w.register.get_prediction(pred.record_id).outcome.category == "PR"

    # one-page PDF report, written by a worker
    pdf = tmp_path / "report.pdf"
    assert w.export_pdf(pdf) is not None
    wait_step(qtbot, w, "report")
    assert pdf.read_bytes().startswith(b"%PDF")
    from app.ui.report_pdf import count_pdf_pages

    assert count_pdf_pages(pdf) == 1
    # the same page as an image (previews, screenshots): A4 proportions, CT and heatmap drawn
    from app.ui.report_pdf import case_report, render_case_report_image, strongest_responder_slice

    best = strongest_responder_slice(pred.result)
    report = case_report(pred.study, pred.result, w.cams_at(best), None, pair_index=best, cam_scale=1.0)
    page = render_case_report_image(report, dpi=40)
    assert abs(page.height() / page.width() - 297 / 210) < 0.02
    colours = {page.pixelColor(x, y).name() for x in range(0, page.width(), 7) for y in range(0, page.height(), 7)}
    assert len(colours) > 50  # text, grey CT and coloured heatmap, not a blank page
    assert not shown.errors, shown.errors


def test_bad_folders_give_specific_dialogs(qtbot, window: MainWindow, shown: Dialogs, tmp_path: Path) -> None:
    w = window
    job = w.import_folder(tmp_path / "does-not-exist")
    qtbot.waitUntil(lambda: job.is_done, timeout=STEP_TIMEOUT_MS)
    assert shown.errors and "does not exist" in shown.errors[-1][0]
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not an image")
    (junk / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"0" * 100)
    (junk / "empty.dcm").write_bytes(b"")
    job = w.import_folder(junk)
    qtbot.waitUntil(lambda: job.is_done, timeout=STEP_TIMEOUT_MS)
    message, details = shown.errors[-1]
    assert "No DICOM images found" in message
    assert "notes.txt" in details
    assert w.case.study is None and w.act_import.isEnabled()


def test_cancel_import_and_cancel_predict(qtbot, window: MainWindow, generated, shown: Dialogs, monkeypatch) -> None:
    w = window
    folder, _ = generated
    # cancel an import as soon as it reports progress
    job = w.import_folder(folder)
    cancelled: list[float] = []
    job.progress.connect(lambda f, t: (w.cancel_jobs(), cancelled.append(time.monotonic())) if not cancelled else None)
    qtbot.waitUntil(lambda: job.is_done, timeout=STEP_TIMEOUT_MS)
    assert cancelled and time.monotonic() - cancelled[0] < 5
    assert "imported" not in w.steps and w.case.study is None  # type: ignore[attr-defined]
    assert not shown.errors

    # now import properly and cancel a (deliberately slowed) prediction
    import_and_wait(qtbot, w, folder)
    if w.case.needs_confirmation():
        w.confirm_assignment()
    import app.inference.predictor as predictor

    real_predict = predictor.predict
    in_predict = threading.Event()

    def slow_predict(study: Any, model: Any, progress: Any = None, **kw: Any) -> Any:
        in_predict.set()
        for _ in range(500):  # a long prediction: checks for cancellation like the real one
            progress.check()
            time.sleep(0.01)
        return real_predict(study, model, progress, **kw)

    monkeypatch.setattr(predictor, "predict", slow_predict)
    job = w.predict()
    assert job is not None
    qtbot.waitUntil(in_predict.is_set, timeout=STEP_TIMEOUT_MS)
    t0 = time.monotonic()
    w.act_cancel.trigger()
    qtbot.waitUntil(lambda: job.is_done, timeout=5000)
    assert time.monotonic() - t0 < 1.5
    assert w.case.prediction is None
    assert w.register.list_cases() == []  # no partial record
    assert not shown.errors
    assert w.act_predict.isEnabled()  # usable again


def test_failing_worker_and_register_write(qtbot, window: MainWindow, generated, shown: Dialogs, monkeypatch) -> None:
    w = window
    folder, _ = generated
    import_and_wait(qtbot, w, folder)
    if w.case.needs_confirmation():
        w.confirm_assignment()
    import app.inference.predictor as predictor

    real_predict = predictor.predict

    def broken(*a: Any, **k: Any) -> Any:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(predictor, "predict", broken)
    job = w.predict()
    qtbot.waitUntil(lambda: job is not None and job.is_done, timeout=STEP_TIMEOUT_MS)
    assert shown.errors and shown.errors[-1][0].startswith("Unexpected error: RuntimeError")
    assert "Traceback" in shown.errors[-1][1]
    assert w.act_predict.isEnabled() and w.register.list_cases() == []

    # the register refuses the write (full disk): result shown, "save again" offered
    monkeypatch.setattr(predictor, "predict", real_predict)
    from app.register import RegisterFullError

    real_add = w.register.add_prediction

    def full(record: Any, **_options: Any) -> int:
        raise RegisterFullError("the disk holding the register is full")

    monkeypatch.setattr(w.register, "add_prediction", full)
    w.steps.clear()  # type: ignore[attr-defined]
    w.predict()
    wait_step(qtbot, w, "predicted")
    assert w.case.prediction is not None and w.case.prediction.record_id is None
    assert "NOT saved" in shown.errors[-1][0] and "full" in shown.errors[-1][0]
    assert w.result_panel.text()  # the prediction stays on screen
    assert w.act_save_again.isEnabled()
    monkeypatch.setattr(w.register, "add_prediction", real_add)
    w.act_save_again.trigger()
    wait_step(qtbot, w, "saved")
    assert w.case.prediction.record_id is not None
    assert len(w.register.list_cases()) == 1
    wait_step(qtbot, w, "cam-study")


def test_close_while_running_stops_workers_cleanly(qtbot, tiny_model, generated, shown: Dialogs, qtlog) -> None:
    path, sha = tiny_model
    update_settings(model_path=str(path), model_sha256=sha, device="cpu", demo_offered=True)
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    job = w.import_folder(generated[0])
    qtbot.waitUntil(lambda: job.qthread.isRunning() or job.is_done, timeout=STEP_TIMEOUT_MS)
    close_and_check_stopped(qtbot, w, job, qtlog)
    assert not shown.errors


def close_and_check_stopped(qtbot, w: MainWindow, job, qtlog) -> None:  # type: ignore[no-untyped-def]
    """Close the window mid-job: it returns within the bound, the worker has stopped and Qt
    never says "QThread destroyed while running" (RELIABILITY.md 28)."""
    t0 = time.monotonic()
    w.close()
    assert time.monotonic() - t0 < 5
    assert not job.qthread.isRunning()
    assert not w.jobs.busy
    qtbot.wait(50)
    assert not [r for r in qtlog.records if "QThread" in r.message]


def test_reopen_case_whose_folder_is_gone(qtbot, window: MainWindow, shown: Dialogs) -> None:
    w = window
    case_id = w.register.add_prediction(fx.prediction_record("P-GONE"))
    w.register_tab.refresh()
    w.register_tab.openCase.emit(case_id)
    wait_step(qtbot, w, "reopened")
    assert w.case.recorded is not None and w.case.recorded.total_votes == 10
    assert w.vote_strip.count() == 10
    assert "is gone" in w.statusBar().currentMessage()
    assert not shown.errors


def first_start(qtbot) -> tuple[MainWindow, list[str]]:  # type: ignore[no-untyped-def]
    """A main window as on a first start, with its welcome banner (the demo offer) shown; the
    steps it reports are collected in the returned list."""
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    steps: list[str] = []
    w.stepDone.connect(steps.append)
    w.offer_demo()
    qtbot.waitUntil(w.welcome.isVisible, timeout=STEP_TIMEOUT_MS)  # asked the register in a worker
    return w, steps


def test_first_start_demo_is_two_clicks_from_a_prediction_with_heatmaps(qtbot, tiny_model, shown: Dialogs) -> None:
    from app.settings import load_settings

    path, sha = tiny_model
    update_settings(model_path=str(path), model_sha256=sha, device="cpu")  # demo not offered yet
    w, steps = first_start(qtbot)
    assert w.welcome.isVisible() and w.demo_button.isEnabled()
    assert load_settings().demo_offered
    w.demo_button.click()  # click 1: generate (once) and open the demo study
    qtbot.waitUntil(lambda: "imported" in steps or bool(shown.errors), timeout=STEP_TIMEOUT_MS)
    assert not shown.errors, shown.errors
    assert not w.welcome.isVisible()
    assert w.act_predict.isEnabled()  # the demo study needs no confirmation
    w.act_predict.trigger()  # click 2
    qtbot.waitUntil(lambda: "cam-study" in steps or bool(shown.errors), timeout=STEP_TIMEOUT_MS)
    assert not shown.errors, shown.errors
    assert w.viewer.has_cam(w.viewer.pair_index()) and w.viewer.cam_visible()
    assert "CPU" in w.device_label.text()
    w.close()


def test_doubtful_assignment_must_be_confirmed_before_predict(qtbot, window: MainWindow, shown: Dialogs) -> None:
    from app.ui.main_window import CaseState

    w = window
    scan = fx.constructed_scan()
    study = fx.constructed_study(needs_confirmation=True)
    w.case = CaseState(scan=scan, key="1.2.3.4", assembled={"1.2.3.4": study})
    w.browser.set_scan(scan, select="1.2.3.4")
    w._show_current_study()
    assert w.browser.banner.isVisibleTo(w.browser)
    assert not w.act_predict.isEnabled()
    shown.confirm_answer = False  # the user chooses "Review"
    assert w.predict() is None and shown.confirm_asked == 1  # asks instead of predicting
    w.browser.confirm_button.click()
    assert shown.confirm_asked == 2
    assert w.case.needs_confirmation() and not w.act_predict.isEnabled()
    shown.confirm_answer = True
    w.browser.confirm_button.click()
    assert not w.case.needs_confirmation() and w.act_predict.isEnabled()
    assert w.browser.confirm_button.isHidden()


def test_drop_a_folder_imports_it(qtbot, window: MainWindow, generated) -> None:
    from PySide6 import QtGui

    w = window
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(generated[0]))])
    pos = QtCore.QPointF(100, 100)
    drop = QtGui.QDropEvent(pos, QtCore.Qt.DropAction.CopyAction, mime, QtCore.Qt.MouseButton.NoButton, QtCore.Qt.KeyboardModifier.NoModifier)
    w.steps.clear()  # type: ignore[attr-defined]
    w.dropEvent(drop)
    wait_step(qtbot, w, "imported")
    assert w.case.folder == generated[0]


def test_reopen_case_with_its_folder(qtbot, window: MainWindow, generated, shown: Dialogs) -> None:
    w = window
    folder, _ = generated
    import_and_wait(qtbot, w, folder)
    study = w.case.study
    assert study is not None
    record = fx.prediction_record("ignored")
    record.patient_id, record.study_uid, record.source_folder = study.patient_id, study.study_uid, str(folder)
    case_id = w.register.add_prediction(record)
    w.register_tab.refresh()
    w.viewer.clear()
    w.steps.clear()  # type: ignore[attr-defined]
    w.open_case(case_id)
    wait_step(qtbot, w, "reopened")
    assert w.case.recorded is not None and w.case.recorded.total_votes == 10
    assert w.case.study is not None and w.case.study.study_uid == study.study_uid
    assert w.viewer.count() == len(study.pairs)  # the images are back
    assert "register" in w.result_panel.text().lower()
    assert w.tabs.currentIndex() == 0
    assert not shown.errors


def test_real_ct_without_three_phases_is_shown_and_refused_for_prediction(qtbot, window: MainWindow, shown: Dialogs, shared_data: Path) -> None:
    """A real portal-venous abdomen CT (20 slices, JPEG 2000): listed, viewable, not predictable."""
    w = window
    import_and_wait(qtbot, w, shared_data / "totalsegmentator_example_ct")
    assert not shown.errors, shown.errors
    key = w.case.key
    assert key is not None
    from app.dicom.studies import iter_studies

    series = [s for _, st in iter_studies(w.case.scan) for s in st.series]
    assert len(series) == 1
    item = w.browser.series_item(series[0].uid)
    assert item is not None and item.text(2)  # phase confidence shown
    # a phase is missing: said, not guessed; the series is still shown (issue 17)
    study = w.case.study
    assert study is not None and study.view_only_reason and not study.pairs
    assert "no plain" in study.view_only_reason
    assert "Viewing only" in w.browser.assembly_note.text()
    assert w.viewer.viewers["portal"].volume is not None
    assert not w.act_predict.isEnabled()
    assert w.predict() is None


def test_demo_prediction_with_the_shipped_model_lands_on_a_slice_with_heat(qtbot, shown: Dialogs) -> None:
    """The shipped lesion-head model draws heat only on the slices that voted; the viewer opens
    mid-liver, on the demo study a tumour-free slice. After Predict the viewer must show a slice
    that voted, with its heat map — not "not used by the model" on a newcomer's first try."""
    from app.inference.weights import default_model_path, read_description

    model = default_model_path()
    if read_description(model).architecture.get("aggregation") != "patient_head":
        pytest.skip("the bundled model is not a lesion-head model")
    update_settings(model_path=str(model), device="cpu")
    w, steps = first_start(qtbot)
    w.demo_button.click()
    qtbot.waitUntil(lambda: "imported" in steps or bool(shown.errors), timeout=STEP_TIMEOUT_MS)
    assert not shown.errors, shown.errors
    opened_at = w.viewer.pair_index()
    w.act_predict.trigger()
    qtbot.waitUntil(lambda: "cam-study" in steps or bool(shown.errors), timeout=STEP_TIMEOUT_MS)
    assert not shown.errors, shown.errors
    result = w.case.prediction.result
    here = w.viewer.pair_index()
    assert result.slices[here].votes
    assert not all(s.votes for s in result.slices)  # tumour-free slices exist: the case is real
    if result.slices[opened_at].votes:
        assert here == opened_at  # a reader on a voting slice is not moved
    assert w.viewer.has_cam(here) and w.viewer.cam_visible()
    w.close()


def test_after_predict_the_viewer_leaves_a_slice_that_did_not_vote(qtbot, window: MainWindow, generated) -> None:
    """Both branches of the move after a prediction, on a real study in the viewer: from a slice
    that took no part in the vote to the strongest voting one; on a voting slice, no move."""
    from dataclasses import replace

    w = window
    import_and_wait(qtbot, w, generated[0])
    n = len(w.case.study.pairs)
    assert n >= 6
    probs = [0.9, 0.2, 0.3, 0.7, 0.4] + [0.1] * (n - 5)
    voted = [False, True, True, True, False] + [False] * (n - 5)
    base = fx.prediction_result(probs)
    result = replace(base, slices=[replace(s, votes=v) for s, v in zip(base.slices, voted, strict=True)])
    w.viewer.set_pair_index(4)
    w._show_a_voting_slice(result)
    assert w.viewer.pair_index() == 3  # the strongest that voted, not slice 0 (0.9, no vote)
    w.viewer.set_pair_index(2)
    w._show_a_voting_slice(result)
    assert w.viewer.pair_index() == 2


def test_predict_shows_and_records_the_chosen_series_warnings_like_the_cli(
        qtbot, window: MainWindow, generated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing slice in the portal series is shown beside the study and kept in the GUI's
    register record - the same list ``hcc-response predict`` shows and records
    (``app.case.flow.shown_warnings``); the GUI once showed and recorded only the assembly's."""
    import html
    import shutil

    from app.case.flow import shown_warnings

    w = window
    folder = tmp_path / "case"
    shutil.copytree(generated[0], folder)
    import_and_wait(qtbot, w, folder)
    portal = w.case.scan.find_series(w.case.study.assignment["portal"])
    files = sorted(i.path for i in portal.instances)
    files[len(files) // 2].unlink()  # a gap in the middle of the portal series
    import_and_wait(qtbot, w, folder)
    study = w.case.study
    assert study is not None
    if study.needs_confirmation:
        w.confirm_assignment()
    expected = shown_warnings(w.case.scan, study)
    gap = [x for x in expected if "gap of" in x]
    assert gap and not any("gap of" in x for x in study.warnings)  # only the series knows it
    w.steps.clear()  # type: ignore[attr-defined]
    w.act_predict.trigger()
    wait_step(qtbot, w, "predicted")
    pred = w.case.prediction
    assert pred is not None and pred.record_id is not None
    # shown beside the study before the prediction, beside the label after it, and recorded
    assert all(x in w.browser.assembly_note.text() for x in gap)
    panel = w.result_panel.warnings_label  # one line beside the label, the list in its tooltip
    n_study = len([x for x in pred.warnings if x not in pred.result.warnings])
    assert f"⚠ {n_study} warnings about the study and its images" in panel.text()
    assert all(html.escape(x) in panel.toolTip() for x in gap) and panel.isVisibleTo(w.result_panel)
    record = w.register.get_prediction(pred.record_id)
    assert all(x in record.record.warnings for x in expected)
    # and the PDF report says them too (the DICOM SR likewise: test_ui_pacs)
    from app.ui import report_pdf

    written: list[report_pdf.CaseReport] = []
    monkeypatch.setattr(report_pdf, "write_case_report", lambda path, rep: written.append(rep) or path)
    assert w.export_pdf(tmp_path / "report.pdf") is not None
    wait_step(qtbot, w, "report")
    assert written and list(written[0].warnings) == record.record.warnings
    page_text = report_pdf._model_html(written[0])
    assert all(html.escape(x) in page_text for x in gap)


def _slowed(monkeypatch: pytest.MonkeyPatch, stage: str) -> dict[str, threading.Event]:
    """Slow one stage of a prediction down on purpose: ``"predict"`` - a long prediction that
    checks for cancellation like the real one; ``"load"`` - a model load of about a second that
    never checks (``load_model`` does not: RELIABILITY 28 is met at the check after it).
    Returns events: ``entered`` (the slow stage began), ``predicted`` (the real predictor ran)."""
    import app.case.model as model_mod
    import app.inference.predictor as predictor

    events = {"entered": threading.Event(), "predicted": threading.Event()}
    real_predict, real_load = predictor.predict, model_mod.load_chosen_model

    def predict(study: Any, model: Any, progress: Any = None, **kw: Any) -> Any:
        if stage == "predict":
            events["entered"].set()
            for _ in range(500):
                progress.check()
                time.sleep(0.01)
        events["predicted"].set()
        return real_predict(study, model, progress, **kw)

    def load(choice: Any, progress: Any = None) -> Any:
        if stage == "load":
            events["entered"].set()
            time.sleep(1.0)  # no cancellation check, like load_model
        return real_load(choice, progress)

    monkeypatch.setattr(predictor, "predict", predict)
    monkeypatch.setattr(model_mod, "load_chosen_model", load)
    return events


@pytest.mark.parametrize("stage", ["predict", "load"])
@pytest.mark.usefixtures("torch_one_thread")
def test_close_while_predicting_stops_the_worker_and_records_nothing(
        qtbot, tiny_model, generated, shown: Dialogs, qtlog, monkeypatch, stage: str) -> None:
    from app.register import open_register

    w = fx.open_main_window(qtbot, *tiny_model)
    w.shown = shown  # type: ignore[attr-defined]
    import_and_wait(qtbot, w, generated[0])
    if w.case.needs_confirmation():
        w.confirm_assignment()
    register_path = Path(w.register.path)
    events = _slowed(monkeypatch, stage)
    job = w.predict()
    assert job is not None
    qtbot.waitUntil(events["entered"].is_set, timeout=STEP_TIMEOUT_MS)
    close_and_check_stopped(qtbot, w, job, qtlog)
    assert not events["predicted"].is_set()  # stopped before the network ran ...
    assert w.case.prediction is None and "predicted" not in w.steps  # type: ignore[attr-defined]
    reopened = open_register(register_path)
    try:
        assert reopened.list_cases() == []  # ... and nothing was recorded
    finally:
        reopened.close()
    assert not shown.errors


def test_cancel_during_model_load_stops_when_the_load_ends(qtbot, window: MainWindow, generated,
                                                           shown: Dialogs, monkeypatch) -> None:
    """The loader has no cancellation checks (a load takes about a second): a Cancel during it
    takes effect at the check right after, before the prediction and the record."""
    w = window
    import_and_wait(qtbot, w, generated[0])
    if w.case.needs_confirmation():
        w.confirm_assignment()
    events = _slowed(monkeypatch, "load")
    job = w.predict()
    assert job is not None
    qtbot.waitUntil(events["entered"].is_set, timeout=STEP_TIMEOUT_MS)
    t0 = time.monotonic()
    w.act_cancel.trigger()
    qtbot.waitUntil(lambda: job.is_done, timeout=5000)
    assert time.monotonic() - t0 < 5
    assert not events["predicted"].is_set()
    assert w.case.prediction is None and w.register.list_cases() == []
    assert not shown.errors
    assert w.act_predict.isEnabled()  # usable again
