"""Scan speed: ``scan_folder`` vs bare ``pydicom.dcmread(f, stop_before_pixels=True)``.

Usage::

    .venv/bin/python bench/scan_speed.py [FOLDER] [--matrix PX [PX ...]] [--repeats N]

Without FOLDER a synthetic 3-phase study (plain/arterial/portal, 5 mm, plus the option-free
defaults of ``app.synthetic``) is generated into a temporary folder for each ``--matrix`` size
(``--matrix 128 512`` measures a small and a full-size study). Both timings run over the same
files, warm cache (one untimed pass first), interleaved (bare, scan, bare, scan ... so that drift
on the shared machine hits both alike); wall and CPU time are the best of ``--repeats`` runs, and
the median of the per-round ratios is printed beside them as a check on noise.

The bare read is the yardstick, not a floor: it builds every element of the header into pydicom
objects from many small file reads, while the scan reads each file's start in one call and
keeps only the attributes it uses (``app.dicom.tags``), so the scan may come out cheaper even
though it also walks the folder, checks each file's pixel data length against its size, groups
series and checks their geometry. Target: scan / bare <= 1.3. The share of files parsed through
the common-layout shortcut (the rest go through ``read_partial``) is printed, so that a figure
on unusual files can be read for what it is.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pydicom  # noqa: E402

from app.dicom import tags  # noqa: E402
from app.dicom.scan import scan_folder  # noqa: E402


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def bare_read(files: list[Path]) -> None:
    for f in files:
        try:
            pydicom.dcmread(f, stop_before_pixels=True)
        except Exception:  # non-DICOM files cost a failed read in both timings
            continue


def shortcut_share(files: list[Path]) -> int:
    """How many files the common-layout shortcut parses (the rest take ``read_partial``)."""
    n = 0
    for f in files:
        with open(f, "rb") as fp:
            head = fp.read(tags.HEAD_BYTES)
        try:
            n += tags._parse_common(io.BytesIO(head), head, tags._scan_tag_ints()) is not None
        except Exception:  # the scan hands such a file to read_partial
            continue
    return n


def interleaved(
    fns: dict[str, Callable[[], object]], repeats: int
) -> tuple[dict[str, tuple[float, float]], list[float]]:
    """Best wall and CPU time of each function, runs interleaved, and the per-round ratios.

    The machine is shared, so runs alternate between the functions (drift hits both alike) and
    the minimum is kept; CPU time (``process_time``) is less disturbed by other processes. The
    ratios are second / first function, CPU time, one per round.
    """
    best = {k: (float("inf"), float("inf")) for k in fns}
    ratios: list[float] = []
    for _ in range(repeats):
        cpu: list[float] = []
        for name, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            w, c = time.perf_counter() - w0, time.process_time() - c0
            best[name] = (min(best[name][0], w), min(best[name][1], c))
            cpu.append(c)
        ratios.append(cpu[1] / cpu[0])
    return best, ratios


def measure(folder: Path, repeats: int) -> None:
    """Time bare read and scan over ``folder`` and print the figures."""
    files = _files(folder)
    bare_read(files)
    scan_folder(folder)  # warm the cache for both
    best, ratios = interleaved(
        {"bare": lambda: bare_read(files), "scan": lambda: scan_folder(folder)}, repeats)
    result = scan_folder(folder)
    print(f"folder: {folder} ({len(files)} files, {result.counts['used']} used, "
          f"{len(result.series)} series; {shortcut_share(files)} through the common-layout "
          f"shortcut); cpu count {os.cpu_count()}; best of {repeats}")
    for name, label in (("bare", "bare dcmread(stop_before_pixels)"), ("scan", "scan_folder")):
        w, c = best[name]
        print(f"{label:<34} wall {w * 1000:8.1f} ms  cpu {c * 1000:8.1f} ms "
              f"({w / len(files) * 1e3:.2f} ms/file)")
    print(f"ratio scan / bare: wall {best['scan'][0] / best['bare'][0]:.2f}, "
          f"cpu {best['scan'][1] / best['bare'][1]:.2f} (target <= 1.3); "
          f"median of per-round cpu ratios {statistics.median(ratios):.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path)
    ap.add_argument("--matrix", type=int, nargs="+", default=[128],
                    help="synthetic study matrix size(s) when no FOLDER is given")
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    if args.folder is not None:
        measure(args.folder, args.repeats)
        return 0
    from app.synthetic.cohort import generate_cohort
    from app.synthetic.options import StudyOptions

    for matrix in args.matrix:
        with tempfile.TemporaryDirectory(prefix="scan-bench-") as tmp:
            folder = Path(tmp) / "study"
            t0 = time.perf_counter()
            generate_cohort(folder, 1, seed=3, options=StudyOptions(matrix=matrix))
            print(f"generated a 3-phase synthetic study ({matrix} px) in "
                  f"{time.perf_counter() - t0:.1f} s")
            measure(folder, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
