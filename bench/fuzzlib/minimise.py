"""Delta debugging: shrink a failing case to a small reproducer.

First over the case's mutations (the smallest sub-list that still fails with the same
signature), then — for a scan-level case — over the files of the mutated folder (the fewest
files that still fail). Every step is bounded by a deadline: a reproducer that is only partly
shrunk is still a reproducer.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def ddmin(items: Sequence[T], fails: Callable[[list[T]], bool], deadline: float) -> list[T]:
    """Zeller's ddmin: a 1-minimal sub-list of ``items`` for which ``fails`` holds (as far as
    the deadline allows). ``fails(list(items))`` is assumed true."""
    current = list(items)
    if current and time.monotonic() < deadline and fails([]):
        return []
    n = 2
    while len(current) >= 2 and time.monotonic() < deadline:
        size = -(-len(current) // n)
        chunks = [current[i:i + size] for i in range(0, len(current), size)]
        reduced = False
        for k, chunk in enumerate(chunks):
            if time.monotonic() >= deadline:
                return current
            if fails(chunk):
                current, n, reduced = chunk, 2, True
                break
            if len(chunks) > 2:
                rest = [x for j, c in enumerate(chunks) if j != k for x in c]
                if fails(rest):
                    current, n, reduced = rest, max(n - 1, 2), True
                    break
        if not reduced:
            if n >= len(current):
                break
            n = min(2 * n, len(current))
    return current


def shrink_files(case_dir: Path, trial_dir: Path, fails: Callable[[Path], bool],
                 deadline: float) -> list[Path]:
    """The fewest files of ``case_dir`` that still fail (as relative paths)."""
    files = sorted(p.relative_to(case_dir) for p in case_dir.rglob("*") if p.is_file())

    def build(subset: list[Path]) -> bool:
        if trial_dir.exists():
            shutil.rmtree(trial_dir)
        trial_dir.mkdir(parents=True)
        for rel in subset:
            (trial_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(case_dir / rel, trial_dir / rel)
        return fails(trial_dir)

    keep = ddmin(files, build, deadline)
    if trial_dir.exists():
        shutil.rmtree(trial_dir)
    return keep
