"""A writer killed with SIGKILL mid-way, many times, loses nothing it committed
(RELIABILITY.md 20): integrity_check is ok, the audit chain verifies, and every prediction and
outcome the writer reported as committed is present and intact."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from app.register import open_register
from app.register.samples import sample_record

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL") or not hasattr(os, "fork"),
                                reason="needs SIGKILL and fork (POSIX)")

def _writer(path: str, seed: int, log: str, ready: Any) -> None:
    """Child process: insert predictions, outcomes and events until killed.

    It reports an id only AFTER its transaction committed, one line at a time; the parent
    trusts complete lines only.
    """
    reg = open_register(path, create=False)
    out = open(log, "a", buffering=1)  # noqa: SIM115 - lives until the process is killed
    ready.set()
    i = 0
    while True:
        pid = reg.add_prediction(sample_record(i, seed=seed, n_slices=30))
        out.write(f"P {pid} {seed} {i}\n")
        if i % 3 == 0:
            o = reg.record_outcome(pid, "PR" if i % 2 else "SD", "2025-01-01", entered_by="w")
            out.write(f"O {o.id} {pid} {o.category}\n")
        if i % 5 == 0:
            reg.log_event("override", {"phase": "portal", "i": i}, prediction_id=pid)
        i += 1


ROUNDS = 25


def test_sigkill_mid_write_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "register.sqlite"
    open_register(path).close()
    log = tmp_path / "committed.txt"
    log.touch()
    rng = random.Random(20)
    # fork: the child starts in milliseconds with everything imported (spawn costs seconds)
    ctx = multiprocessing.get_context("fork")
    killed_running = 0
    for seed in range(ROUNDS):
        ready = ctx.Event()
        child = ctx.Process(target=_writer, args=(str(path), seed, str(log), ready))
        child.start()
        try:
            assert ready.wait(timeout=60), "the writer did not start"
            time.sleep(rng.uniform(0.0, 0.3))
            if child.is_alive():
                killed_running += 1
            os.kill(child.pid or 0, signal.SIGKILL)
            child.join(timeout=30)
        finally:
            if child.is_alive():  # pragma: no cover - only if an assertion failed above
                child.kill()
                child.join()
        assert child.exitcode == -signal.SIGKILL
    assert killed_running == ROUNDS  # every kill hit a running writer

    preds: dict[int, tuple[int, int]] = {}
    outcomes: dict[int, tuple[int, str]] = {}
    for raw in log.read_text().splitlines():
        parts = raw.split()
        if parts[:1] == ["P"] and len(parts) == 4:
            preds[int(parts[1])] = (int(parts[2]), int(parts[3]))
        elif parts[:1] == ["O"] and len(parts) == 4 and parts[3] in ("PR", "SD"):
            outcomes[int(parts[1])] = (int(parts[2]), parts[3])
    assert len(preds) >= ROUNDS  # the writers did get work done between kills

    with open_register(path) as reg:
        with reg.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        report = reg.verify()
        assert report.ok, report.problems
        # at most one unreported commit per kill (committed, killed before the log line)
        assert len(preds) <= report.n_predictions <= len(preds) + ROUNDS
        for pid, (seed, i) in preds.items():
            got = dataclasses.asdict(reg.get_prediction(pid).record)
            want = dataclasses.asdict(sample_record(i, seed=seed, n_slices=30))
            want["liver_range_mm"] = {k: list(v) for k, v in want["liver_range_mm"].items()}
            assert got == want, f"case {pid} differs"
        for oid, (pid, cat) in outcomes.items():
            assert any(o.id == oid and o.category == cat
                       for o in reg.get_prediction(pid).outcomes)
