"""Liver range accuracy: detected first/last liver slice vs ``truth.json`` of synthetic studies.

Usage::

    .venv/bin/python bench/liver_range_accuracy.py [--patients 30] [--seed 11] [--matrix 128]
                                                   [--cohort DIR]

Uses the same mixed cohort as ``bench/phase_accuracy.py`` (``--cohort`` shares it). For every
main axial series with a liver range in the truth (plain, arterial, portal and delayed where
present) the full volume is loaded and :func:`app.dicom.liver_range.find_liver_range` run; a phase
counts as correct when both ends are within one slice spacing of the truth. Prints the fraction,
the distribution of end errors in slices, and the time per volume.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from phase_accuracy import ensure_cohort  # noqa: E402

from app.dicom.liver_range import find_liver_range, find_liver_ranges  # noqa: E402
from app.dicom.scan import scan_folder  # noqa: E402
from app.dicom.volume import load_volume  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=30)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--matrix", type=int, default=128)
    ap.add_argument("--cohort", type=Path, default=None)
    ap.add_argument("--show-wrong", action="store_true")
    args = ap.parse_args(argv)
    tmp = None
    if args.cohort is None:
        tmp = tempfile.TemporaryDirectory(prefix="hcc-liver-bench-")
        root = Path(tmp.name)
    else:
        root = args.cohort
        root.mkdir(parents=True, exist_ok=True)
    folders = ensure_cohort(root, args.patients, args.seed, args.matrix)

    # mode → counters; "volume": each series alone (find_liver_range), "study": the phases of
    # a study made consistent (find_liver_ranges).
    stats: dict[str, dict[str, Any]] = {
        m: {
            "n": 0,
            "ok": 0,
            "phase": Counter(),
            "phase_ok": Counter(),
            "lo": Counter(),
            "hi": Counter(),
            "wrong": [],
        }
        for m in ("volume", "study")
    }
    seconds = 0.0
    slices = 0
    for k, folder in enumerate(folders):
        truth = json.loads((folder / "truth.json").read_text(encoding="utf-8"))
        scan = scan_folder(folder)
        by_uid = {
            s.series_instance_uid: s for p in scan.patients for st in p.studies for s in st.series
        }
        mains = dict(truth["phases"])
        if truth.get("delayed_series"):
            mains["delayed"] = truth["delayed_series"]
        mains = {
            p: u for p, u in mains.items() if u in by_uid and truth["series"][u]["liver_z_range_mm"]
        }
        vols = {p: load_volume(by_uid[u]) for p, u in mains.items()}
        t0 = time.monotonic()
        single = {p: find_liver_range(v) for p, v in vols.items()}
        seconds += time.monotonic() - t0
        slices += sum(v.n_slices for v in vols.values())
        joint = find_liver_ranges(vols)
        for mode, ranges in (("volume", single), ("study", joint)):
            st_ = stats[mode]
            for phase, uid in mains.items():
                t_range = truth["series"][uid]["liver_z_range_mm"]
                r = ranges[phase]
                sp = vols[phase].slice_spacing
                d_lo = round((r.z_min - t_range[0]) / sp)
                d_hi = round((r.z_max - t_range[1]) / sp)
                st_["lo"][d_lo] += 1
                st_["hi"][d_hi] += 1
                good = abs(d_lo) <= 1 and abs(d_hi) <= 1
                st_["n"] += 1
                st_["ok"] += int(good)
                st_["phase"][phase] += 1
                st_["phase_ok"][phase] += int(good)
                if not good:
                    st_["wrong"].append(
                        f"{folder.name} {phase}: found {r.z_min:.1f}..{r.z_max:.1f}, truth "
                        f"{t_range[0]:.1f}..{t_range[1]:.1f} ({d_lo:+d}/{d_hi:+d} slices)"
                    )
        print(f"\r{k + 1}/{len(folders)} studies", end="", file=sys.stderr)
    print(file=sys.stderr)
    print(f"cohort: {len(folders)} studies, matrix {args.matrix}, seed {args.seed} ({root})")
    for mode, title in (
        ("volume", "each series alone (find_liver_range)"),
        ("study", "phases of a study made consistent (find_liver_ranges)"),
    ):
        st_ = stats[mode]
        print(f"\n== {title} ==")
        print(
            f"liver range within one slice of truth: {st_['ok'] / max(st_['n'], 1) * 100:.1f} % "
            f"({st_['ok']}/{st_['n']} series)"
        )
        for phase in ("plain", "arterial", "portal", "delayed"):
            if st_["phase"][phase]:
                print(f"  {phase:<9} {st_['phase_ok'][phase]}/{st_['phase'][phase]}")
        print(
            "caudal end error (slices): "
            + ", ".join(f"{d:+d}: {c}" for d, c in sorted(st_["lo"].items()))
        )
        print(
            "cranial end error (slices): "
            + ", ".join(f"{d:+d}: {c}" for d, c in sorted(st_["hi"].items()))
        )
        if args.show_wrong:
            for w in st_["wrong"]:
                print("  " + w)
    print(
        f"\ntime (single volume): {seconds / max(slices, 1) * 1000:.2f} ms per slice "
        f"({seconds:.2f} s for {slices} slices)"
    )
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
