"""What Grad-CAM costs: the viewed slice, and the whole study against a bare forward+backward.

Usage::

    .venv/bin/python bench/gradcam_speed.py [--slices 30] [--size 512] [--threads 2]
                                            [--repeats 3] [--shared] [--backbone resnet18]

Same study and model as ``bench/predict_speed.py`` (three phases, phantom-like 512 × 512 HU,
random-initialised model loaded from its file). Prints:

- ``gradcam_slice``: Grad-CAM of all pathways for ONE slice triplet, mapped back onto the three
  512 × 512 slices (target ≤ 0.6 s on 2 CPU threads);
- ``gradcam_study`` / bare forward+backward (target ≤ 1.3), where the bare figure is the same
  network on the same preprocessed tensors in the same batches: a forward pass with autograd
  and ``backward()`` of the responder logits into every parameter — what a straightforward
  Grad-CAM built on ``loss.backward()`` would cost at least.

On CUDA (when it works) the same figures and absolute times are printed as well.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.inference.arrays import phantom_arrays, study_from_arrays  # noqa: E402
from app.inference.config import ModelConfig  # noqa: E402
from app.inference.device import batch_to_device  # noqa: E402
from app.inference.gradcam import gradcam_slice, gradcam_study  # noqa: E402
from app.inference.preprocess import preprocess_study  # noqa: E402
from app.inference.weights import create_random_model, load_model  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_forward_backward(loaded, x: torch.Tensor, batch_size: int) -> float:
    """Forward with autograd + backward of the responder logit into all parameters."""
    model = loaded.model
    device = loaded.device
    model.requires_grad_(True)
    try:
        t0 = time.perf_counter()
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size]
            model(batch_to_device(xb, loaded.device_choice))[:, 1].sum().backward()
        _sync(device)
        elapsed = time.perf_counter() - t0
    finally:
        model.zero_grad(set_to_none=True)
        model.requires_grad_(False)
    return elapsed


def bare_forward(loaded, x: torch.Tensor, batch_size: int) -> float:
    """Inference-only forward of the same batches (the stricter yardstick)."""
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size]
            loaded.model(batch_to_device(xb, loaded.device_choice))
    _sync(loaded.device)
    return time.perf_counter() - t0


def measure(loaded, study, batch_size: int, repeats: int, label: str) -> None:
    x = preprocess_study(study, loaded.config).x
    n = len(study.pairs)
    # warm-up
    gradcam_slice(loaded, study, n // 2)
    gradcam_study(loaded, study, batch_size=batch_size)
    bare_forward_backward(loaded, x, batch_size)
    one, whole, bare, fwd = [], [], [], []
    for _ in range(repeats):
        for k in (n // 4, n // 2, (3 * n) // 4):
            t0 = time.perf_counter()
            gradcam_slice(loaded, study, k)
            _sync(loaded.device)
            one.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        cams = gradcam_study(loaded, study, batch_size=batch_size)
        _sync(loaded.device)
        whole.append(time.perf_counter() - t0)
        bare.append(bare_forward_backward(loaded, x, batch_size))
        fwd.append(bare_forward(loaded, x, batch_size))
    shape = next(iter(cams.maps.values())).shape
    print(f"[{label}] device={loaded.device} batch={batch_size} maps {len(cams.maps)} x {shape}")
    print(f"[{label}] gradcam_slice (3 pathways, viewed slice) best {min(one):.3f} s median "
          f"{statistics.median(one):.3f} s  (target <= 0.6 s: {'met' if min(one) <= 0.6 else 'NOT met'})")
    print(f"[{label}] bare forward+backward best {min(bare):.3f} s median {statistics.median(bare):.3f} s")
    print(f"[{label}] gradcam_study          best {min(whole):.3f} s median {statistics.median(whole):.3f} s")
    print(f"[{label}] gradcam_study / bare inference forward = {min(whole) / min(fwd):.3f} "
          f"(bare forward best {min(fwd):.3f} s; stricter yardstick)")
    ratio = min(whole) / min(bare)
    print(f"[{label}] gradcam_study / bare forward+backward = {ratio:.3f}  (target <= 1.3: "
          f"{'met' if ratio <= 1.3 else 'NOT met'})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slices", type=int, default=30)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--shared", action="store_true")
    ap.add_argument("--no-cuda", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    cfg = ModelConfig(backbone=args.backbone, shared_trunk=args.shared)
    study = study_from_arrays(phantom_arrays(args.slices, args.size))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other processes slow every figure)")
    print(f"torch {torch.__version__}, {args.threads} CPU threads, {args.slices} slice triplets of "
          f"{args.size}x{args.size}, {cfg.backbone} {'shared' if cfg.shared_trunk else 'separate'} trunks")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.safetensors"
        create_random_model(path, cfg)
        measure(load_model(path, "cpu"), study, args.batch_size, args.repeats, "cpu")
        if torch.cuda.is_available() and not args.no_cuda:
            gpu = load_model(path, "cuda")
            if gpu.device.type == "cuda":
                print(f"[cuda] {gpu.device_choice.reason}")
                measure(gpu, study, 32, args.repeats, "cuda")
            else:
                print(f"[cuda] not used: {gpu.device_choice.reason}")
        else:
            print("[cuda] no working CUDA device: GPU figures not measured")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
