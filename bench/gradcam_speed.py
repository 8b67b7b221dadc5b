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

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.inference.device import batch_to_device  # noqa: E402
from app.inference.gradcam import gradcam_slice, gradcam_study  # noqa: E402
from app.inference.preprocess import preprocess_study  # noqa: E402
from app.inference.weights import load_model  # noqa: E402
from bench._speed import bare_forward, speed_arguments, speed_setup, sync  # noqa: E402


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
        sync(device)
        elapsed = time.perf_counter() - t0
    finally:
        model.zero_grad(set_to_none=True)
        model.requires_grad_(False)
    return elapsed


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
            sync(loaded.device)
            one.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        cams = gradcam_study(loaded, study, batch_size=batch_size)
        sync(loaded.device)
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
    args = speed_arguments(__doc__, 8)
    with tempfile.TemporaryDirectory() as tmp:
        path, study = speed_setup(args, Path(tmp))
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
