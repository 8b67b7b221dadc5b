"""Seconds per synthetic study (3 phases × 50 slices at 5 mm) for 512² and 128² matrices.

Usage: .venv/bin/python bench/synthetic_speed.py [--repeats N] [--compress rle|jpeg2000] [--label-maps]
                                                [--matrix PX ...]

Prints, per matrix, the wall time of rendering + writing one study (best and median of N
patients), the CPU time of this process (less sensitive to other load on a shared machine), the
noise-free rendering share, and the size on disk. ``--label-maps`` also writes the ground-truth
label maps (``demo-data --label-maps``), to measure what they cost.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.synthetic.options import StudyOptions  # noqa: E402
from app.synthetic.render import Grid, render_clean_slice  # noqa: E402
from app.synthetic.study import build_patient, write_study  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compress", choices=("rle", "jpeg2000"), default=None)
    ap.add_argument("--label-maps", action="store_true", help="also write the label maps")
    ap.add_argument("--matrix", type=int, action="append", default=None, help="matrix sizes (default 512, 128)")
    args = ap.parse_args()
    for matrix in args.matrix or (512, 128):
        opts = StudyOptions(matrix=matrix, transfer_syntax=args.compress or "explicit", label_maps=args.label_maps)
        times, cpu_times, render_times, sizes = [], [], [], []
        for i in range(args.repeats):
            draw = build_patient(1, i, opts)
            tmp = Path(tempfile.mkdtemp(prefix="hcc-synth-bench-"))
            try:
                t0, c0 = time.perf_counter(), time.process_time()
                write_study(draw, opts, tmp / draw.patient_id)
                times.append(time.perf_counter() - t0)
                cpu_times.append(time.process_time() - c0)
                sizes.append(sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file()))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            # Rendering alone (no noise, no DICOM) for the same 150 slices.
            grid = Grid.square(draw.anatomy.fov_mm, matrix)
            t0 = time.perf_counter()
            for phase in ("plain", "arterial", "portal"):
                g = draw.geometry[phase]
                for k in range(opts.n_slices):
                    render_clean_slice(draw.anatomy, draw.lesions, draw.thrombus, phase, g, grid, g.z_start - 5.0 * k)
            render_times.append(time.perf_counter() - t0)
        print(
            f"matrix {matrix:4d}: 3 x {opts.n_slices} slices, {args.compress or 'uncompressed'}"
            f"{', with label maps' if args.label_maps else ''}: "
            f"best {min(times):.2f} s, median {statistics.median(times):.2f} s per study "
            f"(CPU median {statistics.median(cpu_times):.2f} s) "
            f"(clean rendering alone median {statistics.median(render_times):.2f} s); "
            f"{statistics.median(sizes) / 1e6:.1f} MB on disk"
        )


if __name__ == "__main__":
    main()
