"""A labelled cohort: the CSV that lists it, and each study prepared for the network once.

A cohort CSV has one row per patient with the columns ``patient_id``, ``study_dir`` and
``responder`` (1 = CR/PR, 0 = SD/PD) and optionally ``recist`` and ``split``
(``train``/``val``/``test``); other columns (e.g. ``p_true`` of the synthetic generator) are
kept as extras. ``study_dir`` is relative to the CSV's folder unless absolute — the layout that
``hcc-response demo-data`` writes.

Each study goes through THE SAME code path as the app (DESIGN.md "the flow of one case"): scan
the folder, assemble the study (phase assignment, liver range, slice pairing), then the
inference package's preprocessing of every slice triplet. :func:`prepare_study` is that one
function. Its result is cached on disk (:mod:`app.training.prepared`), so epochs and later runs
never re-read DICOM. A study that fails is reported with its reason and excluded, never dropped
silently (:class:`PreparedCohort.failed`).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app import PHASES
from app.errors import Cancelled, HCCError, InputError
from app.parallel import resolve_workers, run_jobs
from app.progress import NULL_PROGRESS, Progress, sub_progress
from app.training._pipeline import prepare_study_via_app
from app.training.prepared import (
    PreparedStudy,
    PrepareSettings,
    cache_path,
    load_prepared,
    save_prepared,
)

log = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = ("patient_id", "study_dir", "responder")
OPTIONAL_COLUMNS: tuple[str, ...] = ("recist", "split")
SPLITS: tuple[str, ...] = ("train", "val", "test")
_RESPONDER_VALUES = {"1": 1, "0": 0, "true": 1, "false": 0, "yes": 1, "no": 0,
                     "responder": 1, "non-responder": 0}


class CohortError(InputError):
    """The cohort CSV is malformed (the message names the row and the column)."""


# --------------------------------------------------------------------------------------------
# the CSV


@dataclass(frozen=True)
class CohortEntry:
    """One patient of a cohort."""

    patient_id: str
    study_dir: Path
    responder: int
    recist: str | None = None
    split: str | None = None
    row: int = 0  # 1-based line number in the CSV (for messages)
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Cohort:
    """The entries of a cohort CSV, in file order."""

    path: Path
    entries: list[CohortEntry]

    @property
    def labels(self) -> np.ndarray:
        return np.array([e.responder for e in self.entries], dtype=np.int64)

    def summary(self) -> dict[str, object]:
        """Counts for model descriptions and reports."""
        y = self.labels
        splits: dict[str, int] = {}
        for e in self.entries:
            splits[e.split or "unspecified"] = splits.get(e.split or "unspecified", 0) + 1
        return {"csv": str(self.path), "patients": len(self.entries),
                "responders": int(y.sum()), "non_responders": int((1 - y).sum()),
                "responder_rate": float(y.mean()) if y.size else float("nan"),
                "splits": splits}


def read_cohort(path: str | Path, *, check_dirs: bool = True) -> Cohort:
    """Read and validate a cohort CSV.

    Parameters
    ----------
    path:
        The CSV file.
    check_dirs:
        Refuse rows whose ``study_dir`` is not an existing folder (default).

    Raises
    ------
    CohortError
        Missing file or column, empty cohort, an unparsable ``responder``, an unknown
        ``split``, a duplicate ``patient_id``, a missing ``study_dir``, or a RECIST category
        that contradicts the label — the message names the line.
    """
    p = Path(path)
    if not p.is_file():
        raise CohortError(f"cohort file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CohortError(f"cannot read cohort file {p}: {exc}") from exc
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise CohortError(f"{p.name}: missing column(s) {', '.join(missing)} "
                          f"(need {', '.join(REQUIRED_COLUMNS)})")
    base = p.parent
    entries: list[CohortEntry] = []
    seen: dict[str, int] = {}
    for raw in reader:
        i = reader.line_num  # physical line (DictReader skips blank lines silently)
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue  # blank line
        pid = row["patient_id"]
        where = f"{p.name} line {i}"
        if not pid:
            raise CohortError(f"{where}: empty patient_id")
        if pid in seen:
            raise CohortError(f"{where}: duplicate patient_id {pid!r} (first on line {seen[pid]})")
        seen[pid] = i
        lab = _RESPONDER_VALUES.get(row["responder"].lower())
        if lab is None:
            raise CohortError(f"{where}: responder must be 0 or 1, got {row['responder']!r}")
        recist = row.get("recist") or None
        if recist is not None:
            recist = recist.upper()
            if recist not in ("CR", "PR", "SD", "PD"):
                raise CohortError(f"{where}: unknown RECIST category {recist!r}")
            if (recist in ("CR", "PR")) != bool(lab):
                raise CohortError(f"{where}: RECIST {recist} contradicts responder={lab}")
        split = (row.get("split") or "").lower() or None
        if split is not None and split not in SPLITS:
            raise CohortError(f"{where}: split must be one of {', '.join(SPLITS)}, got {split!r}")
        if not row["study_dir"]:
            raise CohortError(f"{where}: empty study_dir")
        sd = Path(row["study_dir"])
        sd = sd if sd.is_absolute() else base / sd
        if check_dirs and not sd.is_dir():
            raise CohortError(f"{where}: study_dir {row['study_dir']!r} is not a folder")
        extra = {k: v for k, v in row.items()
                 if k not in REQUIRED_COLUMNS and k not in OPTIONAL_COLUMNS}
        entries.append(CohortEntry(pid, sd, lab, recist, split, i, extra))
    if not entries:
        raise CohortError(f"{p.name}: the cohort has no rows")
    return Cohort(p, entries)


# --------------------------------------------------------------------------------------------
# preparing the studies


def prepare_study(study_dir: str | Path, settings: PrepareSettings, *,
                  patient_id: str = "", label: int = 0, progress: Progress = NULL_PROGRESS
                  ) -> PreparedStudy:
    """Scan, assemble and preprocess one study folder exactly as the app does.

    This is the single per-study step of the training data path; nothing else reads DICOM for
    training or evaluation.

    Raises
    ------
    InputError
        The folder holds no usable study (the DICOM layer's own error, passed on), or the study
        lacks one of the three phases.
    """
    return prepare_study_via_app(Path(study_dir), settings, patient_id=patient_id,
                                 label=label, progress=progress)


@dataclass
class PreparedCohort:
    """The usable studies of a cohort plus the ones that failed (with reasons)."""

    studies: list[PreparedStudy]
    entries: list[CohortEntry]  # entry of each study, same order
    failed: list[tuple[CohortEntry, str]] = field(default_factory=list)
    cache_hits: int = 0

    def summary(self) -> dict[str, object]:
        y = np.array([s.label for s in self.studies])
        n_sl = np.array([s.n_slices for s in self.studies])
        return {"patients": len(self.studies), "responders": int(y.sum()),
                "non_responders": int(len(y) - y.sum()),
                "slices": int(n_sl.sum()),
                "slices_per_patient_median": float(np.median(n_sl)) if n_sl.size else 0.0,
                "failed": [{"patient_id": e.patient_id, "reason": r} for e, r in self.failed]}


PrepareFn = Callable[..., PreparedStudy]


@dataclass(frozen=True)
class _PrepareJob:
    """One study to prepare (small and picklable: it may travel to a worker process)."""

    entry: CohortEntry
    settings: PrepareSettings
    cache_file: Path | None
    prepare_fn: PrepareFn


def _prepare_entry(job: _PrepareJob, progress: Progress = NULL_PROGRESS) -> PreparedStudy | str:
    """Prepare one study and cache it; a bad-input failure comes back as its message.

    The message, not the exception, travels back from a worker: every study-specific error
    type then arrives intact, whatever its constructor.
    """
    e = job.entry
    try:
        st = job.prepare_fn(e.study_dir, job.settings, patient_id=e.patient_id, label=e.responder)
    except Cancelled:
        raise
    except HCCError as exc:  # typed, expected failure of this study (bad/refused input)
        return exc.message
    if job.cache_file is not None:
        save_prepared(job.cache_file, st)
    return st


def prepare_cohort(entries: Sequence[CohortEntry], settings: PrepareSettings, *,
                   cache_dir: Path | None = None, progress: Progress = NULL_PROGRESS,
                   prepare_fn: PrepareFn | None = None, workers: int = 1) -> PreparedCohort:
    """Prepare every entry (from the cache where it is valid), collecting failures.

    A study that fails with a bad-input error (no DICOM, a missing phase, a refused series) is
    excluded and listed in ``failed`` with its reason, and a warning is logged; an internal
    error or a cancellation propagates.

    Studies not in the cache are prepared by ``workers`` processes
    (:func:`app.parallel.resolve_workers`: 0 = one per core); the result does not depend on
    it. ``prepare_fn`` must then be a module-level function.
    """
    fn = prepare_fn or prepare_study
    n_workers = resolve_workers(workers)
    n = len(entries)
    found: dict[int, PreparedStudy | str] = {}
    jobs: list[tuple[int, _PrepareJob]] = []
    for i, e in enumerate(entries):
        progress.check()
        cp = cache_path(cache_dir, e.study_dir, settings) if cache_dir is not None else None
        if cp is not None and cp.is_file():
            try:
                found[i] = load_prepared(cp)
                continue
            except (OSError, ValueError, KeyError) as exc:
                log.warning("ignoring damaged cache file %s: %s", cp, exc)
        jobs.append((i, _PrepareJob(e, settings, cp, fn)))
    hits = len(found)
    progress.update(hits / max(n, 1), f"{hits} of {n} studies from the cache")
    if jobs:
        done = run_jobs(_prepare_entry, [job for _, job in jobs], n_workers,
                        progress=sub_progress(progress, hits / max(n, 1), 1.0),
                        describe=lambda job: f"prepared {job.entry.patient_id}")
        found.update((i, r) for (i, _), r in zip(jobs, done, strict=True))

    studies: list[PreparedStudy] = []
    kept: list[CohortEntry] = []
    failed: list[tuple[CohortEntry, str]] = []
    for i, e in enumerate(entries):
        st = found[i]
        if isinstance(st, str):
            failed.append((e, st))
            log.warning("study %s (%s) excluded: %s", e.patient_id, e.study_dir, st)
            continue
        # The CSV is the authority for identity and label; the cache may predate a relabel.
        st.patient_id, st.label = e.patient_id, e.responder
        if st.n_slices == 0:
            failed.append((e, "no liver slice triplets"))
            continue
        studies.append(st)
        kept.append(e)
    progress.update(1.0, f"prepared {len(studies)} of {n} studies")
    return PreparedCohort(studies, kept, failed, hits)


def probability_column(prepared: PreparedCohort, column: str) -> np.ndarray:
    """A probability column of the cohort CSV (e.g. the synthetic generator's ``p_true``), one
    value per prepared study, in their order — the order a scored cohort's patients have. Every
    row must give a number in [0, 1]; the error names the first row that does not."""
    values = []
    for e in prepared.entries:
        raw = e.extra.get(column)
        if raw is None or not str(raw).strip():
            raise CohortError(f"line {e.row}: the column {column!r} is missing or empty")
        try:
            value = float(raw)
        except ValueError:
            raise CohortError(f"line {e.row}: {column} {raw!r} is not a number") from None
        if not 0.0 <= value <= 1.0:
            raise CohortError(f"line {e.row}: {column} {value:g} is not a probability in [0, 1]")
        values.append(value)
    return np.array(values, dtype=np.float64)


def has_column(prepared: PreparedCohort, column: str) -> bool:
    """Whether every usable row of the cohort fills ``column`` (a real cohort has no ``p_true``)."""
    return all(str(e.extra.get(column) or "").strip() for e in prepared.entries)


def attach_soft_targets(prepared: PreparedCohort, column: str) -> None:
    """Set each study's training target from a probability column of the cohort CSV
    (:func:`probability_column`).

    A soft target is the probability of response the network is trained towards instead of the
    0/1 label — for instance the synthetic generator's ``p_true``, which removes the label noise
    of the Bernoulli draw (the expected gradient is the same, its variance much smaller).
    Validation, model selection and test metrics still use the 0/1 label.
    """
    for st, value in zip(prepared.studies, probability_column(prepared, column), strict=True):
        st.target = float(value)


def phase_indices(phases: Sequence[str]) -> list[int]:
    """Channel indices of ``phases`` in a prepared study's canonical phase axis."""
    return [PHASES.index(p) for p in phases]
