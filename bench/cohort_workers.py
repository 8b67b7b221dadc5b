"""Cohort generation and preparation: one process vs one per core (``--workers``).

Usage: .venv/bin/python bench/cohort_workers.py [--patients N] [--matrix PX] [--workers W]
                                                 [--input-size PX]

Generates ``N`` synthetic patients with ``demo-data``'s code path (``generate_cohort``) once
with one worker and once with ``W``, then prepares them for training (``prepare_cohort``: scan,
phases, liver range, pairing, preprocessing — the app's path) likewise, without a cache. Prints
seconds per patient and the speed-up of each step. The results are checked to be equal (same
files, same arrays), so the speed-up is not bought with different work.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.parallel import resolve_workers  # noqa: E402
from app.synthetic.cohort import generate_cohort  # noqa: E402
from app.synthetic.options import StudyOptions  # noqa: E402
from app.training.cohort import CohortEntry, prepare_cohort  # noqa: E402
from app.training.prepared import PrepareSettings  # noqa: E402


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=24)
    ap.add_argument("--matrix", type=int, default=96)
    ap.add_argument("--workers", type=int, default=0, help="0: one per core (at most 8)")
    ap.add_argument("--input-size", type=int, default=96)
    args = ap.parse_args()
    workers = resolve_workers(args.workers)
    opts = StudyOptions(matrix=args.matrix)
    settings = PrepareSettings(input_size=args.input_size, crop="body")
    root = Path(tempfile.mkdtemp(prefix="hcc-workers-bench-"))
    try:
        gen: dict[int, float] = {}
        prep: dict[int, float] = {}
        arrays: dict[int, list[np.ndarray]] = {}
        for w in (1, workers):
            out = root / f"w{w}"
            t0 = time.perf_counter()
            res = generate_cohort(out, args.patients, 7, opts, workers=w)
            gen[w] = time.perf_counter() - t0
            entries = [CohortEntry(p.patient_id, out / p.study_dir, p.responder)
                       for p in res.patients]
            t0 = time.perf_counter()
            prepared = prepare_cohort(entries, settings, workers=w)
            prep[w] = time.perf_counter() - t0
            arrays[w] = [s.slices for s in prepared.studies]
        same_files = _digest(root / "w1") == _digest(root / f"w{workers}")
        same_arrays = all(np.array_equal(a, b) for a, b in
                          zip(arrays[1], arrays[workers], strict=True))
        n = args.patients
        print(f"{n} patients, matrix {args.matrix}, input {args.input_size} px; "
              f"1 vs {workers} workers")
        for name, t in (("generate", gen), ("prepare", prep)):
            print(f"  {name:9s} {t[1] / n:6.3f} s/patient -> {t[workers] / n:6.3f} s/patient  "
                  f"speed-up {t[1] / t[workers]:.2f}x")
        print(f"  identical files: {same_files}; identical prepared arrays: {same_arrays}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
