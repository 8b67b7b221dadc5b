"""`hcc-response demo-data OUT` — write a synthetic multiphase liver CT cohort with labels.csv.

Progress goes to stderr, a one-line summary to stdout. Bad options and an output folder that
is neither empty nor earlier demo-data output are refused (exit status 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app.synthetic.options import CONVENTIONS, MATRIX_RANGE


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, metavar="OUT", help="output folder (empty, or earlier demo-data output)")
    parser.add_argument("--patients", type=int, default=10, metavar="N", help="number of patients (default 10)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="cohort seed (default 0)")
    parser.add_argument("--matrix", type=int, default=512, metavar="PX",
                        help=f"rows = columns of the axial images ({MATRIX_RANGE[0]}..{MATRIX_RANGE[1]}, default 512)")
    parser.add_argument("--slice-mm", type=float, default=5.0, metavar="MM", help="slice thickness/spacing (default 5)")
    parser.add_argument("--coverage-mm", type=float, default=250.0, metavar="MM",
                        help="cranio-caudal coverage of each axial series (default 250)")
    parser.add_argument("--blank-tags", action="store_true",
                        help="blank series descriptions and leave out contrast tags (both of the next two)")
    parser.add_argument("--blank-descriptions", action="store_true", help="blank series/study descriptions")
    parser.add_argument("--blank-contrast", action="store_true", help="leave out the contrast bolus tags")
    parser.add_argument("--thin", action="store_true", help="add a thin (1–1.25 mm) reconstruction of each phase")
    parser.add_argument("--coronal", action="store_true", help="add a coronal reformat of the portal phase")
    parser.add_argument("--localizer", action="store_true", help="add a localizer (scout) image")
    parser.add_argument("--dose-report", action="store_true", help="add a dose report (secondary capture)")
    parser.add_argument("--delayed", action="store_true", help="add a delayed (~180 s) phase series")
    parser.add_argument("--compress", choices=("rle", "jpeg2000"), default=None, help="lossless compressed transfer syntax")
    parser.add_argument("--shuffle", action="store_true", help="random extension-less file names")
    parser.add_argument("--flat", action="store_true", help="all files of a patient in one folder")
    parser.add_argument("--convention", choices=CONVENTIONS, default="random",
                        help="scanner vendor / wording of the tags (default: random per patient)")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="processes rendering patients at once (default 0: one per core, at most 8); "
                             "the files do not depend on it")
    parser.add_argument("--label-maps", action="store_true",
                        help="also write the ground-truth tissue label maps of every axial series "
                             "(labels/<SeriesInstanceUID>.npz beside truth.json; for training and checking)")
    parser.add_argument("--no-noise", action="store_true", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from app.commands._common import TerminalProgress, say
    from app.synthetic.cohort import bayes_auc, generate_cohort
    from app.synthetic.options import StudyOptions

    options = StudyOptions(
        matrix=args.matrix,
        slice_mm=args.slice_mm,
        z_coverage_mm=args.coverage_mm,
        convention=args.convention,
        blank_descriptions=args.blank_tags or args.blank_descriptions,
        blank_contrast_tags=args.blank_tags or args.blank_contrast,
        thin_recon=args.thin,
        coronal=args.coronal,
        localizer=args.localizer,
        dose_report=args.dose_report,
        delayed_phase=args.delayed,
        transfer_syntax=args.compress or "explicit",
        shuffle_names=args.shuffle,
        flat=args.flat,
        noise=not args.no_noise,
        label_maps=args.label_maps,
    )
    progress = TerminalProgress("demo-data")
    result = generate_cohort(args.out, args.patients, args.seed, options, progress, workers=args.workers)
    n = len(result.patients)
    responders = sum(p.responder for p in result.patients)
    auc = ""
    if 0 < responders < n:
        auc = f", Bayes-optimal AUC {bayes_auc(result.patients):.3f}"
    say(
        f"wrote {n} synthetic patient(s) to {result.out_dir} in {result.seconds:.1f} s: "
        f"{responders} responder(s) ({responders / n:.0%}){auc}; labels in {result.labels_csv.name}"
    )
    return 0
