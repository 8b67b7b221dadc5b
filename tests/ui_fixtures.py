"""Data for the desktop-app tests: constructed studies/scans and a generated DICOM study.

Two kinds, on purpose:

* :func:`constructed_scan` / :func:`constructed_study` build the scanner's and the assembler's
  plain dataclasses from numpy arrays — small, instant, and with exactly the conflicts a test
  needs (two series claiming one phase, a refused series, warnings).
* :func:`generated_study_dir` writes a real synthetic three-phase DICOM study with the
  project's generator (small matrix, few slices) and :func:`tiny_model_path` a randomly
  initialised model at a small input size, both once per test session, for the end-to-end flow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app import PHASES
from app.dicom.types import AssembledStudy, PhaseCall, SeriesInfo, SlicePair, Volume

PATIENT_ID = "UI-TEST-001"


def make_series(
    uid: str,
    number: int,
    description: str,
    phase: str,
    confidence: float = 0.95,
    *,
    status: str = "ok",
    warnings: list[str] | None = None,
    refused_reason: str | None = None,
    orientation: str = "axial",
    conflict: bool = False,
) -> SeriesInfo:
    """A scanned series with a phase call (header fields filled like the scanner does)."""
    return SeriesInfo(
        uid=uid,
        series_instance_uid=uid,
        series_number=number,
        description=description,
        modality="CT",
        orientation=orientation,  # type: ignore[arg-type]
        image_type=["ORIGINAL", "PRIMARY", "AXIAL"],
        n_slices=12,
        rows=64,
        columns=64,
        pixel_spacing=(6.0, 6.0),
        slice_thickness=5.0,
        slice_spacing=5.0,
        z_range=(-60.0, -5.0),
        frame_of_reference_uid="1.2.3.9",
        patient_id=PATIENT_ID,
        patient_name="Test^Patient",
        study_uid="1.2.3.4",
        study_date="20240131",
        study_description="CT ABDOMEN 3 PHASE",
        status=status,  # type: ignore[arg-type]
        warnings=list(warnings or []),
        refused_reason=refused_reason,
        phase_call=PhaseCall(
            phase=phase,  # type: ignore[arg-type]
            confidence=confidence,
            evidence=[f"description '{description}' → {phase}"],
            conflict=conflict,
        ),
    )


def constructed_scan(extra_arterial: bool = True):  # type: ignore[no-untyped-def]
    """A scan of one patient / one study: plain, arterial (twice), portal, a refused coronal."""
    from app.dicom.scan import FileOutcome, PatientInfo, ScanResult, StudyInfo

    series = [
        make_series("1.1", 2, "ABD NATIVE 5.0", "plain"),
        make_series("1.2", 3, "ART 5.0 B30f", "arterial", 0.9, warnings=["InstanceNumber gap"]),
        make_series("1.3", 4, "PV 5.0 B30f", "portal"),
        make_series(
            "1.5", 6, "COR MPR", "other", 0.5, status="refused",
            refused_reason="coronal reformat: outside the intended use", orientation="coronal",
        ),
    ]
    if extra_arterial:
        series.insert(2, make_series("1.4", 5, "LATE ART 5.0", "arterial", 0.6, conflict=True))
    study = StudyInfo("1.2.3.4", "20240131", "CT ABDOMEN 3 PHASE", PATIENT_ID, "Test^Patient", series)
    files = [FileOutcome(Path(f"/x/{i}.dcm"), "used") for i in range(5)] + [
        FileOutcome(Path("/x/readme.txt"), "skipped", "not DICOM")
    ]
    return ScanResult(Path("/x"), [PatientInfo(PATIENT_ID, "Test^Patient", [study])], files)


def constructed_study(
    n_pairs: int = 6,
    size: int = 64,
    *,
    assignment: dict[str, str] | None = None,
    needs_confirmation: bool = False,
) -> AssembledStudy:
    """An assembled study with bright 'lesion' discs, pairs over all slices."""
    assignment = assignment or {"plain": "1.1", "arterial": "1.2", "portal": "1.3"}
    yy, xx = np.mgrid[:size, :size]
    body = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size * 0.42) ** 2
    volumes = {}
    for k, phase in enumerate(PHASES):
        hu = np.where(body, 40.0 + 30 * k, -1000.0).astype(np.float32)
        hu = np.repeat(hu[None], n_pairs, axis=0)
        lesion = ((yy - size * 0.4) ** 2 + (xx - size * 0.35) ** 2) < (size * 0.08) ** 2
        hu[:, lesion] = 150.0
        volumes[phase] = Volume(
            hu=hu,
            z_positions=np.arange(n_pairs, dtype=float) * 5.0 - 60.0,
            origin=(-190.0, -190.0, -60.0),
            pixel_spacing=(6.0, 6.0),
            slice_spacing=5.0,
            direction=np.eye(3),
            sop_instance_uids=[f"{assignment[phase]}.{i}" for i in range(n_pairs)],
            series_uid=assignment[phase],
            slice_thickness=5.0,
        )
    pairs = [
        SlicePair(z_ref=-60.0 + 5 * i, index={p: i for p in PHASES}, z_mm={p: -60.0 + 5 * i for p in PHASES})
        for i in range(n_pairs)
    ]
    return AssembledStudy(
        patient_id=PATIENT_ID,
        patient_name="Test^Patient",
        study_uid="1.2.3.4",
        study_date="20240131",
        study_description="CT ABDOMEN 3 PHASE",
        assignment=dict(assignment),
        volumes=volumes,
        liver_range_mm={p: (-60.0, -60.0 + 5 * (n_pairs - 1)) for p in PHASES},
        pairs=pairs,
        needs_confirmation=needs_confirmation,
        confirmation_reasons=["two series claim the arterial phase: #3, #5"] if needs_confirmation else [],
        alternatives={"arterial": ["1.4"]},
    )


def prediction_record(patient_id: str, model: str = "demo", label: str = "responder", score: float = 0.7,  # type: ignore[no-untyped-def]
                      decided_by: str = ""):
    """A register record as the casework adapter would produce it (plain data)."""
    from app.register import PredictionRecord

    votes = 7 if label == "responder" else 3
    return PredictionRecord(
        patient_id=patient_id,
        patient_name=f"Name^{patient_id}",
        study_uid=f"1.2.{abs(hash(patient_id)) % 10_000}",
        study_date="20240131",
        model_name=model,
        model_version="1.0",
        model_sha256="ab" * 32,
        label=label,
        score=score,
        responder_votes=votes,
        total_votes=10,
        slice_results=[{"z_ref": float(i), "probability": score, "label": 1 if label == "responder" else 0} for i in range(10)],
        source_folder="/nonexistent/folder",
        decided_by=decided_by,
    )


# -- a generated DICOM study and a tiny model (end-to-end tests) -------------------------------

#: Small but real: 96 × 96, 5 mm slices, plain/arterial/portal plus a delayed series (so a
#: phase can be overridden with another real series).
GENERATED_MATRIX = 96
GENERATED_SEED = 7


def prediction_result(probabilities: list[float], **fields: object):  # type: ignore[no-untyped-def]
    """A :class:`PredictionResult` as the predictor makes it from these slice probabilities
    (the real vote); ``fields`` replace the model identity, device, warnings ..."""
    from dataclasses import replace

    from app.inference.result import PredictionResult, SliceResult, majority_vote, slice_label

    vote = majority_vote(list(probabilities))
    result = PredictionResult(
        label=vote.label, responder_votes=vote.responder_votes, total_votes=vote.total_votes,
        vote_fraction=vote.vote_fraction, mean_probability=vote.mean_probability, tie=vote.tie,
        tie_rule="", slices=[SliceResult(i, float(i), {}, {}, float(p), slice_label(float(p)))
                             for i, p in enumerate(probabilities)],
        phases=PHASES, series_uids={}, model_name="", model_version="", model_sha256="",
        weights_kind="", device="cpu", device_reason="", device_fallback=False,
        precision="fp32", batch_size=32)
    return replace(result, **fields)


def generate_study(dest: Path, *, seed: int = GENERATED_SEED, matrix: int = GENERATED_MATRIX, delayed: bool = True) -> tuple[Path, dict]:
    """Write one synthetic patient under ``dest``; returns (study folder, truth.json content)."""
    from app.synthetic.options import StudyOptions
    from app.synthetic.study import build_patient, write_study

    options = StudyOptions(matrix=matrix, delayed_phase=delayed, convention="siemens")
    draw = build_patient(seed, 0, options)
    folder = dest / draw.patient_id
    truth = write_study(draw, options, folder)
    return folder, truth


def create_tiny_model(path: Path) -> str:
    """A randomly initialised model at 64 px input with a shared trunk; returns its SHA-256."""
    from app.inference.config import ModelConfig
    from app.inference.weights import create_random_model

    config = ModelConfig(input_size=64, shared_trunk=True, extra_channels=32, hidden=32)
    return create_random_model(path, config)


def truth_phase_of(truth: dict) -> dict[str, str]:
    """series uid → true phase ("plain"/"arterial"/"portal"/"other") from truth.json."""
    return {uid: t["phase"] for uid, t in truth["series"].items()}


def open_main_window(qtbot, model_path: Path, model_sha256: str):  # type: ignore[no-untyped-def]
    """The real main window on a CPU model, shown, with its finished steps collected in
    ``window.steps`` (the GUI flow tests wait on them)."""
    from app.settings import update_settings
    from app.ui.main_window import MainWindow

    update_settings(model_path=str(model_path), model_sha256=model_sha256, device="cpu", demo_offered=True)
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    steps: list[str] = []
    w.stepDone.connect(steps.append)
    w.steps = steps
    return w


def truncated_model_copy(src: Path, dst: Path, cut: int = 100) -> Path:
    """A copy of a model file with its last ``cut`` bytes missing (an interrupted download)."""
    blob = src.read_bytes()
    dst.write_bytes(blob[: len(blob) - cut])
    return dst


def nan_model_copy(src: Path, dst: Path) -> str:
    """Re-save the model in ``src`` with one weight set to NaN, a well-formed file otherwise
    (the weights helpers write it: right keys, shapes, dtype and card); returns the tensor's name."""
    import torch

    from app.inference.weights import load_model, save_model

    loaded = load_model(src, "cpu", fold=False)  # unfolded: the network as it was saved
    name, tensor = next((k, t) for k, t in loaded.model.state_dict().items() if k.endswith(".weight") and t.numel() > 1)
    with torch.no_grad():
        tensor.view(-1)[0] = float("nan")
    save_model(loaded.model, loaded.config, loaded.description, dst)
    return name
