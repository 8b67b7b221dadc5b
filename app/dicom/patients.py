"""Patients in a scan: one Patient ID used by different people is never merged silently.

The scan (:func:`app.dicom.scan.scan_folder`) groups series by Patient ID. Two people given one
ID (a reused ID, two hospitals' numbering, a test phantom) were merged into one patient in the
browser, their studies side by side as if they were one person's (issue 14, item 6).
:func:`separate_patients` tells them apart by name and birth date, right after the scan, for
every door: the app's import job, ``scan`` and :func:`app.dicom.assembly.assemble_folder`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only; the scanner imports pydicom
    from app.dicom.scan import PatientInfo, ScanResult
    from app.dicom.types import SeriesInfo

log = logging.getLogger(__name__)

#: How every Patient ID collision warning begins (the assembly repeats these for its study).
PATIENT_ID_WARNING = "Patient ID"


def norm_person_name(name: str) -> str:
    """PN values compared as people write them: case, spaces and empty components ignored."""
    return "^".join(part.strip() for part in name.upper().split("^")).rstrip("^ ")


def _birth_date(series: SeriesInfo) -> str:
    """PatientBirthDate of the series' first image ("" when absent or unreadable).

    The header-only scan does not keep it; one small read per series (only the tag) is enough.
    """
    if not series.instances:
        return ""
    import pydicom

    try:
        ds = pydicom.dcmread(series.instances[0].path, stop_before_pixels=True,
                             specific_tags=["PatientBirthDate"])
        return str(ds.get("PatientBirthDate", "") or "").strip()
    except Exception as exc:  # noqa: BLE001 - any unreadable header: the date is unknown
        log.debug("birth date of %s not read: %s", series.instances[0].path, exc)
        return ""


def _who(name: str, birth: str) -> str:
    return f"{name or '(no name)'}, born {birth}" if birth else (name or "(no name)")


def separate_patients(scan: ScanResult) -> list[str]:
    """Split patients that share a Patient ID but are different people; returns the warnings.

    Each study's people are told
    apart by name (case and spaces ignored) and birth date: studies of different people become
    separate patients with the same ID, and every series of theirs carries a warning, so that
    the browser, ``scan`` and the assembly show it. A study whose own series belong to different
    people is left whole, warned about, and refused by the assembly (``check_set``).

    Modifies ``scan.patients`` in place (idempotent).
    """
    from app.dicom.scan import PatientInfo

    warnings: list[str] = []
    patients: list[PatientInfo] = []
    for patient in scan.patients:
        everyone = {norm_person_name(s.patient_name) for st in patient.studies for s in st.series}
        if not patient.patient_id or (len(patient.studies) == 1 and len(everyone) == 1):
            patients.append(patient)  # no ID (grouped by name already), or nothing to tell apart
            continue
        groups: dict[tuple[str, str], PatientInfo] = {}
        shown: dict[tuple[str, str], str] = {}
        for study in patient.studies:
            # an empty name or date is unknown, not a different person
            names = {norm_person_name(s.patient_name): s.patient_name for s in study.series
                     if norm_person_name(s.patient_name)}
            births = {b for b in (_birth_date(s) for s in study.series) if b}
            if len(names) > 1 or len(births) > 1:
                msg = (f"{PATIENT_ID_WARNING} {patient.patient_id!r}: study {study.study_uid} mixes "
                       "series of different people (names " + ", ".join(sorted(names.values()))
                       + (f"; birth dates {', '.join(sorted(births))}" if births else "") + ")")
                warnings.append(msg)
                _warn_series(study.series, msg)
            key = (min(names, default=""), min(births, default=""))
            if key not in groups:
                name = names.get(key[0], study.patient_name)
                groups[key] = PatientInfo(patient.patient_id, name)
                shown[key] = _who(name, key[1])
            groups[key].studies.append(study)
        _merge_unknown_births(groups)
        patients.extend(groups.values())
        if len(groups) > 1:
            msg = (f"{PATIENT_ID_WARNING} {patient.patient_id!r} is used by {len(groups)} different "
                   f"people ({'; '.join(shown[k] for k in groups)}): shown as separate patients")
            warnings.append(msg)
            for group in groups.values():
                for study in group.studies:
                    _warn_series(study.series, msg)
    scan.patients[:] = patients
    for msg in warnings:
        log.warning("%s", msg)
    return warnings


def _merge_unknown_births(groups: dict[tuple[str, str], PatientInfo]) -> None:
    """A study without a birth date joins the one person of that name who has one."""
    for key in [k for k in groups if not k[1]]:
        known = [k for k in groups if k[0] == key[0] and k[1]]
        if len(known) == 1:
            target = groups[known[0]]
            target.studies.extend(groups.pop(key).studies)
            target.studies.sort(key=lambda st: (st.study_date, st.study_uid))


def _warn_series(series: Sequence[SeriesInfo], msg: str) -> None:
    for s in series:
        if msg not in s.warnings:
            s.warnings.append(msg)


def patient_id_collisions(scan: ScanResult) -> dict[str, int]:
    """Patient ID → number of separate patients using it (only IDs used by more than one)."""
    counts: dict[str, int] = {}
    for patient in scan.patients:
        if patient.patient_id:
            counts[patient.patient_id] = counts.get(patient.patient_id, 0) + 1
    return {pid: n for pid, n in counts.items() if n > 1}
