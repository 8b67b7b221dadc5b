"""Which preprocessing the last model used had, so that a change is shown before use (issue 19).

A model file carries its architecture and preprocessing in its card (input size, HU window,
crop, normalisation, phases). Two files can share a name and version and still prepare the
images differently — a site model retrained at another input size, an edited card — and the
votes then change without anything on screen saying why. The identity (SHA-256) is recorded
with every prediction, but a hash difference does not tell a user *what* changed.

So the preprocessing of the model last used is remembered in the per-user data folder
(``model-preprocessing.json``), and before a model is used its preprocessing is compared with
it: :func:`compare` returns the differences ("input size 64 → 96 px"), which the CLI prints
before predicting and the desktop app shows in the dialog that asks whether to use a model.
No torch here: the model is read through its ``description`` and ``config`` attributes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import paths

log = logging.getLogger(__name__)

#: Preprocessing fields of the model configuration, with the words used to show them.
PREPROCESSING_FIELDS: dict[str, str] = {
    "input_size": "input size (px)",
    "window": "HU window (width, level)",
    "crop": "crop",
    "crop_fov_mm": "crop field of view (mm)",
    "input_mean": "input mean",
    "input_std": "input standard deviation",
    "phases": "phases",
}


@dataclass(frozen=True)
class PreprocessingChange:
    """How a model's preprocessing differs from that of the model used before it.

    ``differences`` holds one line per field ("input size (px): 64 → 96"); ``previous`` names
    the model used before (name, version, short hash).
    """

    previous: str
    current: str
    differences: list[str]

    @property
    def message(self) -> str:
        return (f"the model {self.current} prepares the images differently from the model used "
                f"before ({self.previous}): " + "; ".join(self.differences))


def history_file() -> Path:
    return paths.user_data_dir() / "model-preprocessing.json"


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


def preprocessing_of(loaded: Any) -> dict[str, Any]:
    """The preprocessing fields of a loaded model's configuration, as JSON values."""
    config = loaded.config
    return {name: _plain(getattr(config, name)) for name in PREPROCESSING_FIELDS
            if hasattr(config, name)}


def _identity(loaded: Any) -> str:
    desc = loaded.description
    return f"{desc.name} {desc.version} ({str(loaded.sha256)[:12]})"


def _last() -> dict[str, Any] | None:
    try:
        doc = json.loads(history_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("preprocessing"), dict) else None


def compare(loaded: Any) -> PreprocessingChange | None:
    """The differences between ``loaded``'s preprocessing and the last used one (None: same,
    or nothing used before)."""
    last = _last()
    if last is None:
        return None
    now = preprocessing_of(loaded)
    before = last["preprocessing"]
    diffs = []
    for name, words in PREPROCESSING_FIELDS.items():
        if name in now and name in before and now[name] != before[name]:
            # the crop field of view only matters while the crop uses it
            if name == "crop_fov_mm" and now.get("crop") != "fov" and before.get("crop") != "fov":
                continue
            diffs.append(f"{words}: {_show(before[name])} → {_show(now[name])}")
    if not diffs:
        return None
    return PreprocessingChange(str(last.get("identity", "?")), _identity(loaded), diffs)


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def remember(loaded: Any) -> None:
    """Note ``loaded`` as the model last used (atomic write; a failure is only logged)."""
    doc = {"identity": _identity(loaded), "sha256": str(loaded.sha256),
           "preprocessing": preprocessing_of(loaded)}
    target = history_file()
    tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        log.warning("could not remember the model's preprocessing in %s: %s", target, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()
