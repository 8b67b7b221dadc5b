"""Settings, model import and the exception hook, driven through the main window."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PySide6")

import ui_fixtures as fx  # noqa: E402
from PySide6 import QtCore  # noqa: E402

from app.settings import load_settings, update_settings  # noqa: E402
from app.ui import dialogs  # noqa: E402
from app.ui.main_window import MainWindow  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("ui-model") / "site-model.safetensors"
    return path, fx.create_tiny_model(path)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    rec: dict[str, list[Any]] = {"errors": [], "questions": []}
    monkeypatch.setattr(dialogs, "show_error", lambda p, m, d="": rec["errors"].append((m, d)))
    monkeypatch.setattr(dialogs, "show_info", lambda p, m, d="": None)

    def ask(parent: Any, question: str, on_answer: Any, **_: Any) -> None:
        rec["questions"].append(question)
        on_answer(True)

    monkeypatch.setattr(dialogs, "ask", ask)
    return rec


@pytest.fixture
def window(qtbot):  # type: ignore[no-untyped-def]
    update_settings(demo_offered=True, device="cpu")
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def test_import_model_shows_card_and_hash_then_uses_a_copy(qtbot, window: MainWindow, tiny_model, recorded) -> None:
    path, sha = tiny_model
    job = window.import_model(path)
    qtbot.waitUntil(lambda: job.is_done, timeout=60_000)
    assert not recorded["errors"], recorded["errors"]
    assert recorded["questions"] and sha[:16] in recorded["questions"][-1]
    dialog = window._last_dialog
    assert isinstance(dialog, dialogs.ModelDescriptionDialog)
    assert sha in dialog.summary.toHtml() and "random-initialised" in dialog.summary.toHtml()
    settings = load_settings()
    from app.paths import models_dir

    assert settings.model_path == str(models_dir() / path.name)
    assert settings.model_sha256 == sha
    assert Path(settings.model_path).read_bytes() == path.read_bytes()
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=60_000)  # the audit entry's worker
    events = window.register.events(kind="model_import")
    assert events and events[-1].payload["sha256"] == sha


def test_changed_model_file_is_refused(qtbot, window: MainWindow, tiny_model, recorded, tmp_path: Path) -> None:
    path, sha = tiny_model
    changed = tmp_path / "changed.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # one bit of one weight
    changed.write_bytes(bytes(data))
    import dataclasses

    window.apply_settings(dataclasses.replace(window.settings, model_path=str(changed), model_sha256=sha))
    job = window.start_job("Load model", lambda p: window.models.get(window.model_choice(), p), key="model")
    qtbot.waitUntil(lambda: job.is_done, timeout=60_000)
    assert recorded["errors"], "a changed model file must be refused"
    assert "sha" in recorded["errors"][-1][0].lower() or "changed" in recorded["errors"][-1][0].lower()
    assert window.models.loaded is None


def test_settings_change_reopens_register_and_forgets_model(qtbot, window: MainWindow, recorded, tmp_path: Path) -> None:
    import dataclasses

    old_register = window.register
    new_path = tmp_path / "other-register.sqlite"
    window.apply_settings(dataclasses.replace(window.settings, register_path=str(new_path), device="cpu"))
    assert window.register is not old_register
    assert Path(window.register.path) == new_path and new_path.exists()
    assert window.register_tab.register is window.register
    assert load_settings().register_path == str(new_path)
    # an unusable register location: the error is shown, the app keeps running without one
    bad = tmp_path / "not-a-register.sqlite"
    bad.write_bytes(b"this is not SQLite" * 100)
    window.apply_settings(dataclasses.replace(window.settings, register_path=str(bad)))
    assert window.register is None and recorded["errors"]
    assert "No register" in window.register_tab.status.text()


def test_settings_dialog_edits_a_copy(qtbot, window: MainWindow) -> None:
    from app.ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(window.settings, window)
    qtbot.addWidget(dialog)
    dialog.device.setCurrentIndex(dialog.device.findData("cuda"))
    dialog.register_path.setText("/tmp/x.sqlite")
    new = dialog.result_settings()
    assert (new.device, new.register_path) == ("cuda", "/tmp/x.sqlite")
    assert window.settings.device == "cpu"  # nothing changed until applied


@pytest.mark.qt_no_exception_capture
def test_exception_in_a_slot_is_logged_and_shown_not_fatal(qtbot, window: MainWindow, recorded, caplog, monkeypatch) -> None:
    from app.ui.application import _excepthook, install_excepthook

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    install_excepthook()
    assert sys.excepthook is _excepthook

    class Boom(QtCore.QObject):
        fire = QtCore.Signal()

    boom = Boom()

    def bad_slot() -> None:
        raise ValueError("slot exploded")

    boom.fire.connect(bad_slot)
    boom.fire.emit()  # PySide6 reports the slot's exception through sys.excepthook
    assert recorded["errors"] and recorded["errors"][-1][0] == "Unexpected error: ValueError: slot exploded"
    assert "Traceback" in recorded["errors"][-1][1]
    assert any("uncaught exception" in r.getMessage() for r in caplog.records)
    assert window.isVisible()


# -- a refused or declined model import leaves the working model in place (RELIABILITY 17, 18) --

STEP_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fx.generate_study(tmp_path_factory.mktemp("ui-study"))[0]


@pytest.fixture
def predicting_window(qtbot, tiny_model, recorded, generated: Path, torch_one_thread):  # type: ignore[no-untyped-def]
    """The main window on the tiny model with a generated study imported, ready to predict."""
    w = fx.open_main_window(qtbot, *tiny_model)
    w.import_folder(generated)
    qtbot.waitUntil(lambda: "imported" in w.steps or bool(recorded["errors"]), timeout=STEP_TIMEOUT_MS)
    assert not recorded["errors"], recorded["errors"]
    if w.case.needs_confirmation():
        w.confirm_assignment()
    yield w
    qtbot.waitUntil(lambda: not w.jobs.busy, timeout=STEP_TIMEOUT_MS)
    w.close()


def predict_and_wait(qtbot, w: MainWindow, errors: list[Any]):  # type: ignore[no-untyped-def]
    """Predict from the toolbar; the outcome once it is shown and its heat maps are done."""
    w.steps.clear()  # type: ignore[attr-defined]
    n_errors = len(errors)
    w.act_predict.trigger()
    qtbot.waitUntil(lambda: "predicted" in w.steps or len(errors) > n_errors, timeout=STEP_TIMEOUT_MS)  # type: ignore[attr-defined]
    assert "predicted" in w.steps, errors[n_errors:]  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: not w.jobs.busy, timeout=STEP_TIMEOUT_MS)  # Grad-CAM
    return w.case.prediction


def import_through_menu(qtbot, w: MainWindow, path: Path):  # type: ignore[no-untyped-def]
    """Model → Import model…, the file chosen in the (real, non-blocking) file dialog; returns
    the job checking the file."""
    from PySide6 import QtWidgets

    w.act_import_model.trigger()
    dialog = next(d for d in w.findChildren(QtWidgets.QFileDialog) if d.isVisible())
    dialog.selectFile(str(path))
    dialog.accept()
    job = w.jobs.running("model")
    assert job is not None, "choosing a file must start checking it"
    qtbot.waitUntil(lambda: job.is_done, timeout=STEP_TIMEOUT_MS)
    return job


def assert_current_model_kept(w: MainWindow, path: Path, sha: str, loaded: Any, refused: Path) -> None:
    from app.paths import models_dir

    assert (w.settings.model_path, w.settings.model_sha256) == (str(path), sha)
    saved = load_settings()
    assert (saved.model_path, saved.model_sha256) == (str(path), sha)
    assert w.models.loaded is loaded  # not even dropped from memory
    assert not (models_dir() / refused.name).exists()  # nothing copied
    assert sha[:12] in w.model_label.text()


def test_damaged_model_import_is_refused_and_the_current_model_kept(
        qtbot, predicting_window: MainWindow, tiny_model, recorded, tmp_path: Path) -> None:
    w, errors = predicting_window, recorded["errors"]
    path, sha = tiny_model
    first = predict_and_wait(qtbot, w, errors)
    assert first.result.model_sha256 == sha
    loaded = w.models.loaded
    assert loaded is not None and loaded.sha256 == sha
    cut = fx.truncated_model_copy(path, tmp_path / "site-model-cut.safetensors")
    nan = tmp_path / "site-model-nan.safetensors"
    tensor = fx.nan_model_copy(path, nan)
    for bad, problem in [(cut, "is truncated"), (nan, f"NaN or infinite values in tensor(s) {tensor}")]:
        n_errors, n_questions = len(errors), len(recorded["questions"])
        import_through_menu(qtbot, w, bad)
        assert len(errors) == n_errors + 1, f"{bad.name}: expected one error dialog"
        assert bad.name in errors[-1][0] and problem in errors[-1][0], errors[-1]
        assert len(recorded["questions"]) == n_questions  # never offered for use
        assert_current_model_kept(w, path, sha, loaded, bad)
    second = predict_and_wait(qtbot, w, errors)
    assert second.result.model_sha256 == sha
    assert w.register.get_prediction(second.record_id).record.model_sha256 == sha
    assert not w.register.events(kind="model_import")
    assert len(errors) == 2, errors


def test_keeping_the_current_model_after_seeing_an_imported_card_changes_nothing(
        qtbot, predicting_window: MainWindow, tiny_model, recorded, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from app.inference.config import ModelConfig
    from app.inference.weights import create_random_model

    w, errors = predicting_window, recorded["errors"]
    path, sha = tiny_model
    assert predict_and_wait(qtbot, w, errors).result.model_sha256 == sha
    loaded = w.models.loaded
    other = tmp_path / "other-site-model.safetensors"
    other_sha = create_random_model(other, ModelConfig(input_size=64, shared_trunk=True, extra_channels=32, hidden=32), seed=1)
    assert other_sha != sha
    asked: list[str] = []

    def keep_current(parent: Any, question: str, on_answer: Any, **_: Any) -> None:
        asked.append(question)
        on_answer(False)  # "Keep the current model"

    monkeypatch.setattr(dialogs, "ask", keep_current)
    import_through_menu(qtbot, w, other)
    assert not errors, errors
    # shown with its hash and card before use (RELIABILITY 17) ...
    assert asked and other_sha[:16] in asked[-1]
    card = w._last_dialog
    assert isinstance(card, dialogs.ModelDescriptionDialog) and other_sha in card.summary.toHtml()
    # ... and declined: nothing changes
    qtbot.waitUntil(lambda: not w.jobs.busy, timeout=STEP_TIMEOUT_MS)
    assert_current_model_kept(w, path, sha, loaded, other)
    assert not w.register.events(kind="model_import")
    again = predict_and_wait(qtbot, w, errors)
    assert again.result.model_sha256 == sha
    assert w.register.get_prediction(again.record_id).record.model_sha256 == sha


def test_accepting_a_model_while_a_prediction_runs_does_not_freeze_the_window(
        qtbot, predicting_window: MainWindow, tiny_model, recorded, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The prediction holds the model holder's lock while the network runs; accepting another
    model (or changing the device in Settings) must not wait for it on the GUI thread. The
    running prediction goes on with - and records - the model it started with."""
    import threading
    import time

    import app.inference.predictor as predictor
    from app.inference.config import ModelConfig
    from app.inference.weights import create_random_model

    w, errors = predicting_window, recorded["errors"]
    path, sha = tiny_model
    other = tmp_path / "other-site-model.safetensors"
    other_sha = create_random_model(other, ModelConfig(input_size=64, shared_trunk=True, extra_channels=32, hidden=32), seed=1)
    real_predict = predictor.predict
    in_predict, release = threading.Event(), threading.Event()

    def slow_predict(study: Any, model: Any, progress: Any = None, **kw: Any) -> Any:
        in_predict.set()
        while not release.wait(0.01):  # a long prediction, as long as the test needs
            progress.check()
        return real_predict(study, model, progress, **kw)

    monkeypatch.setattr(predictor, "predict", slow_predict)
    w.steps.clear()  # type: ignore[attr-defined]
    w.act_predict.trigger()
    qtbot.waitUntil(in_predict.is_set, timeout=STEP_TIMEOUT_MS)
    answer_took: list[float] = []

    def use_it(parent: Any, question: str, on_answer: Any, **_: Any) -> None:
        t0 = time.monotonic()
        on_answer(True)  # "Use this model", on the GUI thread
        answer_took.append(time.monotonic() - t0)

    monkeypatch.setattr(dialogs, "ask", use_it)
    timer = threading.Timer(5.0, release.set)  # a frozen window is measured, not a hung test
    timer.daemon = True
    timer.start()
    import_through_menu(qtbot, w, other)
    assert answer_took and answer_took[0] < 1.5, f"the window froze {answer_took[0]:.1f} s"
    assert Path(w.settings.model_path).name == other.name and w.settings.model_sha256 == other_sha
    release.set()
    timer.cancel()
    qtbot.waitUntil(lambda: "predicted" in w.steps or bool(errors), timeout=STEP_TIMEOUT_MS)  # type: ignore[attr-defined]
    assert not errors, errors
    running = w.case.prediction
    assert running.result.model_sha256 == sha  # started on the old model: recorded as such
    assert w.register.get_prediction(running.record_id).record.model_sha256 == sha
    qtbot.waitUntil(lambda: not w.jobs.busy, timeout=STEP_TIMEOUT_MS)
    monkeypatch.setattr(predictor, "predict", real_predict)
    assert predict_and_wait(qtbot, w, errors).result.model_sha256 == other_sha
