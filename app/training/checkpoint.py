"""Training checkpoints: tensors in safetensors, everything else in JSON — never pickle.

``<path>.safetensors`` holds the model, the best model so far, the optimizer state and the RNG
states; ``<path>.json`` the epoch, iteration, history, best epoch and the configurations. Both
are written to temporary files and renamed, so an interrupted write leaves the previous
checkpoint usable. :class:`app.training.trainer._TrainState` decides what goes in.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.errors import InputError


class CheckpointError(InputError):
    """A checkpoint file that cannot be resumed from (missing, damaged, other configuration)."""


def _checkpoint_paths(path: Path) -> tuple[Path, Path]:
    """``<path>.safetensors`` + ``<path>.json`` (suffixes appended, never substituted, so a
    checkpoint named ``model.ckpt`` never collides with ``model.safetensors``)."""
    base = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return base.with_name(base.name + ".safetensors"), base.with_name(base.name + ".json")


def save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer,
                     best_state: dict[str, torch.Tensor] | None, gen: torch.Generator,
                     meta: dict[str, Any]) -> None:
    """Write the checkpoint pair atomically (the previous one stays until both are written)."""
    from safetensors.torch import save_file

    st_path, js_path = _checkpoint_paths(path)
    st_path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        tensors[f"model.{k}"] = v.detach().cpu().contiguous()
    if best_state is not None:
        for k, v in best_state.items():
            tensors[f"best.{k}"] = v.detach().cpu().contiguous()
    osd = opt.state_dict()
    for pid, st in osd["state"].items():
        for k, v in st.items():
            t = v if torch.is_tensor(v) else torch.tensor(v)
            tensors[f"opt.{pid}.{k}"] = t.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.augment"] = gen.get_state().cpu()
    meta = dict(meta)
    meta["optimizer_param_groups"] = osd["param_groups"]
    tmp_st = st_path.with_name(f"{st_path.name}.tmp{os.getpid()}")
    save_file(tensors, str(tmp_st))
    tmp_js = js_path.with_name(f"{js_path.name}.tmp{os.getpid()}")
    tmp_js.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    os.replace(tmp_st, st_path)
    os.replace(tmp_js, js_path)


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and the JSON of a checkpoint; :class:`CheckpointError` when unreadable."""
    from safetensors.torch import load_file

    st_path, js_path = _checkpoint_paths(path)
    if not st_path.is_file() or not js_path.is_file():
        raise CheckpointError(f"checkpoint not found: {st_path} + {js_path.name}")
    try:
        tensors = load_file(str(st_path))
        meta = json.loads(js_path.read_text(encoding="utf-8"))
    except Exception as exc:  # noqa: BLE001 - any reader failure means unusable, say why
        raise CheckpointError(f"cannot read checkpoint {st_path.name}: {exc}") from exc
    return tensors, meta


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                       groups: list[dict[str, Any]], device: torch.device) -> None:
    """Load the ``opt.*`` tensors back into ``opt`` (the step counters stay on the CPU)."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if not k.startswith("opt."):
            continue
        _, pid, name = k.split(".", 2)
        state.setdefault(int(pid), {})[name] = v if name == "step" else v.to(device)
    opt.load_state_dict({"state": state, "param_groups": groups})
