"""Save screenshots of the app's main screens (offscreen) into ``docs/screenshots/``.

Runs the real application on the demo study, as a new user would: first start (welcome
banner) → "Open the demo study" → "Predict" → heatmaps; then the register with an outcome, the
settings, the model description, the About box and the one-page PDF report (rendered as an
image with the same drawing code).

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--model default|tiny]

``--model default`` uses the bundled model when present, else a random-initialised model with
the default configuration (what a fresh checkout without trained weights shows); a path uses
that model file (e.g. ``resources/models/demo-model.safetensors``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--model", default="default", help="default | tiny | path to a .safetensors")
    parser.add_argument("--size", default="1500x920", help="main window size WxH")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["HCC_RESPONSE_HOME"] = tempfile.mkdtemp(prefix="hcc-shots-")

    import torch

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    from PySide6 import QtCore, QtWidgets

    from app.ui.application import configure_pyqtgraph

    configure_pyqtgraph()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    app.setApplicationName("HCC Response")

    from app.settings import update_settings
    from app.ui import dialogs
    from app.ui.main_window import MainWindow
    from app.ui.report_pdf import case_report, render_case_report_image, strongest_responder_slice

    if args.model == "tiny":
        sys.path.insert(0, str(ROOT / "tests"))
        import ui_fixtures as fx

        path = Path(os.environ["HCC_RESPONSE_HOME"]) / "tiny.safetensors"
        update_settings(model_path=str(path), model_sha256=fx.create_tiny_model(path))
    elif args.model != "default":
        from app.inference.weights import sha256_file

        update_settings(model_path=str(Path(args.model).resolve()), model_sha256=sha256_file(args.model))
    errors: list[str] = []
    dialogs.show_error = lambda parent, msg, details="": errors.append(msg)  # type: ignore[assignment]
    dialogs.confirm_phases = lambda parent, r, a, on_answer: on_answer(True)  # type: ignore[assignment]

    def pump(seconds: float = 0.3) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.005)

    def wait(cond, timeout_s: float = 900.0) -> None:  # type: ignore[no-untyped-def]
        end = time.perf_counter() + timeout_s
        while not cond():
            if errors:
                raise RuntimeError(errors[0])
            if time.perf_counter() > end:
                raise TimeoutError("timed out")
            app.processEvents()
            time.sleep(0.005)

    def save(widget: QtWidgets.QWidget, name: str) -> None:
        pump(0.3)
        target = args.out / name
        widget.grab().save(str(target))
        print(f"wrote {target}")

    width, height = (int(v) for v in args.size.split("x"))
    w = MainWindow()
    w.resize(width, height)
    w.show()
    steps: list[str] = []
    w.stepDone.connect(steps.append)
    w.offer_demo()
    wait(lambda: "warm" in steps)
    save(w, "welcome.png")

    w.demo_button.click()
    wait(lambda: "imported" in steps)
    w.predict()
    wait(lambda: "cam-study" in steps)
    pred = w.case.prediction
    assert pred is not None
    best = strongest_responder_slice(pred.result)
    w.viewer.set_pair_index(best)
    w.viewer.set_preset("Liver")
    save(w, "main-window.png")

    if pred.record_id is not None:
        w.register_tab.record_outcome(pred.record_id, "PR", "2024-09-01", "demo")  # a worker
        wait(lambda: not w.jobs.busy)
        w.register_tab.select_id(pred.record_id)
    w.tabs.setCurrentWidget(w.register_tab)
    save(w, "register.png")
    w.tabs.setCurrentIndex(0)

    from app.ui.jobs import bundled_model_path
    from app.ui.settings_dialog import SettingsDialog

    settings_dialog = SettingsDialog(w.settings, w, bundled_model=bundled_model_path())
    settings_dialog.show()
    save(settings_dialog, "settings.png")
    settings_dialog.close()

    loaded = w.models.loaded
    desc_dialog = dialogs.ModelDescriptionDialog(loaded.description, loaded.sha256, str(loaded.path), w)
    desc_dialog.show()
    save(desc_dialog, "model-description.png")
    desc_dialog.close()

    about = dialogs.AboutDialog(w)
    about.show()
    save(about, "about.png")
    about.close()

    report = case_report(
        pred.study, pred.result, w.cams_at(best), loaded.description,
        pair_index=best, cam_scale=1.0, case_id=pred.record_id,
    )
    image = render_case_report_image(report, dpi=110)
    image.save(str(args.out / "report.png"))
    print(f"wrote {args.out / 'report.png'}")
    w.close()
    QtCore.QCoreApplication.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
