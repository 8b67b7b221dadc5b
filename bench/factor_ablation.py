"""What in the paper's training setup costs the AUC? One factor at a time, on identical inputs.

    .venv/bin/python bench/factor_ablation.py COHORT.csv [--input-size 64] [--iterations 300] \
        [--val-fraction 0.2] [--cache-dir DIR] [--workers N] [--only NAME,...]

Issue 15 asked for it: the project's paper-architecture setup (ResNet-18 shared trunk with
phase-specific BatchNorm, self-attention, two FC layers with dropout 0.5, class-weighted loss,
0/1 labels, the slices' majority vote) learnt nothing where a small plain CNN learnt something.
Each row below trains that setup with ONE factor changed towards the small plain CNN, on the
same patients, the same prepared inputs (body crop), the same seed and the same number of
iterations (not minutes: a loaded machine must not change the comparison), and reports the
validation patients' AUC of the mean slice probability (DeLong CI) and, for the vote-vs-mean
factor, the vote's sensitivity and specificity at 0.5. The last row is the small plain CNN with
every factor changed. Validation patients choose the epoch, as in the paper's protocol, which
flatters every row alike: compare rows, not absolute values.

The generator's ``p_true`` column is needed for the soft-target rows (synthetic cohorts only).
Results and the command that produced them: docs/learning.md, "Factor ablation".
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from app.commands.train import prepare  # noqa: E402
from app.inference.config import ModelConfig  # noqa: E402
from app.progress import NULL_PROGRESS  # noqa: E402
from app.training.augment import AugmentConfig  # noqa: E402
from app.training.cohort import attach_soft_targets  # noqa: E402
from app.training.dataset import split_prepared  # noqa: E402
from app.training.evaluate import evaluate_scored, score_slices  # noqa: E402
from app.training.prepared import PrepareSettings  # noqa: E402
from app.training.trainer import TrainConfig, train  # noqa: E402

#: name → (model overrides, train overrides, soft targets). The trainer uses the slice sets' soft
#: targets only when ``soft_target_column`` is set, hence both.
VARIANTS: dict[str, tuple[dict[str, object], dict[str, object], bool]] = {
    "paper setup (today)": ({}, {}, False),
    "soft targets (p_true)": ({}, {"soft_target_column": "p_true"}, True),
    "no class weighting": ({}, {"class_weighting": False}, False),
    "no self-attention": ({"attention": False}, {}, False),
    "light head (hidden 64, dropout 0.1)": ({"hidden": 64, "dropout": 0.1}, {}, False),
    "small CT trunk instead of ResNet-18": ({"backbone": "small", "extra_channels": 64}, {}, False),
    "small plain CNN (all of the above)": ({"backbone": "small", "extra_channels": 64, "attention": False,
                                            "hidden": 64, "dropout": 0.1},
                                           {"class_weighting": False, "soft_target_column": "p_true"}, True),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cohort", type=Path, metavar="COHORT.csv")
    ap.add_argument("--input-size", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default=None, help="comma-separated variant names (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    base_model = ModelConfig(backbone="resnet18", shared_trunk=True, input_size=args.input_size, crop="body")
    base = TrainConfig(model=base_model, max_iterations=args.iterations, batch_size=args.batch_size,
                       lr=args.lr, lr_halve_every_epochs=10, early_stop_on="auc", patience_epochs=1000,
                       class_weighting=True, augment=AugmentConfig(enabled=False), device="cpu", seed=0,
                       slices_per_patient=4, val_slices_per_patient=8)
    t0 = time.perf_counter()
    _c, prepared = prepare(args.cohort, PrepareSettings.from_model_config(base_model), args.cache_dir,
                           NULL_PROGRESS, args.workers)
    hard = split_prepared(prepared, args.val_fraction, 0)
    attach_soft_targets(prepared, "p_true")
    soft = split_prepared(prepared, args.val_fraction, 0)
    assert hard.val is not None and soft.val is not None
    print(f"{args.cohort.parent.name}: {hard.train.n_patients} training / {hard.val.n_patients} validation "
          f"patients, {args.input_size} px body crop, {args.iterations} iterations of batch "
          f"{args.batch_size}, lr {args.lr:g}, seed 0 (prepared in {time.perf_counter() - t0:.0f} s)\n")
    print("| variant | val. AUC (95 % CI) | vote sens. / spec. at 0.5 | best epoch | train s |")
    print("| --- | --- | --- | --- | --- |")
    chosen = [v.strip() for v in args.only.split(",")] if args.only else list(VARIANTS)
    for name in chosen:
        model_kw, train_kw, use_soft = VARIANTS[name]
        cfg = dataclasses.replace(base, model=dataclasses.replace(base_model, **model_kw), **train_kw)  # type: ignore[arg-type]
        data = soft if use_soft else hard
        res = train(cfg, data, NULL_PROGRESS)
        assert data.val is not None
        rep = evaluate_scored(score_slices(res.model, cfg.model, data.val), n_boot=200, model_name=name)
        a, iv = rep.patient.auc, rep.patient.bootstrap.intervals
        print(f"| {name} | {a.auc:.3f} ({a.ci_low:.3f}–{a.ci_high:.3f}) | "
              f"{iv['sensitivity'].value:.2f} / {iv['specificity'].value:.2f} | {res.best_epoch} | "
              f"{res.seconds:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
