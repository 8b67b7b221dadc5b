"""Prevalence and Bayes-optimal AUC of the synthetic outcome model.

Usage: .venv/bin/python bench/demo_data_stats.py [--seed S] [--patients 200] [--matrix 64]

1. Samples 1,000 patients' latent features and outcomes (no rendering) and prints the
   prevalence of response and the AUC of the true probability against the drawn labels.
2. Runs ``hcc-response demo-data`` for ``--patients`` patients at a small matrix into a
   temporary folder, reads its labels.csv and prints the same two figures.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.synthetic.cohort import bayes_auc, read_labels, sample_patients  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--matrix", type=int, default=64)
    args = ap.parse_args()

    t0 = time.perf_counter()
    sampled = sample_patients(1000, args.seed)
    dt = time.perf_counter() - t0
    prev = np.mean([p.responder for p in sampled])
    print(f"sampled 1000 patients (seed {args.seed}) in {dt:.2f} s: prevalence {prev:.3f}, "
          f"Bayes-optimal AUC {bayes_auc(sampled):.3f}")

    out = Path(tempfile.mkdtemp(prefix="hcc-demo-stats-")) / "cohort"
    try:
        cmd = [sys.executable, "-m", "app", "demo-data", str(out), "--patients", str(args.patients),
               "--seed", str(args.seed), "--matrix", str(args.matrix)]
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        dt = time.perf_counter() - t0
        rows = read_labels(out / "labels.csv")
        prev = np.mean([r.responder for r in rows])
        recist = {k: sum(r.recist == k for r in rows) for k in ("CR", "PR", "SD", "PD")}
        print(f"demo-data {args.patients} patients at {args.matrix} px (seed {args.seed}) in {dt:.1f} s: "
              f"prevalence {prev:.3f}, Bayes-optimal AUC {bayes_auc(rows):.3f}, RECIST {recist}")
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
