"""Scan speed: ``scan_folder`` vs bare ``pydicom.dcmread(f, stop_before_pixels=True)``.

Usage::

    .venv/bin/python bench/scan_speed.py [FOLDER] [--matrix PX] [--repeats N]

Without FOLDER a synthetic 3-phase study (plain/arterial/portal, 5 mm, plus the option-free
defaults of ``app.synthetic``) is generated into a temporary folder. Both timings run over the
same files, warm cache (one untimed pass first), best of ``--repeats`` runs. The bare read is the
floor any header scan must pay; the ratio is what the scan adds for grouping, geometry checks and
the pixel-data length check (target ≤ 1.3).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pydicom  # noqa: E402

from app.dicom.scan import scan_folder  # noqa: E402


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def bare_read(files: list[Path]) -> None:
    for f in files:
        try:
            pydicom.dcmread(f, stop_before_pixels=True)
        except Exception:  # non-DICOM files cost a failed read in both timings
            continue


def interleaved(fns: dict[str, object], repeats: int) -> dict[str, tuple[float, float]]:
    """Best wall and CPU time of each function, runs interleaved.

    The machine is shared, so runs alternate between the functions (drift hits both alike) and
    the minimum is kept; CPU time (``process_time``) is less disturbed by other processes.
    """
    best = {k: (float("inf"), float("inf")) for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()  # type: ignore[operator]
            w, c = time.perf_counter() - w0, time.process_time() - c0
            best[name] = (min(best[name][0], w), min(best[name][1], c))
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path)
    ap.add_argument("--matrix", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    tmp = None
    folder = args.folder
    if folder is None:
        from app.synthetic.cohort import generate_cohort
        from app.synthetic.options import StudyOptions

        tmp = tempfile.TemporaryDirectory(prefix="scan-bench-")
        folder = Path(tmp.name) / "study"
        t0 = time.perf_counter()
        generate_cohort(folder, 1, seed=3, options=StudyOptions(matrix=args.matrix))
        print(f"generated a 3-phase synthetic study ({args.matrix} px) in "
              f"{time.perf_counter() - t0:.1f} s")
    files = _files(folder)
    bare_read(files)
    scan_folder(folder)  # warm the cache for both
    best = interleaved({"bare": lambda: bare_read(files), "scan": lambda: scan_folder(folder)},
                       args.repeats)
    result = scan_folder(folder)
    n_dicom = result.counts["used"]
    print(f"folder: {folder} ({len(files)} files, {n_dicom} used, "
          f"{len(result.series)} series); cpu count {os.cpu_count()}; best of {args.repeats}")
    for name, label in (("bare", "bare dcmread(stop_before_pixels)"), ("scan", "scan_folder")):
        w, c = best[name]
        print(f"{label:<34} wall {w * 1000:8.1f} ms  cpu {c * 1000:8.1f} ms "
              f"({w / len(files) * 1e3:.2f} ms/file)")
    print(f"ratio scan / bare: wall {best['scan'][0] / best['bare'][0]:.2f}, "
          f"cpu {best['scan'][1] / best['bare'][1]:.2f} (target <= 1.3)")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
