"""The demo study written on the application's first start.

One patient with a clear, responder-like tumour (hypervascular 5 cm lesion with washout and a
capsule, no thrombus) at 256 × 256, so a new user sees the whole flow without any data of their
own. Written once; later calls return the existing study.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from app.progress import NULL_PROGRESS, Progress
from app.synthetic.options import StudyOptions
from app.synthetic.outcome import LatentFeatures
from app.synthetic.study import GENERATOR_VERSION, build_patient, write_study

DEMO_SEED = 20240401
DEMO_OPTIONS = StudyOptions(matrix=256, convention="siemens")
DEMO_FEATURES = LatentFeatures(
    largest_diameter_mm=50.0,
    n_lesions=1,
    necrosis_fraction=0.05,
    arterial_enhancement_hu=85.0,
    washout_hu=35.0,
    heterogeneity=0.25,
    capsule=True,
    tace_oil=False,
    pvtt=False,
)


def ensure_demo_study(dest_dir: Path, progress: Progress = NULL_PROGRESS) -> Path:
    """Write the demo study under ``dest_dir`` unless it is already there; return its folder.

    Idempotent: a complete earlier demo study (its ``truth.json`` written by this generator
    version, which is written last) is reused; an incomplete one is replaced.
    """
    dest_dir = Path(dest_dir)
    draw = build_patient(DEMO_SEED, 0, DEMO_OPTIONS, features=DEMO_FEATURES)
    study_dir = dest_dir / draw.patient_id
    truth = study_dir / "truth.json"
    if _complete(truth):
        progress.update(1.0, "demo study present")
        return study_dir
    if study_dir.exists():
        shutil.rmtree(study_dir)
    write_study(draw, DEMO_OPTIONS, study_dir, progress)
    return study_dir


def _complete(truth: Path) -> bool:
    """True when ``truth`` exists and was written by this generator version (written last)."""
    if not truth.is_file():
        return False
    try:
        return bool(json.loads(truth.read_text(encoding="utf-8")).get("generator") == GENERATOR_VERSION)
    except (OSError, ValueError):
        return False  # unreadable or half-written: the study is written again
