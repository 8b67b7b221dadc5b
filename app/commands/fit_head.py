"""`hcc-response fit-patient-head FIT.csv --model M --out OUT [--calibration CAL.csv] [--test TEST.csv]`.

Gives a trained lesion-head model a patient head (:mod:`app.inference.patient_head`): scores
the FIT cohort with the model, fits the logistic regression on its patients' features, chooses
the patient call's threshold on the CALIBRATION cohort (or on out-of-fold probabilities), and
writes a new model file whose aggregation is ``patient_head``. The network's weights are copied
unchanged. With ``--test`` the held-out figures in the model card are recomputed with the head
(the test cohort is used for nothing else). A site fits the head on its own labelled cohort in
minutes, without retraining the network.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cohort", type=Path, metavar="FIT.csv",
                        help="labelled cohort the regression is fitted on")
    parser.add_argument("--model", type=Path, default=None, metavar="M",
                        help="lesion-head model file (default: the bundled model)")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT",
                        help="model file to write (with its .sha256)")
    parser.add_argument("--calibration", type=Path, default=None, metavar="CAL.csv",
                        help="labelled cohort the threshold is chosen on (default: out-of-fold "
                             "probabilities of FIT)")
    parser.add_argument("--test", type=Path, default=None, metavar="TEST.csv",
                        help="held-out cohort: its figures go into the model card")
    parser.add_argument("--soft-target-column", default=None, metavar="COLUMN",
                        help="fit the regression towards this probability column of FIT.csv "
                             "instead of the 0/1 label (synthetic cohorts: p_true); the threshold "
                             "and every AUC still use the label")
    parser.add_argument("--features", default="measures",
                        help="a feature set — measures (default: every measure of the tumour, "
                             "not the network's own score, which is optimistic on the patients "
                             "it trained on), all, first (model 2026.4's eleven) — or "
                             "comma-separated feature names (app/inference/patient_head.py)")
    parser.add_argument("--model-version", default=None, help="version of the new file (default: the model's)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="prepared-study cache")
    parser.add_argument("--workers", type=int, default=1, help="processes preparing studies")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--full-precision", action="store_true",
                        help="write float32 weights (default: float16, as the shipped model)")
    parser.add_argument("--json", action="store_true", help="print the fit as JSON")


def chosen_features(text: str, phases: tuple[str, ...]) -> list[str]:
    """``--features``: a set's name (:data:`~app.inference.patient_head.FEATURE_SETS`) or a
    comma-separated list of the features the model's ``phases`` give."""
    from app.errors import InputError
    from app.inference.patient_head import FEATURE_SETS, feature_names, named_features

    if text.strip() in FEATURE_SETS:
        return list(named_features(text.strip(), phases))
    names = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in names if f not in feature_names(phases)]
    if not names or unknown:
        raise InputError(f"--features: {'unknown feature(s) ' + ', '.join(unknown) if unknown else 'none given'}; "
                         f"name a feature set ({', '.join(FEATURE_SETS)}) or some of "
                         f"{', '.join(feature_names(phases))}")
    return names


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from app.commands._common import TerminalProgress, print_json, say
    from app.commands.train import evaluate_on, format_test_line, score_cohort
    from app.errors import InputError
    from app.inference.weights import (
        default_model_path,
        load_model,
        recorded_sha256,
        save_model,
        write_sha256_file,
    )
    from app.training.cohort import CohortError, PreparedCohort, probability_column
    from app.training.evaluate import ScoredCohort
    from app.training.patient_head_fit import HeadFitError, fit_patient_head, network_only

    source = args.model if args.model is not None else default_model_path()
    if not source.is_file():
        raise InputError(f"no model file at {source}")
    # unfolded: the file written keeps the network's BatchNorm as it was trained
    loaded = load_model(source, "cpu", expected_sha256=recorded_sha256(source), fold=False)
    config = loaded.config
    if config.head != "lesion":
        raise InputError(f"{source.name} has the paper's head: a patient head needs a "
                         "lesion-head model (train --head lesion)")
    base = network_only(config)
    loaded.model.config = base

    def scored(csv: Path) -> tuple[ScoredCohort, PreparedCohort]:
        return score_cohort(csv, loaded.model, base, args.cache_dir, args.device, workers=args.workers,
                            progress=TerminalProgress(f"scoring {csv.parent.name or csv.name}"))

    def named(csv: Path) -> str:  # cohort CSVs are usually all called labels.csv
        return f"{csv.parent.name}/{csv.name}" if csv.parent.name else csv.name

    features = chosen_features(args.features, base.phases)  # before minutes of scoring
    fit_scored, fit_prepared = scored(args.cohort)
    soft = None
    if args.soft_target_column is not None:
        try:
            soft = probability_column(fit_prepared, args.soft_target_column)
        except CohortError as exc:
            raise InputError(f"{named(args.cohort)}: {exc}") from exc
    try:
        fit = fit_patient_head(fit_scored, named(args.cohort), features=features,
                               calibration=scored(args.calibration)[0] if args.calibration else None,
                               calibration_name=named(args.calibration) if args.calibration else "",
                               soft_targets=soft, soft_target_name=str(args.soft_target_column))
    except HeadFitError as exc:
        raise InputError(str(exc)) from exc
    say(fit.summary(), err=args.json)
    config = dataclasses.replace(base, aggregation="patient_head", patient_head=fit.head)
    loaded.model.config = config
    desc = loaded.description
    metrics = dict(desc.metrics)
    metrics["patient_head"] = fit.as_dict()
    if args.test is not None:
        metrics["test"] = evaluate_on(args.test, loaded.model, config, args.cache_dir, args.device,
                                      workers=args.workers)
        say(format_test_line(metrics["test"]), err=args.json)
    notes = (desc.notes + " Patient head added by hcc-response fit-patient-head: the patient's "
             "probability and call come from it (the slices still vote for the display); "
             + fit.summary() + ".")
    desc = dataclasses.replace(desc, metrics=metrics, notes=notes,
                               version=args.model_version or desc.version)
    sha = save_model(loaded.model, config, desc, args.out, half=not args.full_precision)
    write_sha256_file(args.out)
    say(f"wrote {args.out} (SHA-256 {sha[:16]}…)", err=args.json)
    if args.json:
        print_json({"model": str(args.out), "sha256": sha, **fit.as_dict(),
                    "test": metrics.get("test")})
    return 0
