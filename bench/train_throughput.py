"""Training throughput with the input pipeline vs bare forward + backward + step.

    .venv/bin/python bench/train_throughput.py [--device cpu|cuda] [--input-size 64]
        [--backbone resnet18] [--separate-trunks] [--batch-size 20] [--iterations 20]
        [--rounds 3]

Pipeline: :func:`app.training.trainer.train` itself on an in-memory slice set (the form the
prepared-study cache takes: float16 triplets), with index gathering, device transfer, batched
augmentation, mixed precision/channels-last on CUDA — triplets per second over its training
epochs (validation off). Bare: the same network, batch and optimizer stepping on one pre-made
tensor already on the device. The ratio pipeline / bare should be >= 0.8 (the input pipeline
is not the bottleneck).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from app.inference.config import ModelConfig
from app.inference.model import build_model
from app.training.augment import AugmentConfig
from app.training.cohort import CohortEntry, PreparedCohort
from app.training.dataset import SliceSet, SplitData
from app.training.lesion_loss import lesion_loss
from app.training.prepared import PreparedStudy
from app.training.trainer import TrainConfig, resolve_device, train


def _data(n_patients: int, slices: int, size: int, seg: bool = False) -> SplitData:
    rng = np.random.default_rng(0)
    studies = [PreparedStudy(f"p{i}", i % 3 == 0,
                             rng.random((slices, 3, size, size), dtype=np.float32).astype(np.float16),
                             np.arange(slices, dtype=float),
                             seg=rng.integers(0, 4, (slices, 3, size, size), dtype=np.uint8) if seg else None)
               for i in range(n_patients)]
    pc = PreparedCohort(studies, [CohortEntry(s.patient_id, Path("."), int(s.label)) for s in studies])
    return SplitData(SliceSet.from_studies(pc.studies), None, "bench")


def bare(model_cfg: ModelConfig, cfg: TrainConfig, iterations: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = build_model(model_cfg).to(device).train()
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    x = torch.rand(cfg.batch_size, model_cfg.n_phases, 1, model_cfg.input_size,
                   model_cfg.input_size, device=device)
    y = torch.randint(0, 2, (cfg.batch_size,), device=device)
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16

    seg = torch.randint(0, 4, (cfg.batch_size, model_cfg.n_phases, model_cfg.input_size,
                               model_cfg.input_size), device=device)

    def step() -> None:
        with torch.autocast(device_type=device.type, dtype=dtype, enabled=cuda):
            if model_cfg.head == "lesion":  # the lesion recipe's loss: segmentation + response
                loss = lesion_loss(model(x, details=True), y, seg, None, cfg.seg_weight)
            else:
                loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iterations):
        step()
    if cuda:
        torch.cuda.synchronize()
    return cfg.batch_size * iterations / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--input-size", type=int, default=64)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--separate-trunks", action="store_true")
    ap.add_argument("--head", choices=("paper", "lesion"), default="paper",
                    help="lesion: the lesion recipe's model (64 extra channels, hidden 64); the "
                         "bare step then includes the segmentation loss")
    ap.add_argument("--batch-size", type=int, default=20)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    lesion = dict(head="lesion", aggregation="lesion_weighted", extra_channels=64, hidden=64) \
        if args.head == "lesion" else {}
    mcfg = ModelConfig(backbone=args.backbone, shared_trunk=not args.separate_trunks,
                       input_size=args.input_size, **lesion)  # type: ignore[arg-type]
    # enough triplets for two epochs of the requested iterations, so epoch overhead counts
    per_epoch = max(1, args.iterations // 2)
    n_patients = max(4, per_epoch * args.batch_size // 10 + 1)
    data = _data(n_patients, 10, args.input_size, seg=args.head == "lesion")
    cfg = TrainConfig(model=mcfg, max_iterations=args.iterations, batch_size=args.batch_size,
                      lr=1e-4, device=str(device),
                      augment=AugmentConfig(enabled=args.head != "lesion"))  # the lesion recipe: --no-augment
    # Pipeline and bare runs alternate round by round, so that a change in machine load (the
    # CPU may be shared) hits both alike; the median ratio over the rounds is the figure.
    # Each pipeline figure covers whole epochs including the first (warm-up), which can only
    # make the pipeline look slower, never faster.
    ratios, pipes, bares = [], [], []
    for r in range(args.rounds):
        res = train(cfg, data)
        b = bare(mcfg, cfg, args.iterations, device)
        pipes.append(res.triplets_per_second)
        bares.append(b)
        ratios.append(res.triplets_per_second / b)
        print(f"round {r + 1}: pipeline {res.triplets_per_second:7.1f} triplets/s, bare "
              f"{b:7.1f} triplets/s, ratio {ratios[-1]:.2f}", flush=True)
    print(f"device {device}; {args.backbone} {'separate' if args.separate_trunks else 'shared'} "
          f"trunk, input {args.input_size} px, batch {args.batch_size}, "
          f"{args.iterations} iterations per run, torch threads {torch.get_num_threads()}")
    print(f"pipeline (cached slices + augmentation + loader + step): median "
          f"{float(np.median(pipes)):8.1f} triplets/s")
    print(f"bare forward + backward + step:                          median "
          f"{float(np.median(bares)):8.1f} triplets/s = {args.batch_size / float(np.median(bares)):.2f} "
          f"s per step of batch {args.batch_size} ({args.head} head)")
    print(f"ratio pipeline / bare: median {float(np.median(ratios)):.2f} over {args.rounds} "
          f"rounds (target >= 0.8)")


if __name__ == "__main__":
    main()
