"""Helpers shared by the command modules: terminal progress, JSON output."""

from __future__ import annotations

import json
import math
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


#: Whether this command has written its JSON document (a refusal after it adds none).
_json_written = False


def reset_json_state() -> None:
    """Forget an earlier command's JSON document (the CLI calls this before each command)."""
    global _json_written
    _json_written = False


def print_json(doc: Any) -> None:
    """One JSON document on stdout (DESIGN.md contract).

    Strictly valid JSON: a non-finite number (NaN, ±inf) is written as ``null``, never as
    the bare ``NaN`` that Python's encoder writes by default and other parsers reject.
    """
    global _json_written
    json.dump(_plain(doc), sys.stdout, indent=2, ensure_ascii=False, default=_default,
              allow_nan=False)
    sys.stdout.write("\n")
    sys.stdout.flush()
    _json_written = True


def json_error(exc: BaseException, message: str, exit_code: int) -> None:
    """The ``--json`` face of a refusal or failure: ``{"error": {kind, message, exit_code}}``
    on stdout, so that a script gets a machine-readable reason with the same exit status.

    Nothing is written when the command has already written its document (``scan --json``
    prints its report, whose ``problem`` says why, and then refuses).
    """
    if _json_written:
        return
    print_json({"error": {"kind": type(exc).__name__, "message": message,
                          "exit_code": exit_code}})


def _plain(obj: Any) -> Any:
    """``obj`` with containers rebuilt and non-finite floats replaced by None (JSON null)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    converted = _default(obj)
    return obj if converted is obj else _plain(converted)


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
