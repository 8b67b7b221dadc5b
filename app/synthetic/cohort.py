"""A synthetic cohort: many patients, ``labels.csv``, and the cheap outcome-only sampler.

Layout written by :func:`generate_cohort`::

    OUT/
      demo-data.json            what was generated (marks the folder as demo-data output)
      labels.csv                patient_id, study_dir, responder, recist, p_true
      SYN<seed>-0001/           one study per patient
        truth.json
        labels/<SeriesUID>.npz  ground-truth label maps per axial series (only with --label-maps)
        SE0001/IM00001.dcm ...  (or all files flat in the patient folder with --flat)

An existing ``OUT`` is only reused when it is empty or carries ``demo-data.json`` from an
earlier run; then only the patient folders listed there are replaced.
"""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from app.parallel import resolve_workers, run_jobs
from app.progress import NULL_PROGRESS, Progress
from app.synthetic.errors import SyntheticError, SyntheticInputError
from app.synthetic.options import StudyOptions
from app.synthetic.outcome import LatentFeatures, rank_auc
from app.synthetic.study import GENERATOR_VERSION, build_patient, draw_outcome_only, write_study

MARKER = "demo-data.json"
LABELS = "labels.csv"
LABEL_COLUMNS = ("patient_id", "study_dir", "responder", "recist", "p_true")
MAX_PATIENTS = 100_000


@dataclass(frozen=True)
class SampledPatient:
    """Latent features and outcome of one patient, drawn without rendering."""

    index: int
    patient_id: str
    features: LatentFeatures
    p_true: float
    responder: int
    recist: str


@dataclass(frozen=True)
class PatientRecord:
    """One written patient (a row of ``labels.csv``)."""

    patient_id: str
    study_dir: str
    responder: int
    recist: str
    p_true: float


@dataclass(frozen=True)
class CohortResult:
    """What :func:`generate_cohort` wrote."""

    out_dir: Path
    labels_csv: Path
    patients: list[PatientRecord]
    seconds: float

    @property
    def prevalence(self) -> float:
        return float(np.mean([p.responder for p in self.patients])) if self.patients else float("nan")


def sample_patients(n: int, seed: int) -> list[SampledPatient]:
    """Draw latent features and outcomes of patients ``0..n-1`` of cohort ``seed``.

    Uses the same random streams as :func:`generate_cohort`, so the labels equal those of a
    rendered cohort with the same seed (whatever the rendering options), at a tiny fraction of
    the cost: 1,000 patients take well under a second.
    """
    from app.synthetic.study import patient_id_for

    out = []
    for i in range(int(n)):
        features, outcome = draw_outcome_only(seed, i)
        out.append(SampledPatient(i, patient_id_for(seed, i), features, outcome.p_true, outcome.responder, outcome.recist))
    return out


def bayes_auc(patients: list[SampledPatient] | list[PatientRecord]) -> float:
    """AUC of the true probability against the drawn labels (the best any model can do)."""
    return rank_auc(np.array([p.p_true for p in patients]), np.array([p.responder for p in patients]))


def estimate_bytes(options: StudyOptions, n_patients: int) -> int:
    """Upper estimate of the disk space a cohort needs (uncompressed pixel data plus headers)."""
    phases = 4 if options.delayed_phase else 3
    images = phases * options.n_slices
    if options.thin_recon:
        images += phases * int(round(options.z_coverage_mm / 1.0))
    if options.coronal:
        images += 60
    images += int(options.localizer) + int(options.dose_report)
    per_image = options.matrix * options.matrix * 2 + 4096
    return int(n_patients) * (images * per_image + 200_000)


def _check_space(out_dir: Path, needed: int) -> None:
    """Refuse a cohort that cannot fit: better than a full disk half-way through."""
    try:
        free = shutil.disk_usage(out_dir).free
    except OSError:
        return  # unknown free space (odd file systems): let the writes report any failure
    if needed > free:
        raise SyntheticInputError(
            f"the cohort needs about {needed / 1e9:.1f} GB but only {free / 1e9:.1f} GB are free in {out_dir}"
        )


def _prepare_out_dir(out_dir: Path) -> None:
    """Refuse a non-empty folder that is not earlier demo-data output; clear earlier output."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SyntheticInputError(f"{out_dir} exists and is not a folder")
    if not out_dir.exists():
        out_dir.mkdir(parents=True)
        return
    entries = list(out_dir.iterdir())
    if not entries:
        return
    marker = out_dir / MARKER
    if not marker.is_file():
        raise SyntheticInputError(f"{out_dir} is not empty and is not earlier demo-data output; choose an empty folder")
    try:
        previous = json.loads(marker.read_text(encoding="utf-8"))
        listed = {str(p) for p in previous.get("patients", [])}
    except (OSError, ValueError) as exc:
        raise SyntheticInputError(f"{marker} is unreadable ({exc}); choose an empty folder") from exc
    unknown = [e.name for e in entries if e.name not in listed | {MARKER, LABELS}]
    if unknown:
        raise SyntheticInputError(
            f"{out_dir} holds files that demo-data did not write ({', '.join(sorted(unknown)[:3])}); choose an empty folder"
        )
    for e in entries:
        if e.is_dir() and not e.is_symlink():
            shutil.rmtree(e)
        else:
            e.unlink()


def generate_cohort(
    out_dir: Path,
    n_patients: int,
    seed: int,
    options: StudyOptions | None = None,
    progress: Progress = NULL_PROGRESS,
    workers: int = 1,
) -> CohortResult:
    """Render and write ``n_patients`` synthetic studies plus ``labels.csv``.

    Parameters
    ----------
    out_dir:
        Empty (or absent) folder, or the output of an earlier run, which is replaced.
    seed:
        Cohort seed; the same seed and options give byte-identical files.
    progress:
        Reports per patient (and per series with one worker). Cancelling (or any failure)
        removes what this run wrote, leaving ``out_dir`` empty.
    workers:
        Processes rendering patients at once (:func:`app.parallel.resolve_workers`: 0 = one per
        core). Every patient has its own random streams, so the files do not depend on it.
    """
    options = options or StudyOptions()
    if not 1 <= int(n_patients) <= MAX_PATIENTS:
        raise SyntheticInputError(f"number of patients must be 1..{MAX_PATIENTS}, not {n_patients}")
    if int(seed) < 0:
        raise SyntheticInputError(f"seed must be a non-negative integer, not {seed}")
    n_workers = resolve_workers(workers)
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir)
    _check_space(out_dir, estimate_bytes(options, n_patients))
    t0 = time.monotonic()
    from app.synthetic.study import patient_id_for

    ids = [patient_id_for(seed, i) for i in range(n_patients)]
    marker = {"generator": GENERATOR_VERSION, "seed": int(seed), "n_patients": int(n_patients),
              "options": asdict(options), "patients": ids}
    # The marker goes first, so that even a run killed mid-way can be replaced by a rerun.
    (out_dir / MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
    jobs = [_PatientJob(int(seed), i, options, out_dir) for i in range(n_patients)]
    try:
        records = run_jobs(_write_patient, jobs, n_workers, progress=progress,
                           describe=lambda job: ids[job.index])
    except OSError as exc:
        # Disk full, permissions, vanished folder: one clear line, nothing partial kept.
        _remove_written(out_dir, ids)
        raise SyntheticError(f"writing the cohort to {out_dir} failed: {exc}") from exc
    except BaseException:
        # Cancelled or failed: keep nothing partial (the folder was empty or earlier output that
        # this run had already replaced), then let the error travel on.
        _remove_written(out_dir, ids)
        raise
    labels = out_dir / LABELS
    with labels.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(LABEL_COLUMNS)
        for r in records:
            writer.writerow([r.patient_id, r.study_dir, r.responder, r.recist, f"{r.p_true:.6f}"])
    progress.update(1.0, f"{n_patients} patients")
    return CohortResult(out_dir=out_dir, labels_csv=labels, patients=records, seconds=time.monotonic() - t0)


@dataclass(frozen=True)
class _PatientJob:
    """What a worker needs to render one patient (small and picklable)."""

    seed: int
    index: int
    options: StudyOptions
    out_dir: Path


def _write_patient(job: _PatientJob, progress: Progress = NULL_PROGRESS) -> PatientRecord:
    """Render and write one patient; runs in a worker process when there are several."""
    draw = build_patient(job.seed, job.index, job.options)
    write_study(draw, job.options, job.out_dir / draw.patient_id, progress)
    return PatientRecord(draw.patient_id, draw.patient_id, draw.outcome.responder,
                         draw.outcome.recist, draw.outcome.p_true)


def _remove_written(out_dir: Path, ids: list[str]) -> None:
    """Best-effort removal of this run's output; the original error is what the user needs."""
    for pid in ids:
        shutil.rmtree(out_dir / pid, ignore_errors=True)
    with contextlib.suppress(OSError):
        (out_dir / MARKER).unlink(missing_ok=True)


def read_labels(path: Path) -> list[PatientRecord]:
    """Read a ``labels.csv`` written by :func:`generate_cohort`."""
    with Path(path).open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [PatientRecord(r["patient_id"], r["study_dir"], int(r["responder"]), r["recist"], float(r["p_true"]))
            for r in rows]
