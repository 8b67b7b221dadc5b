"""How much predict() costs beyond the network itself, on the CPU (2 threads) and on CUDA.

Usage::

    .venv/bin/python bench/predict_speed.py [--slices 30] [--size 512] [--threads 2]
                                            [--repeats 3] [--shared] [--backbone resnet18]
                                            [--model FILE]

Builds a three-phase study of ``--slices`` phantom-like 512 × 512 HU slices per phase, writes a
random-initialised model file and loads it as the app does, then times, interleaved:

- ``bare``: the same network on the same already-preprocessed tensors, in the same batches,
  under ``torch.inference_mode()`` — nothing else;
- ``predict``: :func:`app.inference.predictor.predict` end to end (preprocessing from HU,
  batching, progress/cancel checks, voting, result).

Prints the best of ``--repeats`` for each and the ratio predict / bare (target ≤ 1.25). When CUDA
works it repeats on the GPU, prints absolute times (target: prediction + whole-study Grad-CAM
< 1 s, model load excluded) and checks that fp16 autocast gives the same slice labels as fp32.
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

from app.inference.gradcam import gradcam_study  # noqa: E402
from app.inference.predictor import predict  # noqa: E402
from app.inference.preprocess import preprocess_study  # noqa: E402
from app.inference.weights import load_model  # noqa: E402
from bench._speed import bare_forward, speed_arguments, speed_setup, sync  # noqa: E402


def measure(loaded, study, batch_size: int, repeats: int, label: str) -> dict[str, float]:
    x = preprocess_study(study, loaded.config).x
    amp = loaded.device.type == "cuda"
    # warm-up: allocator, cuDNN autotuning, first-call overheads
    bare_forward(loaded, x, batch_size, torch.float16 if amp else None)
    predict(study, loaded, batch_size=batch_size)
    bare, pred = [], []
    result = None
    for r in range(repeats):
        # alternate the order so that a load spike from other processes hits both alike
        for which in (("bare", "predict") if r % 2 == 0 else ("predict", "bare")):
            if which == "bare":
                bare.append(bare_forward(loaded, x, batch_size, torch.float16 if amp else None))
            else:
                t0 = time.perf_counter()
                result = predict(study, loaded, batch_size=batch_size)
                sync(loaded.device)
                pred.append(time.perf_counter() - t0)
    assert result is not None
    print(f"[{label}] device={result.device} precision={result.precision} batch={batch_size} "
          f"slices={result.total_votes}")
    print(f"[{label}] bare forward     best {min(bare):7.3f} s  median {statistics.median(bare):7.3f} s")
    print(f"[{label}] predict()        best {min(pred):7.3f} s  median {statistics.median(pred):7.3f} s "
          f"(preprocess {result.timings['preprocess']:.3f} s, forward {result.timings['forward']:.3f} s)")
    ratio = min(pred) / min(bare)
    print(f"[{label}] predict / bare forward = {ratio:.3f}  (target <= 1.25: "
          f"{'met' if ratio <= 1.25 else 'NOT met'})")
    return {"bare": min(bare), "predict": min(pred), "ratio": ratio}


def main() -> int:
    args = speed_arguments(__doc__, 16)
    with tempfile.TemporaryDirectory() as tmp:
        path, study = speed_setup(args, Path(tmp))
        t0 = time.perf_counter()
        cpu = load_model(path, "cpu")
        print(f"model load (CPU) {time.perf_counter() - t0:.3f} s, file {path.stat().st_size / 1e6:.1f} MB")
        measure(cpu, study, args.batch_size, args.repeats, "cpu")

        if torch.cuda.is_available() and not args.no_cuda:
            gpu = load_model(path, "cuda")
            if gpu.device.type != "cuda":
                print(f"[cuda] not used: {gpu.device_choice.reason}")
                return 0
            print(f"[cuda] {gpu.device_choice.reason}")
            measure(gpu, study, 64, args.repeats, "cuda")
            # fp16 autocast must give the same labels as fp32
            r32 = predict(study, gpu, precision="fp32")
            r16 = predict(study, gpu, precision="auto")
            same = [a.label for a in r32.slices] == [b.label for b in r16.slices]
            diff = max(abs(a.probability - b.probability) for a, b in zip(r32.slices, r16.slices, strict=True))
            print(f"[cuda] fp16 vs fp32: same slice labels {same}, same patient label "
                  f"{r32.label == r16.label}, max |dp| {diff:.2e}")
            # absolute: prediction + whole-study Grad-CAM, model already loaded
            gradcam_study(gpu, study)  # warm-up
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                predict(study, gpu)
                gradcam_study(gpu, study)
                sync(gpu.device)
                times.append(time.perf_counter() - t0)
            print(f"[cuda] predict + whole-study Grad-CAM best {min(times):.3f} s median "
                  f"{statistics.median(times):.3f} s (target < 1 s: {'met' if min(times) < 1 else 'NOT met'})")
        else:
            print("[cuda] no working CUDA device: GPU figures not measured")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
