"""Phase classification accuracy on a generated cohort, with tags and with tags blanked.

Usage::

    .venv/bin/python bench/phase_accuracy.py [--patients 100] [--seed 11] [--matrix 128]
                                             [--cohort DIR] [--speed-studies 10]

Generates (or reuses, with ``--cohort``) a synthetic cohort with mixed conventions: a quarter
random vendors, a quarter with a delayed phase, a fifth Chinese wording with a delayed phase, and
the rest with thin recons, delayed phase, localizer and coronal reformat. Every study is scanned
(:func:`app.dicom.scan.scan_folder`), the slices chosen by
:func:`app.dicom.phase.sample_indices` are loaded, and :func:`app.dicom.phase.classify_study`
runs twice: with the tags as written, and with description, protocol and contrast tags blanked
(image + acquisition times only). Prints confusion matrices (rows truth, columns call),
per-series accuracy, triplet accuracy (one series per phase, as the assembler picks them) and
how many wrong calls were flagged for confirmation. Then times classification against loading
the three full volumes on a few studies.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.dicom.phase import classify_study, needs_confirmation, sample_indices  # noqa: E402
from app.dicom.scan import scan_folder  # noqa: E402
from app.dicom.types import PhaseCall, SeriesInfo, Volume  # noqa: E402
from app.dicom.volume import load_volume  # noqa: E402

CLASSES = ("plain", "arterial", "portal", "other")


def sub_cohorts(n: int) -> list[tuple[str, int, int, dict[str, Any]]]:
    """(name, n_patients, seed offset, StudyOptions overrides) making up a mixed cohort."""
    a = round(0.25 * n)
    b = round(0.25 * n)
    c = round(0.2 * n)
    d = n - a - b - c
    return [
        ("random", a, 0, {}),
        ("delayed", b, 1, {"delayed_phase": True}),
        ("chinese", c, 2, {"delayed_phase": True, "convention": "chinese"}),
        (
            "thin",
            d,
            3,
            {"delayed_phase": True, "thin_recon": True, "localizer": True, "coronal": True},
        ),
    ]


def ensure_cohort(root: Path, n: int, seed: int, matrix: int) -> list[Path]:
    """Generate the sub-cohorts under ``root`` unless present; return the patient folders."""
    from app.synthetic.cohort import generate_cohort
    from app.synthetic.options import StudyOptions

    folders: list[Path] = []
    for name, count, offset, extra in sub_cohorts(n):
        if count <= 0:
            continue
        sub = root / name
        marker = sub / "labels.csv"
        if not marker.exists():
            t0 = time.monotonic()
            generate_cohort(sub, count, seed * 10 + offset, StudyOptions(matrix=matrix, **extra))
            print(
                f"generated {count} '{name}' studies in {time.monotonic() - t0:.0f} s",
                file=sys.stderr,
            )
        folders += sorted(p for p in sub.iterdir() if (p / "truth.json").exists())
    return folders


def blank_tags(s: SeriesInfo) -> SeriesInfo:
    """The series as if description and contrast tags had been removed (times are kept)."""
    return dataclasses.replace(
        s,
        description="",
        contrast_agent=None,
        contrast_route=None,
        contrast_volume_ml=None,
        contrast_start_time=None,
        study_description="",
        phase_call=None,
    )


def pick_triplet(series: list[SeriesInfo], calls: dict[str, PhaseCall]) -> dict[str, str]:
    """phase → series_instance_uid, one per phase, preferring ~5 mm recons (as the assembler)."""
    out: dict[str, str] = {}
    for phase in ("plain", "arterial", "portal"):
        cands = [s for s in series if calls[s.uid].phase == phase]
        if cands:
            best = min(
                cands,
                key=lambda s: (abs((s.slice_thickness or 5.0) - 5.0), -calls[s.uid].confidence),
            )
            out[phase] = best.series_instance_uid
    return out


def confusion_table(pairs: list[tuple[str, str]]) -> str:
    lines = ["truth \\ call " + "".join(f"{c:>10}" for c in CLASSES)]
    for t in CLASSES:
        row = [sum(1 for a, b in pairs if a == t and b == c) for c in CLASSES]
        lines.append(f"{t:<13}" + "".join(f"{v:>10}" for v in row))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--matrix", type=int, default=128)
    ap.add_argument("--cohort", type=Path, default=None, help="cohort folder to reuse/create")
    ap.add_argument("--speed-studies", type=int, default=10)
    ap.add_argument("--show-wrong", action="store_true", help="print the evidence of wrong calls")
    args = ap.parse_args(argv)

    tmp = None
    if args.cohort is None:
        tmp = tempfile.TemporaryDirectory(prefix="hcc-phase-bench-")
        root = Path(tmp.name)
    else:
        root = args.cohort
        root.mkdir(parents=True, exist_ok=True)
    folders = ensure_cohort(root, args.patients, args.seed, args.matrix)

    results: dict[str, dict[str, Any]] = {
        mode: {
            "pairs": [],
            "wrong": 0,
            "wrong_flagged": 0,
            "right_flagged": 0,
            "n": 0,
            "triplet_ok": 0,
            "triplet_wrong_flagged": 0,
            "studies": 0,
            "wrong_list": [],
        }
        for mode in ("tags", "blank")
    }
    speed: list[tuple[float, float, float]] = []
    for k, folder in enumerate(folders):
        truth = json.loads((folder / "truth.json").read_text(encoding="utf-8"))
        scan = scan_folder(folder)
        studies = [st for p in scan.patients for st in p.studies]
        for study in studies:
            series = study.series
            t0 = time.monotonic()
            vols: dict[str, Volume] = {}
            for s in series:
                if (
                    s.orientation == "axial"
                    and s.status != "refused"
                    and s.modality == "CT"
                    and len(s.instances) >= 3
                ):
                    vols[s.uid] = load_volume(s, indices=sample_indices(s))
            t_load = time.monotonic() - t0
            t1 = time.monotonic()
            calls_by_mode = {"tags": classify_study(series, vols)}
            t_cls = time.monotonic() - t1
            calls_by_mode["blank"] = classify_study([blank_tags(s) for s in series], vols)
            if k < args.speed_studies:
                t2 = time.monotonic()
                for uid in truth["phases"].values():
                    main = next(s for s in series if s.series_instance_uid == uid)
                    load_volume(main)
                speed.append((t_load, t_cls, time.monotonic() - t2))
            for mode, calls in calls_by_mode.items():
                r = results[mode]
                for s in series:
                    t = truth["series"].get(s.series_instance_uid)
                    if t is None or t.get("kind") != "axial":
                        continue
                    call = calls[s.uid]
                    r["pairs"].append((t["phase"], call.phase))
                    r["n"] += 1
                    flagged = needs_confirmation(call)
                    if call.phase != t["phase"]:
                        r["wrong"] += 1
                        r["wrong_flagged"] += int(flagged)
                        r["wrong_list"].append(
                            (folder.name, s.description or t["description"], t["phase"], call)
                        )
                    else:
                        r["right_flagged"] += int(flagged)
                trip = pick_triplet(series, calls)
                r["studies"] += 1
                ok = all(trip.get(p) == truth["phases"][p] for p in ("plain", "arterial", "portal"))
                if ok:
                    r["triplet_ok"] += 1
                else:
                    chosen = [s for s in series if s.series_instance_uid in trip.values()]
                    flagged = any(needs_confirmation(calls[s.uid]) for s in chosen) or len(trip) < 3
                    r["triplet_wrong_flagged"] += int(flagged)
        print(f"\r{k + 1}/{len(folders)} studies", end="", file=sys.stderr)
    print(file=sys.stderr)

    print(f"cohort: {len(folders)} studies, matrix {args.matrix}, seed {args.seed} ({root})")
    for mode, title in (
        ("tags", "with tags"),
        ("blank", "descriptions and contrast tags blanked (image + times)"),
    ):
        r = results[mode]
        n = max(r["n"], 1)
        print(f"\n== {title} ==")
        print(confusion_table(r["pairs"]))
        acc = 1 - r["wrong"] / n
        print(
            f"per-series accuracy: {acc * 100:.2f} % ({r['n'] - r['wrong']}/{r['n']} axial series)"
        )
        print(
            f"triplet correct: {r['triplet_ok'] / max(r['studies'], 1) * 100:.2f} % ({r['triplet_ok']}/{r['studies']} studies);"
            f" wrong triplets flagged: {r['triplet_wrong_flagged']}/{r['studies'] - r['triplet_ok']}"
        )
        print(
            f"wrong calls flagged for confirmation: {r['wrong_flagged']}/{r['wrong']};"
            f" correct calls flagged (false alarms): {r['right_flagged']}/{r['n'] - r['wrong']}"
        )
        if args.show_wrong:
            for name, desc, truth_phase, call in r["wrong_list"]:
                print(
                    f"  {name} '{desc}' truth {truth_phase} → {call.phase} ({call.confidence:.2f}) {call.evidence}"
                )
    if speed:
        load_s = sum(s[0] for s in speed)
        cls_s = sum(s[1] for s in speed)
        full_s = sum(s[2] for s in speed)
        print(
            f"\nspeed over {len(speed)} studies: loading sampled slices {load_s:.2f} s + classification {cls_s:.2f} s"
            f" = {(load_s + cls_s) / full_s * 100:.1f} % of loading the three full volumes ({full_s:.2f} s)"
        )
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
