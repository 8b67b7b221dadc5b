"""Process-parallel cohort work: same results as serial, errors and cancellation carried over."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pytest

from app.errors import Cancelled, InputError
from app.parallel import MAX_AUTO_WORKERS, resolve_workers, run_jobs
from app.progress import NULL_PROGRESS, Progress, ProgressState


class RefusedItem(InputError):
    """A typed error raised in a worker."""


def _square_slowly(item: int, progress: Progress = NULL_PROGRESS) -> tuple[int, int]:
    # Early items sleep longest, so jobs finish in the reverse of their order.
    time.sleep(0.05 * (4 - item) if item < 4 else 0.0)
    if item == 99:
        raise RefusedItem(f"item {item} is refused")
    return item * item, os.getpid()


def _touch(item: tuple[str, int], progress: Progress = NULL_PROGRESS) -> int:
    folder, i = item
    time.sleep(0.2)
    Path(folder, f"{i}.done").write_text("x")
    return i


def test_results_come_back_in_input_order_from_other_processes() -> None:
    seen: list[tuple[float, str]] = []
    state = ProgressState(lambda f, t: seen.append((f, t)), min_step=0.0)
    out = run_jobs(_square_slowly, [0, 1, 2, 3, 4, 5], 2, progress=state,
                   describe=lambda i: f"item {i}")
    assert [r for r, _ in out] == [0, 1, 4, 9, 16, 25]
    pids = {pid for _, pid in out}
    assert os.getpid() not in pids and len(pids) == 2  # really two worker processes
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {t for _, t in seen} == {f"item {i}" for i in range(6)}


def test_serial_runs_here_without_a_pool() -> None:
    out = run_jobs(_square_slowly, [2, 3], 1)
    assert out == [(4, os.getpid()), (9, os.getpid())]


def test_a_workers_error_reaches_the_caller_with_its_type_and_message() -> None:
    with pytest.raises(RefusedItem, match="item 99 is refused"):
        run_jobs(_square_slowly, [5, 99, 6], 2)


def test_cancelling_drops_jobs_not_yet_started(tmp_path: Path) -> None:
    state = ProgressState(min_step=0.0)
    results: list[int] = []

    def first_done(i: int, r: int) -> None:
        results.append(r)
        state.cancel()

    items = [(str(tmp_path), i) for i in range(12)]
    with pytest.raises(Cancelled):
        run_jobs(_touch, items, 2, progress=state, on_result=first_done)
    done = sorted(tmp_path.glob("*.done"))
    # the running and queued jobs finish (so a caller can clean up), the rest never start
    assert results and len(done) < len(items)
    time.sleep(0.5)
    assert sorted(tmp_path.glob("*.done")) == done  # nothing runs on after the call returned


def test_worker_count_is_resolved_and_checked() -> None:
    auto = resolve_workers(0)
    assert 1 <= auto <= MAX_AUTO_WORKERS and resolve_workers(None) == auto
    assert resolve_workers(3) == 3
    with pytest.raises(InputError, match="number of workers"):
        resolve_workers(-1)


def _tree_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_parallel_cohort_generation_writes_the_same_bytes(tmp_path: Path) -> None:
    from app.synthetic.cohort import generate_cohort
    from app.synthetic.options import StudyOptions

    opts = StudyOptions(matrix=48, slice_mm=10.0, z_coverage_mm=80.0)
    serial = generate_cohort(tmp_path / "serial", 3, 17, opts, workers=1)
    parallel = generate_cohort(tmp_path / "parallel", 3, 17, opts, workers=2)
    assert parallel.patients == serial.patients
    a, b = _tree_digest(tmp_path / "serial"), _tree_digest(tmp_path / "parallel")
    assert len(a) > 3 * 3 * 8 and a == b


def test_parallel_cohort_generation_cleans_up_when_cancelled(tmp_path: Path) -> None:
    from app.synthetic.cohort import generate_cohort
    from app.synthetic.options import StudyOptions

    state = ProgressState(lambda f, _t: state.cancel() if f > 0.0 else None, min_step=0.0)
    with pytest.raises(Cancelled):
        generate_cohort(tmp_path / "c", 6, 3, StudyOptions(matrix=48, slice_mm=10.0,
                                                            z_coverage_mm=80.0), state, workers=2)
    assert list((tmp_path / "c").iterdir()) == []  # nothing partial kept


@pytest.mark.slow
def test_parallel_preparation_equals_serial_and_reports_failures(tmp_path: Path) -> None:
    from app.synthetic.cohort import generate_cohort
    from app.synthetic.options import StudyOptions
    from app.training.cohort import CohortEntry, prepare_cohort
    from app.training.prepared import PrepareSettings

    cohort = generate_cohort(tmp_path / "cohort", 3, 8, StudyOptions(matrix=48), workers=2)
    (tmp_path / "empty").mkdir()
    entries = [CohortEntry(p.patient_id, tmp_path / "cohort" / p.study_dir, p.responder)
               for p in cohort.patients]
    entries.insert(1, CohortEntry("NONE", tmp_path / "empty", 0, row=3))
    settings = PrepareSettings(input_size=32, crop="body")
    serial = prepare_cohort(entries, settings, workers=1)
    parallel = prepare_cohort(entries, settings, cache_dir=tmp_path / "cache", workers=2)
    assert [s.patient_id for s in parallel.studies] == [s.patient_id for s in serial.studies]
    assert len(parallel.studies) == 3
    for a, b in zip(serial.studies, parallel.studies, strict=True):
        assert np.array_equal(a.slices, b.slices) and np.array_equal(a.z_ref, b.z_ref)
        assert a.warnings == b.warnings
    assert [(e.patient_id, r) for e, r in parallel.failed] == \
        [(e.patient_id, r) for e, r in serial.failed]
    assert parallel.failed and parallel.failed[0][0].patient_id == "NONE"
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3  # written by the workers
    again = prepare_cohort(entries, settings, cache_dir=tmp_path / "cache", workers=2)
    assert again.cache_hits == 3 and len(again.studies) == 3


def test_cli_refuses_a_negative_worker_count(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    assert main(["demo-data", str(tmp_path / "x"), "--patients", "2", "--matrix", "48",
                 "--workers", "-2"]) == 2
    assert "number of workers" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # refused before anything was written
