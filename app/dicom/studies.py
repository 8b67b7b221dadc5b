"""The studies of a folder: walking them, naming them, and choosing the one to work on.

* :func:`iter_studies` / :func:`study_key` — the desktop app's browser, its import job and the
  case flow walk a :class:`~app.dicom.scan.ScanResult` the same way (this used to sit in the
  browser widget's module, which made the Qt-free jobs import a widget file).
* :func:`choose_study` / :func:`open_study` — a case is ONE of the studies ``assemble_folder``
  returns. The choice and its refusals (nothing usable, an unknown study UID, several studies and
  no choice, a study whose assembly failed) were written out by ``predict``, ``self-test``, the
  training pipeline and the app each in their own words; they are one function here, in the
  DICOM layer, because training (below :mod:`app.case`) needs it as much as the case flow.
* :func:`separate_patients` — one Patient ID used by different people (names, birth dates) is
  split into separate patients with a warning, never merged silently (issue 14, item 6).
* :func:`confirmation_problem` — whether an assembled study may be predicted without the
  user's confirmation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from app.dicom.errors import DicomError
from app.dicom.types import AssembledStudy
from app.errors import InputError
from app.progress import NULL_PROGRESS, Progress

if TYPE_CHECKING:  # pragma: no cover - typing only; the scanner imports pydicom
    from app.dicom.scan import PatientInfo, ScanResult, StudyInfo
    from app.dicom.types import SeriesInfo

log = logging.getLogger(__name__)

#: How every Patient ID collision warning begins (the assembly repeats these for its study).
PATIENT_ID_WARNING = "Patient ID"


def study_key(study: StudyInfo) -> str:
    """A study's identity within a scan (its Study Instance UID)."""
    return study.study_uid


def iter_studies(scan: ScanResult) -> Iterator[tuple[PatientInfo, StudyInfo]]:
    """(patient, study) pairs in scan order."""
    for patient in scan.patients:
        for study in patient.studies:
            yield patient, study


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

    The scan groups series by Patient ID. Two people given one ID (a reused ID, two hospitals'
    numbering, a test phantom) were merged into one patient in the browser, their studies side
    by side as if they were one person's (issue 14, item 6). Here each study's people are told
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


#: What ``predict`` tells the user to do about a folder with several studies.
CHOOSE_WITH_OPTION = "choose one with --study"

AssemblyResults: TypeAlias = "Sequence[tuple[StudyInfo, AssembledStudy | DicomError]]"


def choose_study(results: AssemblyResults, folder: Path, wanted: str | None = None, *,
                 how_to_choose: str = CHOOSE_WITH_OPTION,
                 patient: str | None = None) -> AssembledStudy:
    """The one assembled study of ``results`` (optionally the one with UID ``wanted``).

    A study is a (patient, study UID) pair: two patients whose studies share one UID (a broken
    export, a reused phantom) are two studies, told apart by ``patient`` (issue 19).

    Raises
    ------
    InputError
        Nothing usable in ``folder``, no study ``wanted``, or several studies left (the
        message lists them and says ``how_to_choose`` one).
    DicomError
        The chosen study could not be assembled (missing phase, bad geometry ...): the DICOM
        layer's own error, unchanged.
    """
    if not results:
        raise InputError(f"no usable CT series in {folder}")
    if wanted is not None:
        results = [(s, a) for s, a in results if s.study_uid == wanted]
        if not results:
            raise InputError(f"no study {wanted} in {folder}")
    if patient is not None:
        results = [(s, a) for s, a in results if s.patient_id == patient]
        if not results:
            raise InputError(f"no study of patient {patient!r} in {folder}"
                             + (f" with UID {wanted}" if wanted else ""))
    if len(results) > 1:
        uids = [s.study_uid for s, _ in results]
        if len(set(uids)) < len(uids):  # patients share a study UID: the UID cannot tell them
            how_to_choose += " and --patient (patients share a study UID)"
        listing = "; ".join(f"{s.study_uid} ({s.patient_id}, {s.study_date or 'no date'})"
                            for s, _ in results)
        raise InputError(f"{folder} holds {len(results)} studies; {how_to_choose}: {listing}")
    _study, outcome = results[0]
    if isinstance(outcome, DicomError):
        raise outcome
    return outcome


def open_study(folder: Path, overrides: Mapping[str, str] | None = None,
               wanted: str | None = None, progress: Progress = NULL_PROGRESS, *,
               how_to_choose: str = CHOOSE_WITH_OPTION,
               keep_volumes: bool = True, patient: str | None = None) -> AssembledStudy:
    """Scan and assemble ``folder``, then :func:`choose_study` (the CLI's and training's way in).

    Raises ``InputError`` for a path that is not a folder, besides the errors of
    :func:`choose_study` and of the assembly (bad overrides).
    """
    from app.dicom.assembly import assemble_folder

    if not folder.is_dir():
        raise InputError(f"not a folder: {folder}")
    _scan, results = assemble_folder(folder, overrides, progress, keep_volumes=keep_volumes)
    return choose_study(results, folder, wanted, how_to_choose=how_to_choose, patient=patient)


def confirmation_problem(study: AssembledStudy,
                         overrides: Mapping[str, str] | None = None) -> str | None:
    """Why the study's phase assignment needs the user's confirmation, or None.

    An assignment with conflicting evidence or two candidates for one phase is never predicted
    silently: the CLI refuses it without ``--confirm``, the app shows a banner. Series chosen
    by hand (``overrides``, the CLI's ``--phase``) settle those doubts, except one: two phases
    holding identical images (:attr:`AssembledStudy.identical_phases`) need ``--confirm`` even
    then (issue 14, item 5). The caller asks for confirmation whenever this returns a text.
    """
    if not study.needs_confirmation:
        return None
    if overrides:
        return "; ".join(study.identical_phases) or None
    return "; ".join(study.confirmation_reasons) or "conflicting phase evidence"
