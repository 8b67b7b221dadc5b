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
from typing import Any

from app.commands._common import TerminalProgress, print_json, say
from app.errors import InputError


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


def _choose_study(results: list[tuple[Any, Any]], wanted: str | None, folder: Path) -> Any:
    """The one assembled study to predict, or an InputError saying exactly why not."""
    from app.dicom.errors import DicomError

    if not results:
        raise InputError(f"no usable CT series in {folder}")
    if wanted is not None:
        results = [(s, a) for s, a in results if s.study_uid == wanted]
        if not results:
            raise InputError(f"no study {wanted} in {folder}")
    if len(results) > 1:
        listing = "; ".join(f"{s.study_uid} ({s.patient_id}, {s.study_date or 'no date'})"
                            for s, _ in results)
        raise InputError(f"{folder} holds {len(results)} studies; choose one with --study: "
                         f"{listing}")
    _study, outcome = results[0]
    if isinstance(outcome, DicomError):
        raise outcome
    return outcome


def _load(args: argparse.Namespace) -> Any:
    from app.inference.weights import load_bundled_model, load_model

    if args.model is None:
        return load_bundled_model(device=args.device)
    if not args.model.is_file():
        raise InputError(f"model file not found: {args.model}")
    return load_model(args.model, device=args.device, expected_sha256=args.sha256)


def run(args: argparse.Namespace) -> int:
    from app.dicom.assembly import assemble_folder, parse_phase_overrides

    if not args.folder.is_dir():
        raise InputError(f"not a folder: {args.folder}")
    overrides = parse_phase_overrides(args.phase) if args.phase else None
    progress = TerminalProgress("predict", enabled=not args.quiet)
    t0 = time.perf_counter()
    _scan, results = assemble_folder(args.folder, overrides, progress.sub(0.0, 0.4),
                                      keep_volumes=True)
    study = _choose_study(results, args.study, args.folder)
    if study.needs_confirmation and not args.confirm and not overrides:
        reasons = "; ".join(study.confirmation_reasons) or "conflicting phase evidence"
        raise InputError(f"the phase assignment needs confirmation ({reasons}); check it with "
                         f"'hcc-response scan {args.folder}' and rerun with --confirm or --phase")

    from app.inference.gradcam import export_overlays, gradcam_study
    from app.inference.predictor import predict

    loaded = _load(args)
    result = predict(study, loaded, progress.sub(0.45, 0.75))
    cam_files: list[str] = []
    cams = None
    if args.cam_dir is not None or args.dicom_out is not None:
        cams = gradcam_study(loaded, study, progress.sub(0.75, 0.9))
    if args.cam_dir is not None and cams is not None:
        try:
            cam_files = [str(p) for p in export_overlays(study, cams, args.cam_dir)]
        except OSError as exc:
            raise InputError(f"cannot write the Grad-CAM images to {args.cam_dir}: {exc}") from exc
    dicom_export = None
    if args.dicom_out is not None and cams is not None:
        from app.export.sources import instance_paths
        from app.export.writer import export_dicom

        progress.update(0.9, "writing DICOM SR and captures")
        files = instance_paths(_scan, study.assignment.values())
        dicom_export = export_dicom(study, result, cams, files, args.dicom_out)

    record_id = None
    if args.register is not None:
        from app.casework import prediction_record
        from app.register import open_register

        record = prediction_record(study, result, overrides=overrides or {},
                                   source_folder=str(args.folder.resolve()))
        with open_register(args.register) as register:
            record_id = register.add_prediction(record)
            if dicom_export is not None:
                register.log_event("dicom_export", dicom_export.to_dict(), prediction_id=record_id)
    progress.update(1.0, "done")

    doc: dict[str, Any] = {
        "folder": str(args.folder),
        "patient_id": study.patient_id,
        "study_uid": study.study_uid,
        "assignment": dict(study.assignment),
        "liver_range_mm": {p: list(r) for p, r in study.liver_range_mm.items()},
        "prediction": result.to_dict(),
        "register_id": record_id,
        "cam_files": cam_files,
        "dicom_export": dicom_export.to_dict() if dicom_export is not None else None,
        "elapsed_s": round(time.perf_counter() - t0, 3),
    }
    if args.json:
        print_json(doc)
        return 0
    _print_text(doc, result)
    return 0


def _print_text(doc: dict[str, Any], result: Any) -> None:
    say(f"Patient {doc['patient_id']}  study {doc['study_uid']}")
    for phase, uid in doc["assignment"].items():
        say(f"  {phase:<8} {uid}")
    say(f"Result: {result.label.upper()}  ({result.responder_votes} of {result.total_votes} "
          f"slices vote responder, mean probability {result.mean_probability:.2f})")
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
