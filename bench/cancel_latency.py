"""How soon does Cancel stop a running import, prediction or Grad-CAM? (RELIABILITY.md 28)

Opens the real main window offscreen with the bundled model (or ``--model``), then, for each
stage and run, starts the job exactly as the user does (Import folder, Predict, the Grad-CAM that
follows a prediction), presses Cancel (the window's own action) once the job's progress has
passed ``--at`` of the way, and times how long the worker takes to end. After each cancelled
prediction it checks that the register holds no new record. Prints every latency and the worst
per stage against the target ("within about a second").

    .venv/bin/python bench/cancel_latency.py [--matrix 512] [--runs 3] [--at 0.3]
                                              [--model default|paper|tiny|PATH]

The default study is one synthetic patient at 512 × 512 (the size of a clinical CT), so that each
step lasts long enough to be cancelled in its middle. Where a job ends before Cancel is pressed
(a step faster than the progress threshold) the run says "finished before Cancel".
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from bench._window import MODEL_HELP, bench_window  # noqa: E402

#: stage → the job name the window gives it
STAGES = {"import": "Import", "predict": "Predict", "grad-cam": "Grad-CAM"}
TARGET_S = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--matrix", type=int, default=512, help="image matrix of the study")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--at", type=float, default=0.3, help="press Cancel past this progress fraction")
    parser.add_argument("--model", default="default", help=MODEL_HELP)
    args = parser.parse_args()

    bench = bench_window(args.matrix, args.model)
    app, folder, wait = bench.app, bench.folder, bench.wait

    from app.ui.main_window import MainWindow

    w = MainWindow()
    w.show()
    steps: list[str] = []
    w.stepDone.connect(steps.append)
    wait(lambda: "warm" in steps)
    armed: dict[str, object] = {}

    def on_job(job) -> None:  # type: ignore[no-untyped-def]
        if job.name != armed.get("name"):
            return
        armed["job"] = job

        def on_progress(fraction: float, _text: str, job=job) -> None:  # type: ignore[no-untyped-def]
            if fraction >= args.at and "pressed" not in armed and not job.is_done:
                armed["pressed"] = time.perf_counter()
                w.act_cancel.trigger()

        job.progress.connect(on_progress)

    w.jobs.jobStarted.connect(on_job)

    def prepare(stage: str) -> None:
        """Bring the window to the point where ``stage`` is the next job."""
        if stage == "import":
            return
        if w.case.study is None:
            steps.clear()
            w.import_folder(folder)
            wait(lambda: "imported" in steps)
        if w.case.needs_confirmation():
            w.confirm_assignment()
        if stage == "grad-cam":
            steps.clear()
            w.predict()
            armed["name"] = STAGES[stage]  # the Grad-CAM job starts when the prediction lands

    def start(stage: str) -> None:
        if stage == "import":
            w.import_folder(folder)
        elif stage == "predict":
            w.predict()

    worst: dict[str, float] = {}
    for stage, name in STAGES.items():
        for run in range(args.runs):
            armed.clear()
            prepare(stage)
            armed["name"] = name
            n_records = len(w.register.list_cases()) if w.register else 0
            start(stage)
            wait(lambda: "job" in armed)
            job = armed["job"]
            wait(lambda job=job: job.is_done)  # type: ignore[attr-defined]
            ended = time.perf_counter()
            if "pressed" not in armed:
                print(f"{stage:8s} run {run + 1}: finished before Cancel (progress never passed {args.at})")
                continue
            latency = ended - float(armed["pressed"])  # type: ignore[arg-type]
            worst[stage] = max(worst.get(stage, 0.0), latency)
            extra = ""
            if stage == "predict":
                added = (len(w.register.list_cases()) if w.register else 0) - n_records
                extra = f", register records added: {added}"
            print(f"{stage:8s} run {run + 1}: stopped {latency * 1000:6.0f} ms after Cancel{extra}")
            for _ in range(20):  # let the window settle before the next run
                app.processEvents()
                time.sleep(0.005)
    w.close()
    for stage, latency in worst.items():
        verdict = "ok" if latency <= TARGET_S else "OVER"
        print(f"WORST {stage:8s}: {latency * 1000:.0f} ms (target <= {TARGET_S * 1000:.0f} ms) {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
