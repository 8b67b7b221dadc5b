"""`hcc-response scan FOLDER [--json]`: the study/series report of a DICOM folder.

Scans headers only (:func:`app.dicom.scan.scan_folder`) and prints patients → studies → series
with their status and warnings, plus every skipped or rejected file with its reason. ``--json``
prints one JSON document instead. Exit status 2 with a one-line reason when nothing usable is
found. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app.errors import InputError


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="folder with the DICOM files (searched recursively)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--phase",
        default=None,
        metavar="PHASE=UID,...",
        help="override the phase assignment, e.g. plain=UID,arterial=UID,portal=UID",
    )
    parser.add_argument(
        "--no-assemble",
        action="store_true",
        help="headers only: skip phase classification and study assembly (no pixel decoding)",
    )


def _safe(text: object) -> str:
    """A path or tag as printable text (undecodable file-name bytes shown escaped)."""
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")


def _r(value: float | None, nd: int = 2) -> float | None:
    return None if value is None else round(float(value), nd)


def series_document(s: Any) -> dict[str, Any]:
    """One series as a JSON-ready dict (the ``scan --json`` series record)."""
    doc: dict[str, Any] = {
        "uid": s.uid,
        "series_instance_uid": s.series_instance_uid,
        "number": s.series_number,
        "description": s.description,
        "modality": s.modality,
        "orientation": s.orientation,
        "n_slices": s.n_slices,
        "rows": s.rows,
        "columns": s.columns,
        "slice_thickness": _r(s.slice_thickness),
        "spacing": _r(s.slice_spacing, 3),
        "pixel_spacing": list(s.pixel_spacing) if s.pixel_spacing else None,
        "z_range": [_r(s.z_range[0]), _r(s.z_range[1])] if s.z_range else None,
        "tilt_deg": _r(s.tilt_deg),
        "frame_of_reference_uid": s.frame_of_reference_uid,
        "transfer_syntax": s.transfer_syntax,
        "acquisition_time": s.acquisition_time,
        "contrast_agent": s.contrast_agent,
        "status": s.status,
        "refused_reason": s.refused_reason,
        "warnings": list(s.warnings),
    }
    call = s.phase_call
    if call is not None:
        doc["phase"] = call.phase
        doc["phase_confidence"] = _r(call.confidence, 3)
        doc["phase_evidence"] = list(call.evidence)
        doc["phase_conflict"] = call.conflict
    return doc


def scan_document(result: Any, assembled: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``scan --json`` document for a :class:`ScanResult`.

    ``assembled`` maps study UID → an assembly record (from
    :func:`app.dicom.assembly.assembly_document`) to merge into each study.
    """
    patients = []
    for p in result.patients:
        studies = []
        for st in p.studies:
            sdoc: dict[str, Any] = {
                "study_uid": st.study_uid,
                "study_date": st.study_date,
                "description": st.study_description,
                "series": [series_document(s) for s in st.series],
            }
            if assembled and st.study_uid in assembled:
                sdoc.update(assembled[st.study_uid])
            studies.append(sdoc)
        patients.append({"patient_id": p.patient_id, "patient_name": p.patient_name,
                         "studies": studies})
    return {
        "folder": _safe(result.root),
        "elapsed_s": round(result.elapsed_s, 3),
        "counts": {**result.counts, "files": len(result.files),
                   "series": len(result.series)},
        "patients": patients,
        "files": [
            {"path": _safe(f.path), "status": f.status, "reason": f.reason}
            for f in result.files if f.status != "used"
        ],
        "problem": result.problem,
    }


def _print_report(result: Any, assembled: dict[str, Any] | None) -> None:
    c = result.counts
    out = sys.stdout
    out.write(f"Scanned {_safe(result.root)}: {len(result.files)} files ({c['used']} used, "
              f"{c['skipped']} skipped, {c['rejected']} rejected) in {result.elapsed_s:.1f} s\n")
    for p in result.patients:
        out.write(f"\nPatient {p.patient_id or '(no ID)'} {_safe(p.patient_name)}\n")
        for st in p.studies:
            out.write(f"  Study {st.study_date} {_safe(st.study_description)} [{st.study_uid}]\n")
            for s in st.series:
                z = (f"z {s.z_range[0]:.1f}..{s.z_range[1]:.1f} mm" if s.z_range else "")
                thick = f"{s.slice_thickness:.1f} mm" if s.slice_thickness else "? mm"
                phase = ""
                if s.phase_call is not None:
                    phase = f"  phase {s.phase_call.phase} ({s.phase_call.confidence:.2f})"
                number = "?" if s.series_number is None else s.series_number
                out.write(
                    f"    #{number} {_safe(s.description)!s:<24} {s.orientation:<8} "
                    f"{s.n_slices:4d} slices {thick:>7} {z}  {s.status}{phase}\n"
                )
                if s.refused_reason:
                    out.write(f"        refused: {s.refused_reason}\n")
                for w in s.warnings:
                    out.write(f"        warning: {_safe(w)}\n")
            rec = (assembled or {}).get(st.study_uid)
            if rec:
                if rec.get("error"):
                    out.write(f"    assembly: {rec['error']}\n")
                else:
                    out.write("    assignment: " + ", ".join(
                        f"{ph}=#{rec['assignment_numbers'].get(ph)}" for ph in rec["assignment"]
                    ) + f"  ({len(rec['pairs'])} slice triplets)\n")
                    if rec.get("needs_confirmation"):
                        for why in rec.get("confirmation_reasons", []):
                            out.write(f"    needs confirmation: {why}\n")
                for w in rec.get("warnings", []):
                    out.write(f"    warning: {w}\n")
    others = [f for f in result.files if f.status != "used"]
    if others:
        out.write("\nFiles not used:\n")
        for f in others:
            out.write(f"  {f.status:<8} {_safe(f.path)}: {f.reason}\n")


def run(args: argparse.Namespace) -> int:
    from app.commands._common import TerminalProgress, print_json
    from app.dicom.scan import scan_folder

    progress = TerminalProgress("scan")
    assembled: dict[str, Any] | None = None
    if args.no_assemble:
        if args.phase:
            raise InputError("--phase needs the assembly step; drop --no-assemble")
        result = scan_folder(args.folder, progress=progress.sub(0.0, 1.0))
        from app.dicom.patients import separate_patients

        separate_patients(result)  # one Patient ID, different people (as assemble_folder does)
    else:
        from app.dicom.assembly import assemble_folder, assembly_document, parse_phase_overrides

        overrides = parse_phase_overrides(args.phase) if args.phase else None
        result, outcomes = assemble_folder(args.folder, overrides=overrides, progress=progress)
        assembled = {
            study.study_uid: assembly_document(study, outcome)
            for study, outcome in outcomes
        }
    if args.json:
        print_json(scan_document(result, assembled))
    else:
        _print_report(result, assembled)
    if result.problem:
        raise InputError(result.problem)
    return 0
