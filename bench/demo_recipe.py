"""Issue 15's figures for one run of the demo model's recipe: time end to end, held-out AUC
against the Bayes-optimal AUC, sensitivity and specificity, Grad-CAM mass — each against its
target.

    .venv/bin/python bench/demo_recipe.py run WORK [--device auto|cpu|cuda] \
        [--max-iterations N] [--minutes M] [--workers N]
    .venv/bin/python bench/demo_recipe.py report WORK [--elapsed-s S] [--json]

``run`` times ``scripts/make_demo_model.sh`` (the lesion recipe: cohorts with label maps,
training, patient head, the full ``evaluate`` on the unseen seed-202 cohort) from whatever WORK
holds — an empty folder for the from-scratch figure — writes its output to ``WORK/recipe.log``
(each line with the seconds since the start, so that the stages can be read off) and the time to
``WORK/recipe-time.json``, then reports. ``report`` reads ``WORK/eval/evaluation.json`` (what
``hcc-response evaluate`` wrote) and the time (``recipe-time.json``, or ``--elapsed-s`` for a
run timed otherwise, e.g. with ``time``).

Targets (issue 15): patient AUC ≥ 0.9 × the cohort's Bayes-optimal AUC; sensitivity and
specificity ≥ 0.6 at the model's threshold; ≥ 70 % of the Grad-CAM mass in the liver and, on
maps showing a lesion, a lesion share ≥ 3 × the lesion's share of the image — judged on the maps
as the app displays them (docs/learning.md, "Grad-CAM mass"; the per-map means are printed
beside them); ≤ 2 h end to end on 2 CPU cores, ≤ 9 min on one GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SCRIPT = ROOT / "scripts" / "make_demo_model.sh"
TIME_LIMIT_S = {"cpu": 2 * 3600.0, "cuda": 9 * 60.0}


@dataclass
class Figure:
    name: str
    value: float
    target: str
    met: bool | None  # None: no target (shown for context)
    detail: str = ""

    def line(self) -> str:
        mark = {True: "met", False: "MISSED", None: ""}[self.met]
        return f"{self.name:<40} {self.value:>9.3f}  {self.target:<24} {mark:<7} {self.detail}"


def _ci(low: float, high: float) -> str:
    return f"95 % CI {low:.3f}–{high:.3f}"


def figures(evaluation: dict[str, Any], elapsed_s: float | None, device: str | None) -> list[Figure]:
    """The issue's figures from an ``evaluation.json`` (and the run's time)."""
    pl = evaluation["patient_level"]
    auc = pl["auc_delong"]
    boot = pl["bootstrap"]
    out = [Figure("patient AUC", auc["auc"], "", None, _ci(auc["ci_low"], auc["ci_high"]))]
    bayes = evaluation.get("bayes_optimal") or {}
    if bayes.get("auc"):
        out.append(Figure("Bayes-optimal AUC of the cohort", bayes["auc"], "", None))
        out.append(Figure("AUC / Bayes-optimal", auc["auc"] / bayes["auc"], ">= 0.9",
                          auc["auc"] / bayes["auc"] >= 0.9))
    for key in ("sensitivity", "specificity"):
        b = boot[key]
        out.append(Figure(f"{key} at threshold {pl.get('threshold', 0.5):g}", b["value"], ">= 0.6",
                          b["value"] >= 0.6, _ci(b["ci_low"], b["ci_high"])))
    cam = evaluation.get("gradcam_mass")
    if cam:
        out.append(Figure("Grad-CAM liver share, as displayed", cam["displayed_liver_share"], ">= 0.70",
                          cam["displayed_liver_share"] >= 0.70))
        out.append(Figure("  (per-map mean over all maps)", cam["liver_share"], "", None))
        out.append(Figure("Grad-CAM lesion ratio, as displayed", cam["displayed_ratio"], ">= 3",
                          cam["displayed_ratio"] >= 3.0,
                          f"lesion share {cam['displayed_lesion_share']:.3f} / area {cam['lesion_area_share']:.4f}"))
        out.append(Figure("  (per-map mean)", cam["ratio"], "", None))
    if elapsed_s is not None:
        limit = TIME_LIMIT_S.get(device or "cpu", TIME_LIMIT_S["cpu"])
        out.append(Figure(f"end to end, minutes ({device or 'cpu'})", elapsed_s / 60.0,
                          f"<= {limit / 60:.0f}", elapsed_s <= limit))
    return out


def report(work: Path, elapsed_s: float | None, as_json: bool, device: str | None = None) -> int:
    evaluation_file = work / "eval" / "evaluation.json"
    if not evaluation_file.is_file():
        print(f"no {evaluation_file}: the recipe did not reach its evaluation", file=sys.stderr)
        return 2
    evaluation = json.loads(evaluation_file.read_text(encoding="utf-8"))
    timing_file = work / "recipe-time.json"
    if elapsed_s is None and timing_file.is_file():
        timing = json.loads(timing_file.read_text(encoding="utf-8"))
        elapsed_s, device = timing["elapsed_s"], timing.get("device")
    rows = figures(evaluation, elapsed_s, device)
    if as_json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        print(f"recipe run in {work}: cohort {evaluation['cohort']['csv']} ({evaluation['cohort']['patients']} patients)")
        for r in rows:
            print(r.line())
    return 0


def _device(requested: str) -> str:
    """The device kind the recipe will run on: the app's own choice (a working GPU, else the CPU)."""
    from app.inference.device import select_device  # torch: only when running the recipe

    return select_device(requested).device.type


def run(args: argparse.Namespace) -> int:
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    device = _device(args.device)
    env = dict(os.environ, RECIPE="lesion", DEVICE=device, WORK=str(work),
               OUT=str(work / "model.safetensors"), EVAL_DIR=str(work / "eval"),
               WORKERS=str(args.workers))
    if args.max_iterations:
        env["MAX_ITERATIONS"] = str(args.max_iterations)
    if args.minutes:
        env["MINUTES"] = str(args.minutes)
    start = time.perf_counter()
    with (work / "recipe.log").open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(["bash", str(SCRIPT)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(f"[{time.perf_counter() - start:8.1f} s] {line}")
            log.flush()
        rc = proc.wait()
    elapsed = time.perf_counter() - start
    (work / "recipe-time.json").write_text(json.dumps({
        "elapsed_s": elapsed, "device": device, "returncode": rc, "cpus": os.cpu_count(),
        "machine": platform.machine(), "max_iterations": args.max_iterations, "minutes": args.minutes,
    }, indent=2), encoding="utf-8")
    print(f"make_demo_model.sh: exit {rc} after {elapsed / 60:.1f} min (log: {work / 'recipe.log'})")
    if rc != 0:
        return rc
    return report(work, None, args.json)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("run", help="time the recipe end to end, then report")
    r.add_argument("work", type=Path, metavar="WORK")
    r.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    r.add_argument("--max-iterations", type=int, default=None, metavar="N",
                   help="the recipe's own budget when not given (1,520 on the CPU)")
    r.add_argument("--minutes", type=float, default=None, metavar="M")
    r.add_argument("--workers", type=int, default=0, metavar="N", help="0: one per core")
    r.add_argument("--json", action="store_true")
    p = sub.add_parser("report", help="the figures of a finished run")
    p.add_argument("work", type=Path, metavar="WORK")
    p.add_argument("--elapsed-s", type=float, default=None, metavar="S",
                   help="the run's time when it was not run by this script")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="where a run timed otherwise ran (its time limit; default cpu)")
    p.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.mode == "run":
        return run(args)
    return report(args.work, args.elapsed_s, args.json, args.device)


if __name__ == "__main__":
    raise SystemExit(main())
