"""What the speed benchmarks share: their command line, the phantom study and random model
they measure, and the bare network passes that predict() and Grad-CAM are held against.

Kept in one place so that bench/predict_speed.py, bench/gradcam_speed.py and bench/gpu_check.py
time the same "bare forward" (the yardstick of issue 13's ratio targets).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import torch

from app.inference.arrays import phantom_arrays, study_from_arrays
from app.inference.config import ModelConfig
from app.inference.device import batch_to_device
from app.inference.weights import create_random_model


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a timing covers it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_forward(loaded: Any, x: torch.Tensor, batch_size: int, amp: torch.dtype | None = None) -> float:
    """Seconds of the inference-only forward (and softmax) of ``x`` in batches on the model's
    device, with ``amp`` autocast when given: what predict() costs without its preparation."""
    choice = loaded.device_choice
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch_size):
            xb = batch_to_device(x[i : i + batch_size], choice)
            with torch.autocast(choice.device.type, dtype=amp or torch.float32, enabled=amp is not None):
                loaded.model(xb).float().softmax(1)
    sync(loaded.device)
    return time.perf_counter() - t0


def speed_arguments(description: str, batch_size: int) -> argparse.Namespace:
    """The common command line of the CPU/GPU speed benchmarks."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slices", type=int, default=30)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=batch_size)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--shared", action="store_true", help="shared-trunk variant")
    ap.add_argument("--no-cuda", action="store_true", help="CPU only even where CUDA works")
    ap.add_argument("--model", type=Path, default=None,
                    help="time this model file (e.g. the shipped lesion-head model, whose predict() "
                         "also measures the tumour) instead of a random --backbone model")
    return ap.parse_args()


def speed_setup(args: argparse.Namespace, folder: Path) -> tuple[Path, Any]:
    """Threads, the model (``--model``, or a random one of the asked architecture written to
    ``folder``) and the phantom study; prints what is measured (and the load: other processes
    slow every figure)."""
    torch.set_num_threads(args.threads)
    study = study_from_arrays(phantom_arrays(args.slices, args.size))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other processes slow every figure)")
    if getattr(args, "model", None) is not None:
        print(f"torch {torch.__version__}, {args.threads} CPU threads, {args.slices} slice triplets of "
              f"{args.size}x{args.size}, model file {args.model}")
        return Path(args.model), study
    cfg = ModelConfig(backbone=args.backbone, shared_trunk=args.shared)
    print(f"torch {torch.__version__}, {args.threads} CPU threads, {args.slices} slice triplets of "
          f"{args.size}x{args.size}, {cfg.backbone} {'shared' if cfg.shared_trunk else 'separate'} trunks")
    path = folder / "bench.safetensors"
    create_random_model(path, cfg)
    return path, study
