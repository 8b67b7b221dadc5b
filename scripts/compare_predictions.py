"""Record ``hcc-response predict --json`` on a set of studies, and compare two such records.

Why: a refactoring of the case flow must not change what a case gives. This runs the real CLI
(a subprocess per study, with the interpreter given, so that another checkout's virtual
environment can record its own baseline) on every study folder below ``COHORT`` and keeps the
JSON without the run-time figures (``elapsed_s``, ``prediction.timings``), which differ from run
to run; ``compare`` then says which studies differ and where.

Usage::

    .venv/bin/hcc-response demo-data /tmp/demo10 --patients 10 --seed 7 --matrix 256
    /work/main/.venv/bin/python scripts/compare_predictions.py record /tmp/demo10 main.json
    .venv/bin/python scripts/compare_predictions.py record /tmp/demo10 branch.json
    .venv/bin/python scripts/compare_predictions.py compare main.json branch.json

``record`` runs ``python -m app predict FOLDER --json --device cpu --register DB --cam-dir DIR``
from the current directory (run it from the checkout to record); the register and the Grad-CAM
files go to a temporary folder, and their paths are replaced by their file names.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

#: Keys whose values are wall-clock figures, dropped before comparing.
TIMING_KEYS = ("elapsed_s", "timings")


def study_folders(cohort: Path) -> list[Path]:
    """The study folders of a ``demo-data`` cohort (its sub-folders), in name order."""
    return sorted(p for p in cohort.iterdir() if p.is_dir())


def without_timings(doc: Any) -> Any:
    """``doc`` with every timing key removed, at any depth."""
    if isinstance(doc, dict):
        return {k: without_timings(v) for k, v in doc.items() if k not in TIMING_KEYS}
    if isinstance(doc, list):
        return [without_timings(v) for v in doc]
    return doc


def predict_json(folder: Path, work: Path) -> dict[str, Any]:
    """One ``predict --json`` run, register and Grad-CAM files written under ``work``."""
    cmd = [sys.executable, "-m", "app", "predict", str(folder), "--json", "--quiet",
           "--device", "cpu", "--register", str(work / "register.sqlite"),
           "--cam-dir", str(work / folder.name)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"exit_code": out.returncode, "stderr_tail": out.stderr.strip().splitlines()[-1:]}
    doc = json.loads(out.stdout)
    doc["cam_files"] = [Path(p).name for p in doc.get("cam_files", [])]
    return without_timings(doc)


def record(cohort: Path, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="compare-predictions-") as tmp:
        docs = {f.name: predict_json(f, Path(tmp)) for f in study_folders(cohort)}
    out.write_text(json.dumps(docs, indent=1, sort_keys=True), encoding="utf-8")
    print(f"recorded {len(docs)} studies in {out}")


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Paths at which two JSON documents differ (exact equality, floats included)."""
    if isinstance(a, dict) and isinstance(b, dict):
        found: list[str] = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                found.append(f"{where}/{k}: only in {'second' if k not in a else 'first'}")
            else:
                found += differences(a[k], b[k], f"{where}/{k}")
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"[:300]]


def compare(first: Path, second: Path) -> int:
    a = json.loads(first.read_text(encoding="utf-8"))
    b = json.loads(second.read_text(encoding="utf-8"))
    found = differences(a, b)
    for line in found:
        print(line)
    print(f"{len(a)} vs {len(b)} studies: " + ("identical except timings" if not found
                                              else f"{len(found)} differences"))
    return 1 if found else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("cohort", type=Path)
    rec.add_argument("out", type=Path)
    cmp_ = sub.add_parser("compare")
    cmp_.add_argument("first", type=Path)
    cmp_.add_argument("second", type=Path)
    args = parser.parse_args()
    if args.command == "record":
        record(args.cohort, args.out)
        return 0
    return compare(args.first, args.second)


if __name__ == "__main__":
    sys.exit(main())
