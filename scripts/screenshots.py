"""Save screenshots of the app's main screens (offscreen) into ``docs/screenshots/``.

Runs the real application on the demo study, as a new user would: first start (welcome
banner) → "Open the demo study" → "Predict" → heatmaps; then the register with an outcome, the
settings, the model description, the About box and the one-page PDF report (rendered as an
image with the same drawing code); then the viewer's tools on the demo lesion (an ROI read in
the three phases, a distance, the coronal reformat, the tag viewer, help) and a real
single-phase CT (``../shared/data/totalsegmentator_example_ct``) opened for viewing.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--model default|tiny]

Under a real X server: ``bash scripts/screenshots_x11.sh`` (Xvfb; see that script).

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
    parser.add_argument("--single-phase", type=Path,
                        default=ROOT.parent / "shared" / "data" / "totalsegmentator_example_ct",
                        help="a real single-phase CT folder for single-phase.png")
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
        series_labels=w._series_labels(pred.study), warnings=pred.warnings,
    )
    image = render_case_report_image(report, dpi=110)
    image.save(str(args.out / "report.png"))
    print(f"wrote {args.out / 'report.png'}")

    viewer_tools_shots(w, save, pump)
    if args.single_phase.is_dir():
        steps.clear()
        w.import_folder(args.single_phase)
        wait(lambda: "imported" in steps)
        wait(lambda: not w.jobs.busy)
        save(w, "single-phase.png")
    else:
        print(f"skipped single-phase.png: {args.single_phase} not found")
    w.close()
    QtCore.QCoreApplication.processEvents()
    return 0


def viewer_tools_shots(w, save, pump) -> None:  # type: ignore[no-untyped-def]
    """The issue-17 tools on the demo study: an ROI on the lesion read in the three phases, a
    distance across it, the coronal reformat and the tag viewer."""
    import json

    import numpy as np

    from app.ui.measure import Measurement

    truth = json.loads((w.case.folder / "truth.json").read_text(encoding="utf-8"))
    lesion = next(les for les in truth["lesions"] if les["target"])
    x, y, z = lesion["centre_mm"]["arterial"]
    panel = w.viewer
    zs = np.array([panel.z_at(i) for i in range(panel.count())])
    panel.set_pair_index(int(np.argmin(np.abs(zs - z))))
    panel.set_preset("Liver")
    w.act_cam.setChecked(False)  # the heat map would hide the lesion's grey values
    r = lesion["diameter_mm"] * 0.3
    panel.measure.set_tool("ellipse")
    panel.measure.add(Measurement("ellipse", x - r, y - r, x + r, y + r))
    save(w, "roi-three-phases.png")
    panel.measure.clear()
    half = lesion["diameter_mm"] / 2
    panel.measure.set_tool("distance")
    panel.measure.add(Measurement("distance", x - half, y, x + half, y))
    save(w, "distance.png")
    panel.measure.clear()
    panel.measure.set_tool("crosshair")
    panel.measure.set_reference((x, y))
    coronal = w.tools.show_coronal()
    coronal.resize(1200, 640)
    save(coronal, "coronal.png")
    coronal.close()
    panel.measure.set_tool("navigate")
    tags = w.tools.show_slice_tags("arterial")
    if tags is not None:
        tags.resize(820, 700)
        save(tags, "tag-viewer.png")
        tags.close()
    help_dialog = w.tools.show_help("shortcuts")
    save(help_dialog, "help.png")
    help_dialog.close()
    w.act_cam.setChecked(True)


if __name__ == "__main__":
    sys.exit(main())
