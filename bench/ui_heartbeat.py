"""How long does the GUI event loop stall while the app imports, predicts and explains?

Opens the real main window offscreen, then, with a 10 ms heartbeat timer running, imports a
generated three-phase study, predicts and computes Grad-CAM for the whole study — exactly the
user's "Open → Predict" path, scrolling through the slices while the heatmaps are computed.
Prints the worst stall (delay of a heartbeat tick beyond 10 ms),
the 99th percentile, how many ticks were more than 100 ms late, and the time of each step.
Target (RELIABILITY.md 29): worst stall ≤ 100 ms.

    .venv/bin/python bench/ui_heartbeat.py [--matrix 256] [--model default|tiny|PATH] [--runs 3]

``--model default`` uses the bundled model when present, else a random-initialised model with
the paper's default configuration (224 px input, separate ResNet-18 trunks) — the heaviest
realistic case; ``tiny`` a 64 px shared-trunk model.
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

os.environ.setdefault("OMP_NUM_THREADS", "2")


def stage_of(progress_text: str) -> str:
    """Which step of the flow a job's progress text belongs to."""
    if "loading model" in progress_text or "random-initialised model" in progress_text:
        return "model load"
    for tag, name in (("[Import]", "import"), ("[Predict]", "predict"), ("[Grad-CAM]", "Grad-CAM")):
        if progress_text.startswith(tag):
            return name
    return "other"


class Watchdog:
    """Samples the worker threads' Python stacks whenever the heartbeat is > 60 ms late."""

    def __init__(self, monitor, limit_s: float = 0.06) -> None:  # type: ignore[no-untyped-def]
        import collections
        import threading

        self.monitor = monitor
        self.limit_s = limit_s
        self.stacks: collections.Counter[str] = collections.Counter()
        self.main_id = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import threading
        import traceback

        while not self._stop.wait(0.02):
            last = self.monitor._last
            if last is not None and time.perf_counter() - last > self.limit_s:
                me = threading.get_ident()
                for tid, frame in sys._current_frames().items():
                    if tid in (self.main_id, me):
                        continue  # the GUI thread is just waiting; who holds the GIL/CPU?
                    lines = traceback.format_stack(frame, limit=30)
                    self.stacks["".join(lines[-6:])] += 1

    def report(self) -> None:
        self._stop.set()
        for stack, n in self.stacks.most_common(6):
            print(f"--- {n} samples (x20 ms) while the GUI thread was late:\n{stack}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--matrix", type=int, default=256, help="image matrix of the study (256 = demo study)")
    parser.add_argument("--model", default="default", help=MODEL_HELP)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch threads (default: the app's own choice, all cores but one)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--where", action="store_true", help="print the worker threads' stacks during stalls")
    args = parser.parse_args()

    bench = bench_window(args.matrix, args.model, args.device)
    app, folder, wait = bench.app, bench.folder, bench.wait

    import torch

    from app.ui.main_window import MainWindow
    from app.ui.workers import StallMonitor

    worst_all = []
    for run in range(args.runs):
        w = MainWindow()
        w.show()
        steps: dict[str, float] = {}
        w.stepDone.connect(lambda s, steps=steps: steps.setdefault(s, time.perf_counter()))
        # The window imports its engine in the background right after it shows; a user
        # looks at the window for a few seconds before the first click, so wait for it.
        t_warm = time.perf_counter()
        warm_mon = StallMonitor(10)
        warm_mon.start()
        wait(lambda steps=steps: "warm" in steps)
        warm_mon.stop()
        if run == 0:
            print(
                f"warm-up (background imports after start): {time.perf_counter() - t_warm:.1f} s, "
                f"worst stall {warm_mon.worst_ms:.0f} ms, ticks > 100 ms late: {warm_mon.count_over(100)}"
            )
        if args.threads:  # override the app's choice, made by the warm-up
            torch.set_num_threads(args.threads)
        texts: list[tuple[float, str]] = []

        def on_job(job, texts=texts):  # type: ignore[no-untyped-def]
            texts.append((time.perf_counter(), f"[{job.name}] start"))
            job.progress.connect(lambda f, text, texts=texts, n=job.name: texts.append((time.perf_counter(), f"[{n}] {text}")))

        w.jobs.jobStarted.connect(on_job)
        mon = StallMonitor(10)
        watchdog = Watchdog(mon) if args.where else None
        mon.start()
        t_start = time.perf_counter()
        w.import_folder(folder)
        wait(lambda steps=steps: "imported" in steps)
        if w.case.needs_confirmation():
            w.confirm_assignment()
        t_predict = time.perf_counter()
        w.predict()
        # While the heatmaps are computed the user scrolls (one slice every 40 ms).
        from PySide6 import QtCore

        scroll = QtCore.QTimer()
        scroll.setInterval(40)
        scroll.timeout.connect(
            lambda w=w: w.viewer.set_pair_index((w.viewer.pair_index() + 1) % max(1, w.viewer.count()))
        )
        wait(lambda steps=steps: "predicted" in steps)
        scroll.start()
        wait(lambda steps=steps: "cam-study" in steps)
        scroll.stop()
        mon.stop()
        if watchdog is not None:
            watchdog.report()
        n_pairs = len(w.case.study.pairs) if w.case.study else 0
        w.close()
        app.processEvents()
        print(
            f"run {run + 1}: import {steps['imported'] - t_start:.2f} s, "
            f"predict {steps['predicted'] - t_predict:.2f} s ({n_pairs} slice levels), "
            f"CAM of viewed slice +{steps['cam-slice'] - steps['predicted']:.2f} s, "
            f"whole-study CAM +{steps['cam-study'] - steps['predicted']:.2f} s"
        )
        print(
            f"       heartbeat: {len(mon.gaps_ms)} ticks, worst stall {mon.worst_ms:.0f} ms, "
            f"p99 {mon.percentile_ms(99):.0f} ms, p50 {mon.percentile_ms(50):.1f} ms, "
            f"ticks > 100 ms late: {mon.count_over(100)}"
        )
        per_stage: dict[str, float] = {}
        for t_late, delay, share in mon.late:
            before = [txt for t, txt in texts if t <= t_late]
            where = before[-1] if before else "?"
            print(f"         late {delay:5.0f} ms (process CPU {share:4.0%}) during: {where}")
            per_stage[stage_of(where)] = max(per_stage.get(stage_of(where), 0.0), delay)
        print(
            "       worst stall per stage (<= 50 ms where not listed): "
            + ", ".join(f"{k} {v:.0f} ms" for k, v in sorted(per_stage.items()))
        )
        worst_all.append(mon.worst_ms)
    print(f"torch threads: {torch.get_num_threads()} of {os.cpu_count()} cores")
    print(f"WORST STALL over {args.runs} run(s): {max(worst_all):.0f} ms (target <= 100 ms)")
    report_full_collection()
    return 0


def report_full_collection() -> None:
    """How long a full cyclic-garbage collection holds the interpreter lock now, with the
    warm-up's frozen start-up heap and without it (``app.ui.jobs.freeze_startup_heap``)."""
    import gc

    def timed_collect() -> float:
        gc.collect()  # the first pass frees what is garbage; time the scan of what stays
        t = time.perf_counter()
        gc.collect()
        return (time.perf_counter() - t) * 1000.0

    frozen = gc.get_freeze_count()
    with_freeze = timed_collect()
    tracked = len(gc.get_objects())
    gc.unfreeze()
    without = timed_collect()
    print(
        f"full garbage collection: {with_freeze:.0f} ms with the start-up heap frozen "
        f"({frozen} objects frozen, {tracked} scanned), {without:.0f} ms without the freeze"
    )


if __name__ == "__main__":
    sys.exit(main())
