"""`hcc-response train COHORT.csv --out MODEL.safetensors` — train a model on a labelled cohort.

Every study goes through the app's own scan → assembly → preprocessing (cached under
``--cache-dir``), is split by patient (the CSV's ``split`` column, else stratified and seeded),
and the paper's recipe trains the network (:mod:`app.training.trainer`). The model file carries
its description: recipe, data summary, validation metrics and, with ``--test``, held-out test
metrics. Under ``torchrun --nproc_per_node N -m app train ...`` the same command trains
data-parallel; only rank 0 writes files and prints.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

WEIGHTS_KIND_CHOICES = {"synthetic": "trained on synthetic phantoms", "site": "site-trained"}


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Architecture, preprocessing and recipe options shared by ``train`` and the ablation."""
    from app.inference.config import BACKBONES, CROP_POLICIES, HEADS, TRAIN_AGGREGATIONS

    m = parser.add_argument_group("model")
    m.add_argument("--phases", default="plain,arterial,portal",
                   help="comma-separated phases the model reads (default all three)")
    m.add_argument("--backbone", choices=BACKBONES, default="resnet18")
    m.add_argument("--no-attention", action="store_true", help="no self-attention across phases")
    m.add_argument("--shared-trunk", action="store_true",
                   help="one trunk for all phases with phase-specific BatchNorm (1/3 of the size)")
    m.add_argument("--input-size", type=int, default=224, metavar="PX",
                   help="network input side in pixels (paper 224)")
    m.add_argument("--crop", choices=CROP_POLICIES, default="none")
    m.add_argument("--head", choices=HEADS, default="paper",
                   help="paper: pooling, attention, two FC layers; lesion: segmentation head "
                        "whose lesion mask pools each phase (needs label maps; not the paper)")
    m.add_argument("--liver-gate", action="store_true",
                   help="lesion head: count as tumour only what the segmentation connects to the "
                        "segmented liver (HCC is intrahepatic; blobs elsewhere neither vote nor "
                        "feed the response)")
    m.add_argument("--aggregation", choices=TRAIN_AGGREGATIONS, default="vote",
                   help="patient result from the slices: vote (paper) or lesion_weighted "
                        "(lesion head: slices showing tumour vote, score weighted by its area); a patient "
                        "head is added after training by fit-patient-head")
    m.add_argument("--extra-channels", type=int, default=128, metavar="C",
                   help="channels of the extra layers / per-phase feature (paper: not stated)")
    m.add_argument("--hidden", type=int, default=128, help="width of the first FC layer")
    m.add_argument("--dropout", type=float, default=0.5, help="dropout before each FC layer (paper 0.5)")
    r = parser.add_argument_group("recipe (defaults: the paper's)")
    r.add_argument("--max-iterations", type=int, default=13000, metavar="N")
    r.add_argument("--epochs", type=int, default=None, metavar="N", help="at most N epochs")
    r.add_argument("--max-minutes", type=float, default=None, metavar="MIN",
                   help="time budget of the training loop: no epoch is started that would end "
                        "after it (the best validated epoch is kept)")
    r.add_argument("--batch-size", type=int, default=20, metavar="B", help="global batch")
    r.add_argument("--lr", type=float, default=1e-4)
    r.add_argument("--lr-halve-every", type=int, default=50, metavar="EPOCHS")
    r.add_argument("--weight-decay", type=float, default=0.0, metavar="WD",
                   help="Adam L2 weight decay (paper: none stated)")
    r.add_argument("--val-fraction", type=float, default=0.4,
                   help="share of patients for validation when the CSV has no split column")
    r.add_argument("--early-stop-on", choices=("loss", "accuracy", "auc"), default="loss")
    r.add_argument("--patience", type=int, default=20, metavar="EPOCHS")
    r.add_argument("--slices-per-patient", type=int, default=None, metavar="K",
                   help="draw K triplets per patient per epoch (default: all)")
    r.add_argument("--val-slices-per-patient", type=int, default=None, metavar="K",
                   help="validate on K evenly spaced triplets per patient (default: all)")
    r.add_argument("--soft-target-column", default=None, metavar="COLUMN",
                   help="train towards this CSV column's probability of response instead of "
                        "the 0/1 label (e.g. the synthetic generator's p_true); validation and "
                        "test metrics still use the label")
    r.add_argument("--class-weighting", action="store_true",
                   help="weight the loss by inverse class frequency")
    r.add_argument("--no-augment", action="store_true")
    r.add_argument("--init", choices=("random", "phantom"), default="random",
                   help="random, or phantom: start from the shipped demo model's CT trunk "
                        "(same backbone and extra layers needed)")
    r.add_argument("--seg-weight", type=float, default=1.0,
                   help="weight of the segmentation loss of a lesion-head model")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    r.add_argument("--cache-dir", type=Path, default=None,
                   help="where prepared studies are cached (default: per-user cache)")
    r.add_argument("--workers", type=int, default=0, metavar="N",
                   help="processes preparing studies not yet in the cache (default 0: one per "
                        "core, at most 8)")


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cohort", type=Path, metavar="COHORT.csv",
                        help="CSV with patient_id, study_dir, responder [, recist, split]")
    parser.add_argument("--out", type=Path, required=True, metavar="MODEL.safetensors")
    add_model_arguments(parser)
    o = parser.add_argument_group("output")
    o.add_argument("--resume", type=Path, default=None, metavar="CKPT",
                   help="continue from a checkpoint (<out>.ckpt.safetensors by default name)")
    o.add_argument("--checkpoint", type=Path, default=None, metavar="CKPT",
                   help="checkpoint path (default <out without suffix>.ckpt)")
    o.add_argument("--test", type=Path, default=None, metavar="TEST.csv",
                   help="held-out test cohort evaluated after training (metrics go into the "
                        "model description)")
    o.add_argument("--choose-threshold", action="store_true",
                   help="choose the decision threshold (balanced sensitivity/specificity) on the "
                        "validation patients instead of the paper's 0.5")
    o.add_argument("--threshold-cohort", type=Path, default=None, metavar="CALIB.csv",
                   help="choose the decision threshold on this separate cohort (implies "
                        "--choose-threshold; never the test cohort)")
    o.add_argument("--half", action="store_true", help="store the weights as float16")
    o.add_argument("--name", default="hcc-response-model")
    o.add_argument("--model-version", default="1")
    o.add_argument("--weights-kind", choices=sorted(WEIGHTS_KIND_CHOICES), default="site")
    o.add_argument("--notes", default="", help="free text added to the model description")
    o.add_argument("--json", action="store_true", help="print the summary as JSON")


def default_cache_dir() -> Path:
    from app.paths import user_data_dir

    d = user_data_dir() / "training-cache"
    d.mkdir(parents=True, exist_ok=True)
    return d


def train_config_from_args(args: argparse.Namespace) -> Any:
    from app.inference.config import ModelConfig
    from app.training.augment import AugmentConfig
    from app.training.trainer import TrainConfig

    phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    model = ModelConfig(phases=phases, backbone=args.backbone, attention=not args.no_attention,
                        shared_trunk=args.shared_trunk, input_size=args.input_size,
                        crop=args.crop, head=args.head, liver_gate=args.liver_gate,
                        aggregation=args.aggregation,
                        extra_channels=args.extra_channels, hidden=args.hidden,
                        dropout=args.dropout)
    return TrainConfig(
        model=model, max_iterations=args.max_iterations, max_epochs=args.epochs,
        max_minutes=args.max_minutes,
        batch_size=args.batch_size, lr=args.lr, lr_halve_every_epochs=args.lr_halve_every,
        weight_decay=args.weight_decay,
        early_stop_on=args.early_stop_on, patience_epochs=args.patience,
        class_weighting=args.class_weighting,
        augment=AugmentConfig(enabled=not args.no_augment), device=args.device, seed=args.seed,
        slices_per_patient=args.slices_per_patient,
        val_slices_per_patient=args.val_slices_per_patient,
        soft_target_column=args.soft_target_column, seg_weight=args.seg_weight,
        init=args.init)


def prepare(csv_path: Path, settings: Any, cache_dir: Path | None, progress: Any,
            workers: int = 1) -> Any:
    """Read the cohort CSV and prepare every study (cached); refuse when none is usable."""
    from app.errors import InputError
    from app.training.cohort import prepare_cohort, read_cohort

    cohort = read_cohort(csv_path)
    prepared = prepare_cohort(cohort.entries, settings, cache_dir=cache_dir or default_cache_dir(),
                              progress=progress, workers=workers)
    if not prepared.studies:
        reasons = "; ".join(f"{e.patient_id}: {r}" for e, r in prepared.failed[:3])
        raise InputError(f"no study of {csv_path.name} could be prepared ({reasons})")
    return cohort, prepared


def training_split(args: argparse.Namespace, prepared: Any) -> Any:
    """Training/validation split of a prepared cohort, with soft targets where asked for."""
    from app.training.cohort import attach_soft_targets
    from app.training.dataset import split_prepared

    if args.soft_target_column is not None:
        attach_soft_targets(prepared, args.soft_target_column)
    return split_prepared(prepared, args.val_fraction, args.seed)


def run(args: argparse.Namespace) -> int:

    from app.commands._common import TerminalProgress, print_json, say
    from app.inference.weights import ModelDescription, save_model
    from app.training.prepared import PrepareSettings
    from app.training.trainer import train, with_overrides

    rank = int(os.environ.get("RANK", "0"))
    cfg = train_config_from_args(args)
    settings = PrepareSettings.from_model_config(cfg.model)
    quiet = rank != 0
    prog = TerminalProgress("preparing", enabled=not quiet)
    workers = args.workers
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if workers == 0 and world > 1:  # every rank prepares: share the cores between them
        from app.parallel import resolve_workers

        workers = max(resolve_workers(0) // world, 1)
    cohort, prepared = prepare(args.cohort, settings, args.cache_dir, prog, workers)
    for e, reason in prepared.failed:
        if not quiet:
            say(f"excluded {e.patient_id} (line {e.row}): {reason}", err=True)
    data = training_split(args, prepared)
    ckpt = args.checkpoint or args.out.with_name(args.out.stem + ".ckpt")
    res = train(cfg, data, TerminalProgress("training", enabled=not quiet), checkpoint=ckpt,
                resume=args.resume)
    if rank != 0:
        return 0

    metrics: dict[str, Any] = {"validation": res.summary().get("best_epoch_metrics")}
    if args.choose_threshold or args.threshold_cohort is not None:
        choice = threshold_for(args, res.model, cfg.model, data, workers)
        cfg = with_overrides(cfg, threshold=choice.threshold)
        res.model.config = cfg.model  # type: ignore[assignment]
        metrics["threshold"] = choice.as_dict()
        say(f"decision threshold {choice.threshold:g} (sensitivity {choice.sensitivity:.2f}, "
            f"specificity {choice.specificity:.2f} on {choice.chosen_on})")
    test_doc: dict[str, Any] | None = None
    if args.test is not None:
        test_doc = evaluate_on(args.test, res.model, cfg.model, args.cache_dir, args.device,
                               seed=args.seed, workers=workers)
        metrics["test"] = test_doc
    training_data = {"cohort": cohort.summary(), "prepared": prepared.summary(),
                     "split": data.summary(),
                     "needs_confirmation": sum(
                         1 for s in prepared.studies if any(w.startswith("needs confirmation")
                                                            for w in s.warnings))}
    desc = ModelDescription(
        name=args.name, version=args.model_version,
        weights_kind=WEIGHTS_KIND_CHOICES[args.weights_kind],
        training_data=training_data, metrics=metrics,
        notes=describe_recipe(cfg, res)
        + (" " + args.notes if args.notes else ""))
    sha = save_model(res.model, cfg.model, desc, args.out, half=args.half)  # type: ignore[arg-type]
    summary = {"model": str(args.out), "sha256": sha, "training": res.summary(),
               "data": training_data, "test": test_doc}
    if args.json:
        print_json(summary)
    else:
        say(f"wrote {args.out} (SHA-256 {sha[:16]}…)")
        s = res.summary()
        say(f"trained {s['iterations']} iterations in {s['seconds']:.0f} s on {s['device']}; "
              f"best epoch {s['best_epoch']} ({cfg.early_stop_on} {s['best_metric']}); "
              f"{s['stopped']}")
        if test_doc:
            say(format_test_line(test_doc))
    return 0


def threshold_for(args: argparse.Namespace, model: Any, model_config: Any, data: Any,
                  workers: int) -> Any:
    """The decision threshold chosen on ``--threshold-cohort`` or the validation patients."""
    from app.errors import InputError
    from app.progress import NULL_PROGRESS
    from app.training.dataset import SliceSet
    from app.training.evaluate import score_slices
    from app.training.prepared import PrepareSettings
    from app.training.threshold import choose_threshold

    if args.threshold_cohort is not None:
        _c, prepared = prepare(args.threshold_cohort, PrepareSettings.from_model_config(model_config),
                               args.cache_dir, NULL_PROGRESS, workers)
        ss, where = SliceSet.from_studies(prepared.studies), f"calibration cohort {args.threshold_cohort.name}"
    elif data.val is not None:
        ss, where = data.val, "the validation patients"
    else:
        raise InputError("--choose-threshold needs validation patients (or --threshold-cohort)")
    scored = score_slices(model, model_config, ss, device=args.device)
    try:
        return choose_threshold(scored, f"{where} ({ss.n_patients} patients)")
    except ValueError as exc:
        raise InputError(f"cannot choose a threshold on {where}: {exc}") from exc


def describe_recipe(cfg: Any, res: Any) -> str:
    m = cfg.model
    target = (f"soft targets (the cohort's {cfg.soft_target_column!r} column; metrics use the "
              "0/1 label)" if cfg.soft_targets else "0/1 labels")
    return (f"Trained with Adam, batch {cfg.batch_size}, lr {cfg.lr:g} halved every "
            f"{cfg.lr_halve_every_epochs} epochs, weight decay {cfg.weight_decay:g}, "
            f"{target} as the training target, at most {cfg.max_iterations} iterations "
            f"({res.iterations} run, stopped: {res.stopped}), early stopping on validation "
            f"{cfg.early_stop_on}, augmentation {'on' if cfg.augment.enabled else 'off'}, seed "
            f"{cfg.seed}. Architecture: {m.backbone}, "
            f"{'shared trunk with phase-specific BatchNorm' if m.shared_trunk else 'separate trunks'}"
            f", attention {'on' if m.attention else 'off'}, input {m.input_size} px, phases "
            f"{', '.join(m.phases)}; no ImageNet initialisation.")


def score_cohort(csv_path: Path, model: Any, model_config: Any, cache_dir: Path | None,
                 device: str, *, workers: int = 1, progress: Any = None) -> tuple[Any, Any]:
    """Prepare a cohort CSV for ``model_config`` and score every slice triplet:
    ``(ScoredCohort, PreparedCohort)`` — the one path of evaluation, threshold and patient-head
    fitting from a CSV to scores."""
    from app.progress import NULL_PROGRESS
    from app.training.dataset import SliceSet
    from app.training.evaluate import score_slices
    from app.training.prepared import PrepareSettings

    _cohort, prepared = prepare(csv_path, PrepareSettings.from_model_config(model_config),
                                cache_dir, progress or NULL_PROGRESS, workers)
    scored = score_slices(model, model_config, SliceSet.from_studies(prepared.studies), device=device,
                          progress=progress or NULL_PROGRESS)
    return scored, prepared


def evaluate_on(csv_path: Path, model: Any, model_config: Any, cache_dir: Path | None,
                device: str, *, seed: int = 0, n_boot: int = 1000, workers: int = 1
                ) -> dict[str, Any]:
    """Patient-level evaluation of ``model`` on a cohort CSV (plus the Bayes-optimal AUC when
    the CSV carries the generator's ``p_true``)."""
    from app.training.evaluate import cohort_bayes_optimal, evaluate_scored

    scored, prepared = score_cohort(csv_path, model, model_config, cache_dir, device, workers=workers)
    rep = evaluate_scored(scored, n_boot=n_boot, seed=seed, model_name=csv_path.name)
    rep.bayes = cohort_bayes_optimal(prepared, scored.patient_labels)
    iv = rep.patient.bootstrap.intervals
    return {"cohort": str(csv_path), "patients": rep.patient.n, "responders": rep.patient.n_pos,
            "excluded": len(prepared.failed),
            "patient_auc": rep.patient.auc.as_dict(),
            **{k: iv[k].as_dict() for k in ("accuracy", "sensitivity", "specificity",
                                            "precision", "f1")},
            "slice_auc": rep.slice.auc.as_dict(), "bayes_optimal": rep.bayes}


def format_test_line(doc: dict[str, Any]) -> str:
    a = doc["patient_auc"]
    line = (f"held-out test ({doc['patients']} patients): AUC {a['auc']:.3f} "
            f"(95 % CI {a['ci_low']:.3f}–{a['ci_high']:.3f})")
    b = doc.get("bayes_optimal")
    if b:
        line += f"; Bayes-optimal AUC {b['auc']:.3f}; ratio {a['auc'] / b['auc']:.3f}"
    return line
