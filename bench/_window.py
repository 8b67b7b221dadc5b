"""The real main window offscreen, for the benchmarks that time what a user waits for
(``ui_heartbeat``, ``cancel_latency``): a private per-user folder, a generated study, the
model the bench asks for, dialogs that record instead of blocking, and an event-loop wait.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

MODEL_HELP = ("default (the bundled model, else a random-initialised one of the paper's "
              "configuration) | paper (random-initialised, the paper's ResNet-18 at 224 px: the "
              "heaviest) | tiny (a 64 px shared-trunk model) | path to a .safetensors")


@dataclass
class BenchWindow:
    """What a bench needs: the Qt application, the generated study, recorded error dialogs."""

    app: Any
    home: Path
    folder: Path
    errors: list[str] = field(default_factory=list)

    def wait(self, cond: Callable[[], bool], timeout_s: float = 600.0) -> None:
        """Run the event loop until ``cond()``; an error dialog or the timeout raises."""
        end = time.perf_counter() + timeout_s
        while not cond() and not self.errors:
            if time.perf_counter() > end:
                raise TimeoutError("step did not finish")
            self.app.processEvents()
            time.sleep(0.002)
        if self.errors:
            raise RuntimeError(self.errors[0])


def bench_window(matrix: int, model: str, device: str = "cpu") -> BenchWindow:
    """Set up the application offscreen with its own per-user folder, one generated
    three-phase study of ``matrix`` × ``matrix`` and the settings for ``model`` (see
    :data:`MODEL_HELP`); dialogs record errors and confirm phase assignments."""
    home = Path(tempfile.mkdtemp(prefix="hcc-bench-home-"))
    os.environ["HCC_RESPONSE_HOME"] = str(home)

    from PySide6 import QtWidgets

    from app.ui.application import configure_pyqtgraph

    configure_pyqtgraph()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])

    import ui_fixtures as fx

    from app.settings import update_settings
    from app.ui import dialogs

    t0 = time.perf_counter()
    folder, _ = fx.generate_study(home / "study", matrix=matrix, delayed=False)
    print(f"study: {matrix}x{matrix}, generated in {time.perf_counter() - t0:.1f} s")
    if model in ("tiny", "paper"):
        from app.inference.config import ModelConfig
        from app.inference.weights import create_random_model

        path = home / f"{model}.safetensors"
        sha = fx.create_tiny_model(path) if model == "tiny" else create_random_model(path, ModelConfig())
        update_settings(model_path=str(path), model_sha256=sha, device=device, demo_offered=True)
    elif model == "default":
        update_settings(device=device, demo_offered=True)
    else:
        from app.inference.weights import sha256_file

        update_settings(model_path=model, model_sha256=sha256_file(model), device=device,
                        demo_offered=True)
    bench = BenchWindow(app, home, folder)
    dialogs.show_error = lambda parent, msg, details="": bench.errors.append(f"{msg}\n{details}")  # type: ignore[assignment]
    dialogs.confirm_phases = lambda parent, r, a, on_answer: on_answer(True)  # type: ignore[assignment]
    return bench
