"""`hcc-response evaluate COHORT.csv --model M [--model2 M2] [--out-dir D] [--json]` and
`hcc-response evaluate COHORT.csv --ablation [...]`.

Evaluation: patient-level (majority vote, mean-probability AUC) and slice-level statistics with
DeLong and bootstrap CIs, DeLong's paired test against ``--model2``, ROC curves as PNG, a JSON
and a text report (:mod:`app.training.evaluate`). When the CSV carries the synthetic
generator's ``p_true``, the cohort's Bayes-optimal AUC is printed beside the model's.

Ablation: trains the paper's grid (:mod:`app.training.ablation`) on the cohort's patient split
and prints tables shaped like the paper's Tables 2 and 3.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.inference.config import ModelConfig
    from app.inference.model import MultiPhaseNet
    from app.training.cam_metrics import CamMassReport
    from app.training.cohort import PreparedCohort


def add_parser(parser: argparse.ArgumentParser) -> None:
    from app.commands.train import add_model_arguments

    parser.add_argument("cohort", type=Path, metavar="COHORT.csv")
    parser.add_argument("--model", type=Path, default=None, metavar="M",
                        help="model file (default: the bundled model)")
    parser.add_argument("--model2", type=Path, default=None, metavar="M2",
                        help="second model for DeLong's paired test")
    parser.add_argument("--out-dir", type=Path, default=None, metavar="D",
                        help="write evaluation.json, evaluation.txt and ROC PNGs here")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-cam-mass", action="store_true",
                        help="skip the Grad-CAM mass figures of cohorts with label maps "
                             "(demo-data --label-maps)")
    a = parser.add_argument_group("ablation (trains one model per variant)")
    a.add_argument("--ablation", action="store_true",
                   help="run the paper's experiment grid on the cohort instead")
    a.add_argument("--grid", default="phases,backbones,attention",
                   help="which grids: phases, backbones, attention (comma-separated)")
    add_model_arguments(parser)


def _load(path: Path | None, device: str) -> tuple[object, object, str]:
    from app.inference.weights import load_bundled_model, load_model

    loaded = load_bundled_model(device="cpu") if path is None else load_model(path, device="cpu")
    return loaded.model, loaded.config, (path.name if path else "bundled model")


def run(args: argparse.Namespace) -> int:
    if args.ablation:
        return _run_ablation(args)
    from app.commands._common import TerminalProgress, print_json, say
    from app.commands.train import prepare
    from app.errors import InputError
    from app.training.dataset import SliceSet
    from app.training.evaluate import (
        cohort_bayes_optimal,
        compare_scored,
        evaluate_scored,
        format_report,
        score_slices,
        write_report,
    )
    from app.training.prepared import PrepareSettings

    model, config, name = _load(args.model, args.device)
    prog = TerminalProgress("preparing")
    cohort, prepared = prepare(args.cohort, PrepareSettings.from_model_config(config),  # type: ignore[arg-type]
                               args.cache_dir, prog, args.workers)
    ss = SliceSet.from_studies(prepared.studies)
    scored = score_slices(model, config, ss, device=args.device)  # type: ignore[arg-type]
    rep = evaluate_scored(scored, n_boot=args.n_boot, seed=args.seed, model_name=name)
    rep.cohort = {"csv": str(args.cohort), "patients": len(prepared.studies),
                  "excluded": [{"patient_id": e.patient_id, "reason": r}
                               for e, r in prepared.failed]}
    notes: list[str] = []
    if not args.no_cam_mass:
        rep.cam_mass, notes = _cam_mass(args, model, config, prepared)  # type: ignore[arg-type]
    rep.bayes = cohort_bayes_optimal(prepared, scored.patient_labels)
    second = None
    if args.model2 is not None:
        model2, config2, name2 = _load(args.model2, args.device)
        if PrepareSettings.from_model_config(config2) != PrepareSettings.from_model_config(config):  # type: ignore[arg-type]
            _c, prepared2 = prepare(args.cohort, PrepareSettings.from_model_config(config2),  # type: ignore[arg-type]
                                    args.cache_dir, prog, args.workers)
            if [e.patient_id for e in prepared2.entries] != [e.patient_id for e in prepared.entries]:
                raise InputError("the two models' preprocessing left different patients usable")
            ss2 = SliceSet.from_studies(prepared2.studies)
        else:
            ss2 = ss
        scored2 = score_slices(model2, config2, ss2, device=args.device)  # type: ignore[arg-type]
        second = evaluate_scored(scored2, n_boot=args.n_boot, seed=args.seed, model_name=name2)
        rep.comparison = compare_scored(scored, scored2)
    if args.out_dir is not None:
        write_report(rep, args.out_dir, second)
    if args.json:
        doc = rep.as_dict()
        if second is not None:
            doc["second_model"] = second.as_dict()
        print_json(doc)
    else:
        say(format_report(rep), end="")
        if second is not None:
            say()
            say(format_report(second), end="")
        for e, r in prepared.failed:
            say(f"excluded {e.patient_id}: {r}")
        for note in notes:
            say(f"Grad-CAM mass: {note}")
    return 0


def _cam_mass(args: argparse.Namespace, model: MultiPhaseNet, config: ModelConfig,
              prepared: PreparedCohort) -> tuple[CamMassReport | None, list[str]]:
    """Grad-CAM mass figures when the cohort's studies carry label maps (else None), and notes
    on studies left out."""
    from app.commands._common import TerminalProgress
    from app.commands.train import default_cache_dir
    from app.synthetic.labelmaps import has_label_maps
    from app.training.cam_metrics import cohort_cam_mass, cohort_label_maps
    from app.training.prepared import PrepareSettings

    if not any(has_label_maps(e.study_dir) for e in prepared.entries):
        return None, []
    labels, notes = cohort_label_maps(prepared.entries, prepared.studies, PrepareSettings.from_model_config(config),
                                      cache_dir=args.cache_dir or default_cache_dir(), workers=args.workers,
                                      progress=TerminalProgress("label maps"))
    report = cohort_cam_mass(model, config.phases, prepared.studies, labels,
                             progress=TerminalProgress("Grad-CAM mass"))
    return report, notes


def _run_ablation(args: argparse.Namespace) -> int:
    import json

    from app.commands._common import TerminalProgress, print_json, say
    from app.commands.train import prepare, train_config_from_args, training_split
    from app.errors import InputError
    from app.training.ablation import GRIDS, build_grid, format_tables, run_ablation
    from app.training.prepared import PrepareSettings

    grids = tuple(g.strip() for g in args.grid.split(",") if g.strip())
    bad = [g for g in grids if g not in GRIDS]
    if bad:
        raise InputError(f"unknown grid(s) {', '.join(bad)}; choose from {', '.join(GRIDS)}")
    base = train_config_from_args(args)
    _cohort, prepared = prepare(args.cohort, PrepareSettings.from_model_config(base.model),
                                args.cache_dir, TerminalProgress("preparing"), args.workers)
    data = training_split(args, prepared)
    variants = build_grid(grids, base.model.backbone)
    res = run_ablation(data, base, variants, n_boot=args.n_boot, seed=args.seed,
                       progress=TerminalProgress("ablation"))
    text = format_tables(res)
    if args.out_dir is not None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        (args.out_dir / "ablation.json").write_text(json.dumps(res.as_dict(), indent=1),
                                                    encoding="utf-8")
        (args.out_dir / "ablation.txt").write_text(text, encoding="utf-8")
    if args.json:
        print_json(res.as_dict())
    else:
        say(text, end="")
    return 0
