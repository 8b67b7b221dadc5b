"""``train --init phantom``: start a site's model from the CT trunk of the shipped demo model.

Why: the shipped demo model's trunk learnt CT anatomy — liver, tumour, necrosis, vessels —
from label maps of thousands of synthetic slices (:mod:`app.training.lesion_loss`). A site that
trains on its own few dozen patients starts better from a trunk that already knows what a liver
lesion looks like in each phase than from random weights (ImageNet weights, the paper's start,
need a converted local file and know photographs, not CT). No second large file ships: the
initialisation is read from the demo model itself, checked against its recorded SHA-256.

Copied: the trunk and each phase's extra layers (the phase-specific BatchNorm and extra layers
of a phase go to the same phase of the new model, whatever phases it reads). Not copied: the
segmentation layer and the response head, whose shapes depend on the phases read and which the
site's labels must train anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from app.errors import InputError
from app.inference.model import MultiPhaseNet

INIT_CHOICES: tuple[str, ...] = ("random", "phantom")

# trunks.0.<...>.bns.<k>.<param> (phase-specific BatchNorm of a shared trunk) and extras.<k>.<...>
_BN = re.compile(r"^(trunks\.0\..*\.bns\.)(\d+)(\..+)$")
_EXTRA = re.compile(r"^(extras\.)(\d+)(\..+)$")


class PhantomInitError(InputError):
    """The demo model cannot initialise this architecture (other trunk, missing phase, no
    model file)."""


@dataclass(frozen=True)
class PhantomInit:
    """What was used, for the model description."""

    path: str
    sha256: str
    tensors: int

    def describe(self) -> str:
        return f"trunk initialised from {Path(self.path).name} (SHA-256 {self.sha256[:12]}…, {self.tensors} tensors)"


def _source_name(name: str, phases: tuple[str, ...], source_phases: tuple[str, ...],
                 source_names: set[str]) -> str:
    """The demo model's tensor for ``name``: the same phase's BatchNorm / extra layers."""
    def index_of(phase: str) -> int:
        if phase not in source_phases:
            raise PhantomInitError(f"the demo model has no {phase} pathway to copy")
        return source_phases.index(phase)

    for pattern in (_BN, _EXTRA):
        m = pattern.match(name)
        if m:
            return f"{m.group(1)}{index_of(phases[int(m.group(2))])}{m.group(3)}"
    if name not in source_names and len(phases) == 1 and name.startswith("trunks.0."):
        # a one-phase model's trunk has plain BatchNorm where the demo model has one per phase
        head, _, param = name.rpartition(".")
        return f"{head}.bns.{index_of(phases[0])}.{param}"
    return name


def load_phantom_init(model: MultiPhaseNet, path: str | Path | None = None) -> PhantomInit:
    """Copy the demo model's trunk and extra layers into ``model`` (in place).

    Raises
    ------
    PhantomInitError
        No demo model, a changed file, or a trunk/extra-layer architecture that differs.
    """
    from app.inference.weights import (
        ModelFileError,
        default_model_path,
        load_model,
        recorded_sha256,
    )

    path = Path(path) if path is not None else default_model_path()
    try:
        source = load_model(path, "cpu", expected_sha256=recorded_sha256(path), fold=False)
    except ModelFileError as exc:
        raise PhantomInitError(f"cannot initialise from the demo model: {exc}") from exc
    src_cfg, cfg = source.config, model.config
    for attr in ("backbone", "shared_trunk", "extra_layers", "extra_channels"):
        if getattr(src_cfg, attr) != getattr(cfg, attr):
            raise PhantomInitError(
                f"--init phantom needs the demo model's {attr} ({getattr(src_cfg, attr)!r}); "
                f"this model has {getattr(cfg, attr)!r}")
    src_state = source.model.state_dict()
    new_state = model.state_dict()
    copied = 0
    with torch.no_grad():
        for name, tensor in new_state.items():
            if not name.startswith(("trunks.", "extras.")):
                continue
            src = src_state[_source_name(name, cfg.phases, src_cfg.phases, set(src_state))]
            if src.shape != tensor.shape:
                raise PhantomInitError(f"{name}: shape {tuple(tensor.shape)} differs from the demo "
                                       f"model's {tuple(src.shape)}")
            tensor.copy_(src.to(tensor.dtype))
            copied += 1
    return PhantomInit(str(path), source.sha256, copied)
