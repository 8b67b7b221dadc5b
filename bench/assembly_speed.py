"""Assembly cost: loading a 3-phase study's volumes vs adding phase classification and liver range.

Usage::

    .venv/bin/python bench/assembly_speed.py [FOLDER] [--matrix PX] [--repeats N]

Without FOLDER a synthetic 3-phase study (5 mm, ``--matrix`` px) is generated into a temporary
folder. Timings (best of ``--repeats``, warm cache, runs interleaved; CPU time also shown because
the machine may be shared; on a shared machine the median of the per-round ratios is the steadier
figure, the best-of ratio can swing by ±0.1 between runs):

- *load*: :func:`load_volume` of the three series chosen for the model;
- *classify+load*: what :func:`app.dicom.assembly.assemble_study` does before the liver range
  (``_classify_and_load``): classification (sampled slices of every candidate series +
  :func:`app.dicom.phase.classify_study`), choice of the series and the three volumes, no file
  decoded twice (with no more candidates than phases the volumes are loaded first and the
  samples copied from them, otherwise the loads reuse the sampled slices);
- *liver*: :func:`app.dicom.liver_range.find_liver_range` on the three loaded volumes.

Prints (classify + load) / load (target <= 1.2), best-of and median of the rounds, and the same
with the liver range. ``--no-liver`` leaves the liver range out (shorter rounds, less drift
between the two timings that make a ratio).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import PHASES  # noqa: E402
from app.dicom.assembly import _classify_and_load, choose_series, classify  # noqa: E402
from app.dicom.scan import scan_folder  # noqa: E402
from app.dicom.volume import load_volume  # noqa: E402
from app.progress import NULL_PROGRESS  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path)
    ap.add_argument("--matrix", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", type=int, default=None, help="decoding threads")
    ap.add_argument("--no-liver", action="store_true", help="do not time the liver range")
    args = ap.parse_args()
    tmp = None
    folder = args.folder
    if folder is None:
        from app.synthetic.cohort import generate_cohort
        from app.synthetic.options import StudyOptions

        tmp = tempfile.TemporaryDirectory(prefix="assembly-bench-")
        folder = Path(tmp.name) / "study"
        t0 = time.perf_counter()
        generate_cohort(folder, 1, seed=3, options=StudyOptions(matrix=args.matrix))
        print(f"generated a 3-phase synthetic study ({args.matrix} px) in "
              f"{time.perf_counter() - t0:.1f} s")
    from app.dicom.liver_range import find_liver_range

    result = scan_folder(folder)
    study = next(st for st in result.studies if st.usable_series())
    calls = classify(study)
    chosen, _, _ = choose_series(study, calls)
    series = list(chosen.values())
    volumes = {}

    def load() -> None:
        for s in series:
            volumes[s.uid] = load_volume(s, workers=args.workers)

    def classify_and_load() -> None:
        # What assemble_study does before the liver range: classify from sampled slices,
        # choose and check the series, load their volumes (no file decoded twice).
        _classify_and_load(study, None, PHASES, NULL_PROGRESS, workers=args.workers)

    def liver() -> None:
        for v in volumes.values():
            find_liver_range(v)

    load()
    fns = {"load": load, "classify+load": classify_and_load, "liver": liver}
    if args.no_liver:
        del fns["liver"]
    best = {k: (float("inf"), float("inf")) for k in fns}
    rounds: list[float] = []  # per-round wall ratio (classify + load) / load
    for _ in range(args.repeats):
        wall: dict[str, float] = {}
        for name, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            w, c = time.perf_counter() - w0, time.process_time() - c0
            wall[name] = w
            best[name] = (min(best[name][0], w), min(best[name][1], c))
        rounds.append(wall["classify+load"] / wall["load"])
    shape = next(iter(volumes.values())).shape
    print(f"study: {len(study.series)} series, chosen {[s.series_number for s in series]}, "
          f"volumes {shape}; best of {args.repeats}")
    for name, (w, c) in best.items():
        print(f"{name:<9} wall {w * 1000:8.1f} ms  cpu {c * 1000:8.1f} ms")
    lw, lc = best["load"]
    cw, cc = best["classify+load"]
    print(f"ratio (classify + load) / load: wall {cw / lw:.2f}, cpu {cc / lc:.2f}, "
          f"median of rounds {statistics.median(rounds):.2f} (target <= 1.2)")
    if "liver" in best:
        vw, vc = best["liver"]
        print(f"ratio (classify + load + liver range) / load: wall {(cw + vw) / lw:.2f}, "
              f"cpu {(cc + vc) / lc:.2f}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
