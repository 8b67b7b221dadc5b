"""Seed folders: small synthetic studies (``app.synthetic``, as ``demo-data`` writes them) in
each transfer syntax the installation can encode, plus the real public files of
``../shared/data`` where present.

Synthetic seeds are whole three-phase studies, so that mutated copies go through the whole
predict flow; they are small (64 x 64, 5 mm slices over 120 mm) so that a campaign spends its
time on many cases, not on big ones. The same seed number gives the same files.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from bench.fuzzlib.mutations import SeedInfo

#: The real public DICOM of the project (tests read it from ../shared/data too).
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
_NOT_DICOM = {"LICENSE", "README.md", "DIRFILE"}


def _series_of(folder: Path) -> dict[str, list[str]]:
    """Files grouped by their parent folder (relative paths), in a stable order."""
    groups: dict[str, list[str]] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name not in _NOT_DICOM and not p.name.endswith((".json", ".csv")):
            rel = p.relative_to(folder)
            groups.setdefault(str(rel.parent), []).append(str(rel))
    return groups


Syntax = Literal["explicit", "rle", "jpeg2000"]


def synthetic_seeds(work: Path, seed: int,
                    syntaxes: tuple[Syntax, ...] = ("explicit", "rle", "jpeg2000")
                    ) -> list[SeedInfo]:
    """One synthetic patient per transfer syntax (skipping a syntax that cannot be encoded)."""
    from app.synthetic.cohort import generate_cohort
    from app.synthetic.options import StudyOptions

    out: list[SeedInfo] = []
    for k, ts in enumerate(syntaxes):
        cohort = work / f"cohort-{ts}"
        if cohort.exists():
            shutil.rmtree(cohort)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = generate_cohort(cohort, 1, seed=seed + k,
                                         options=StudyOptions(matrix=64, z_coverage_mm=120.0,
                                                              transfer_syntax=ts))
        except Exception as exc:  # noqa: BLE001 - an encoder may be missing: fewer seeds
            print(f"fuzz: no {ts} seed ({type(exc).__name__}: {exc})")
            continue
        study = next(p for p in sorted(result.out_dir.iterdir()) if p.is_dir())
        dest = work / f"syn-{ts}"
        if dest.exists():
            shutil.rmtree(dest)
        shutil.move(str(study), dest)
        shutil.rmtree(cohort)
        truth = json.loads((dest / "truth.json").read_text())
        (dest / "truth.json").unlink()
        axial = [s for s in truth["series"].values() if s.get("files")]
        phases = {s["phase"]: s["files"] for s in axial}
        focus = {s["phase"]: s["files"][int(np.argmax(s["liver_area_mm2"]))]
                 for s in axial if len(s.get("liver_area_mm2") or []) == len(s["files"])}
        out.append(SeedInfo(f"syn-{ts}", dest, _series_of(dest), predictable=True,
                            phases=phases, focus=focus))
    return out


def real_seeds(shared: Path = SHARED_DATA) -> list[SeedInfo]:
    """Every folder of ``shared`` that holds DICOM files directly, as one seed (read only)."""
    if not shared.is_dir():
        return []
    out = []
    for folder in sorted({p.parent for p in shared.rglob("*") if p.is_file()
                          and p.name not in _NOT_DICOM and p.suffix not in (".md", ".txt")}):
        series = _series_of(folder)
        if series:
            name = "real-" + "-".join(folder.relative_to(shared).parts)
            out.append(SeedInfo(name, folder, series))
    return out
