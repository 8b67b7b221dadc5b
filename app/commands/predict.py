"""``hcc-response predict FOLDER``: the whole flow of one case, headless.

scan → phase classification → study assembly (liver range, slice pairs) → model → per-slice
prediction with majority vote → optional Grad-CAM overlays → optional register entry. The same
functions as the desktop app, so a result here equals the result there.

Doubtful input is never predicted silently: a folder with several studies needs ``--study``,
and an assignment that needs confirmation (conflicting evidence, two candidates for one phase)
needs ``--confirm`` after the user has checked ``hcc-response scan`` (or ``--phase`` to choose).

``--dicom-out DIR`` writes the result for the PACS (an SR and Grad-CAM captures, see
:mod:`app.export`); with ``--register`` the export is recorded in the audit trail.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.commands._common import TerminalProgress, print_json, say
from app.errors import InputError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from app.inference.result import PredictionResult


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, help="folder with the patient's DICOM files")
    parser.add_argument("--model", type=Path, default=None,
                        help="model file (.safetensors); default: the bundled model")
    parser.add_argument("--sha256", default=None,
                        help="refuse the model unless its SHA-256 is this (site-imported models)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    parser.add_argument("--phase", default=None, metavar="PHASE=UID,...",
                        help="override the phase assignment, e.g. portal=UID")
    parser.add_argument("--study", default=None, metavar="STUDY_UID",
                        help="which study to predict when the folder holds several")
    parser.add_argument("--patient", default=None, metavar="PATIENT_ID",
                        help="whose study to predict when the folder holds several patients "
                             "(needed when two patients share one study UID)")
    parser.add_argument("--confirm", action="store_true",
                        help="accept an assignment flagged as needing confirmation")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--register", type=Path, default=None, metavar="DB",
                        help="record the prediction in this case register")
    parser.add_argument("--cam-dir", type=Path, default=None, metavar="DIR",
                        help="write Grad-CAM overlay PNGs (one per slice and phase) here")
    parser.add_argument("--dicom-out", type=Path, default=None, metavar="DIR",
                        help="write the result as DICOM (SR + Grad-CAM captures) for the PACS")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _expected_sha256(text: str | None) -> str | None:
    """``--sha256`` checked for form: a typo must not read as "the model has changed"."""
    if text is None:
        return None
    value = text.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise InputError(f"--sha256 {text!r} is not a SHA-256: expected 64 hexadecimal "
                         "characters (as printed by 'sha256sum MODEL')")
    return value


def run(args: argparse.Namespace) -> int:
    from app.case.flow import (
        explain_study,
        export_explanations,
        make_record,
        predict_study,
        shown_warnings,
    )
    from app.case.model import ModelChoice, ModelHolder
    from app.dicom.assembly import parse_phase_overrides
    from app.dicom.studies import confirmation_problem, open_study_and_scan

    if not args.folder.is_dir():
        raise InputError(f"not a folder: {args.folder}")
    sha256 = _expected_sha256(args.sha256)  # before the (slow) assembly
    overrides = parse_phase_overrides(args.phase) if args.phase else None
    progress = TerminalProgress("predict", enabled=not args.quiet)
    t0 = time.perf_counter()
    # the scan too: its per-file rejections and the chosen series' own warnings (a gap where a
    # rejected slice was) are shown with the result
    scan, study = open_study_and_scan(args.folder, overrides, args.study, progress.sub(0.0, 0.4),
                                      patient=args.patient)
    warnings = shown_warnings(scan, study)
    problem = confirmation_problem(study)
    # --phase does not stand in for --confirm: the assembly leaves out the doubts that the
    # overrides answer (a phase the user chose), so what is left still needs confirming.
    if problem and not args.confirm:
        raise InputError(f"the phase assignment needs confirmation ({problem}); check it with "
                         f"'hcc-response scan {args.folder}' and rerun with --confirm or --phase")

    from app import model_history

    holder = ModelHolder()
    choice = ModelChoice(args.model, sha256, args.device)
    first = holder.get(choice, progress.sub(0.4, 0.45))
    if sha256 is not None and args.model is None:
        # --sha256 without --model applies to the bundled model (never silently ignored).
        from app.inference.weights import ModelFileError

        if first.sha256 != sha256:
            raise ModelFileError(f"the bundled model's SHA-256 is {first.sha256[:16]}…, not "
                                 f"the --sha256 given ({sha256[:16]}…)")
    # a model that prepares the images differently from the last one used is shown first
    change = model_history.compare(first)
    if change is not None:
        say(f"hcc-response predict: note: {change.message}", err=True)
    loaded, result = predict_study(study, holder, choice, progress.sub(0.45, 0.75))
    model_history.remember(loaded)
    cam_files: list[str] = []
    cams = None
    if args.cam_dir is not None or args.dicom_out is not None:
        cams = explain_study(study, holder, loaded, progress.sub(0.75, 0.9))
    if args.cam_dir is not None and cams is not None:
        cam_files = [str(p) for p in export_explanations(study, cams, args.cam_dir)]
    # the register's record of this prediction (written below with --register); its warnings -
    # the study's, the images', the model's - are what the DICOM SR says too
    record = make_record(study, result, overrides=overrides or {}, warnings_shown=warnings,
                         source_folder=str(args.folder.resolve()))
    dicom_export = None
    if args.dicom_out is not None and cams is not None:
        from app.export.sources import source_files
        from app.export.writer import export_dicom

        progress.update(0.9, "writing DICOM SR and captures")
        dicom_export = export_dicom(study, result, cams, source_files(args.folder, study),
                                    args.dicom_out, warnings=record.warnings)

    saved = None
    if args.register is not None:
        from app.register.pending import record_or_keep

        # never raises for the register: a prediction it cannot take is kept for later
        saved = record_or_keep(args.register, record)
    record_id = saved.case_id if saved is not None else None
    if record_id is not None and dicom_export is not None:
        from app.register import open_register

        with open_register(args.register) as register:
            register.log_event("dicom_export", dicom_export.to_dict(), prediction_id=record_id)
    progress.update(1.0, "done")

    doc: dict[str, Any] = {
        "folder": str(args.folder),
        "patient_id": study.patient_id,
        "study_uid": study.study_uid,
        "assignment": dict(study.assignment),
        "warnings": warnings,
        "liver_range_mm": {p: list(r) for p, r in study.liver_range_mm.items()},
        "prediction": result.to_dict(),
        "register_id": record_id,
        "model_change": change.differences if change is not None else None,
        "cam_files": cam_files,
        "dicom_export": dicom_export.to_dict() if dicom_export is not None else None,
        "elapsed_s": round(time.perf_counter() - t0, 3),
    }
    if saved is not None and saved.error is not None:
        doc["register_error"] = saved.message
        doc["register_pending"] = str(saved.pending_file) if saved.pending else None
    if args.json:
        print_json(doc)
    else:
        _print_text(doc, result)
    if saved is not None and saved.error is not None:  # shown (and kept), but not recorded
        say(f"hcc-response predict: {saved.message}", err=True)
        return saved.error.exit_code
    return 0


def _print_text(doc: dict[str, Any], result: PredictionResult) -> None:
    say(f"Patient {doc['patient_id']}  study {doc['study_uid']}")
    for phase, uid in doc["assignment"].items():
        say(f"  {phase:<8} {uid}")
    for w in doc["warnings"]:  # the assembly's warnings (shown, and recorded as shown)
        say(f"  warning: {w}")
    say(f"Result: {result.label.upper()}  ({result.responder_votes} of {result.total_votes} "
          f"slices vote responder; {result.probability_text[0].lower()}{result.probability_text[1:]})")
    if result.tie:
        say(f"  tie: {result.tie_rule}")
    say(f"Model: {result.model_name} {result.model_version} sha256 {result.model_sha256[:12]}… "
          f"({result.weights_kind}); device {result.device}")
    for w in result.warnings:
        say(f"  warning: {w}")
    if doc["register_id"] is not None:
        say(f"Recorded in the register as case {doc['register_id']}")
    if doc["cam_files"]:
        say(f"Grad-CAM overlays: {len(doc['cam_files'])} PNG files")
    if doc["dicom_export"]:
        exp = doc["dicom_export"]
        say(f"DICOM: SR and {len(exp['capture_files'])} capture(s) written to {exp['folder']}")
    from app import INTENDED_USE

    say(INTENDED_USE)
