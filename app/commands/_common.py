"""Helpers shared by the command modules: terminal progress, JSON output."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from app.progress import ProgressState


class TerminalProgress(ProgressState):
    """A progress bar on stderr (quiet when stderr is not a terminal, apart from the end)."""

    def __init__(self, label: str, enabled: bool = True) -> None:
        self._label = label
        self._enabled = enabled and sys.stderr.isatty()
        self._t0 = time.monotonic()
        super().__init__(self._draw, min_step=0.005)

    def _draw(self, fraction: float, text: str) -> None:
        if not self._enabled:
            return
        width = 30
        filled = int(round(fraction * width))
        bar = "#" * filled + "-" * (width - filled)
        elapsed = time.monotonic() - self._t0
        eta = ""
        if 0.02 < fraction < 1.0:
            eta = f" ETA {elapsed / fraction * (1 - fraction):4.0f}s"
        sys.stderr.write(f"\r{self._label} [{bar}] {fraction * 100:5.1f}%{eta} {text[:40]:<40}")
        if fraction >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()


def print_json(doc: Any) -> None:
    """One JSON document on stdout (DESIGN.md contract)."""
    json.dump(doc, sys.stdout, indent=2, ensure_ascii=False, default=_default)
    sys.stdout.write("\n")
    sys.stdout.flush()


def _default(obj: Any) -> Any:
    import dataclasses
    from pathlib import Path

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def say(text: str = "", *, end: str = "\n", err: bool = False) -> None:
    """Write human-readable command output: stdout, or stderr with ``err=True``.

    The one place the command layer writes text (``print_json`` is the one for ``--json``), so
    that library code never prints and every command's output is flushed at once (progress
    bars on stderr interleave correctly).
    """
    stream = sys.stderr if err else sys.stdout
    stream.write(f"{text}{end}")
    stream.flush()
