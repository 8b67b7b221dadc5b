"""Phase classification and liver range on a generated study (scan → sampled load → classify)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.dicom.liver_range import find_liver_range
from app.dicom.phase import classify_study, needs_confirmation, sample_indices

pytest.importorskip("app.synthetic.cohort")
pytest.importorskip("app.dicom.scan")


@pytest.fixture(scope="module")
def blank_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated patient with a delayed phase and descriptions + contrast tags blanked."""
    from app.synthetic.cohort import generate_cohort
    from app.synthetic.options import StudyOptions

    out = tmp_path_factory.mktemp("phase-synth")
    opts = StudyOptions(
        matrix=96,
        z_coverage_mm=200.0,
        delayed_phase=True,
        blank_descriptions=True,
        blank_contrast_tags=True,
    )
    generate_cohort(out, 1, 3, opts)
    return next(p for p in out.iterdir() if (p / "truth.json").exists())


def test_image_only_classification_of_generated_study(blank_study: Path) -> None:
    from app.dicom.scan import scan_folder
    from app.dicom.volume import load_volume

    truth = json.loads((blank_study / "truth.json").read_text(encoding="utf-8"))
    series = [s for p in scan_folder(blank_study).patients for st in p.studies for s in st.series]
    assert all(not s.description for s in series if s.orientation == "axial")
    vols = {
        s.uid: load_volume(s, indices=sample_indices(s))
        for s in series
        if s.orientation == "axial" and s.modality == "CT" and len(s.instances) >= 3
    }
    calls = classify_study(series, vols)
    for s in series:
        t = truth["series"].get(s.series_instance_uid)
        if t is None or t["kind"] != "axial":
            continue
        call = calls[s.uid]
        assert call.phase == t["phase"], (t["key"], call.evidence)
        assert call.tag_phase is None or call.tag_confidence < 0.6  # nothing left in the tags
        assert not needs_confirmation(call), call.evidence


def test_liver_range_of_generated_portal_phase(blank_study: Path) -> None:
    from app.dicom.scan import scan_folder
    from app.dicom.volume import load_volume

    truth = json.loads((blank_study / "truth.json").read_text(encoding="utf-8"))
    uid = truth["phases"]["portal"]
    series = next(
        s
        for p in scan_folder(blank_study).patients
        for st in p.studies
        for s in st.series
        if s.series_instance_uid == uid
    )
    vol = load_volume(series)
    r = find_liver_range(vol)
    lo, hi = truth["liver_z_range_mm"]["portal"]
    assert abs(r.z_min - lo) <= vol.slice_spacing + 0.01
    assert abs(r.z_max - hi) <= vol.slice_spacing + 0.01
