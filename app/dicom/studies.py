"""The studies of a folder: walking them, naming them, and choosing the one to work on.

* :func:`iter_studies` / :func:`study_key` — the desktop app's browser, its import job and the
  case flow walk a :class:`~app.dicom.scan.ScanResult` the same way (this used to sit in the
  browser widget's module, which made the Qt-free jobs import a widget file).
* :func:`choose_study` / :func:`open_study` — a case is ONE of the studies ``assemble_folder``
  returns. The choice and its refusals (nothing usable, an unknown study UID, several studies and
  no choice, a study whose assembly failed) were written out by ``predict``, ``self-test``, the
  training pipeline and the app each in their own words; they are one function here, in the
  DICOM layer, because training (below :mod:`app.case`) needs it as much as the case flow.
* One Patient ID used by different people is split by :mod:`app.dicom.patients` before any of
  this (issue 14, item 6).
* :func:`confirmation_problem` — whether an assembled study may be predicted without the
  user's confirmation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from app.dicom.errors import DicomError
from app.dicom.types import AssembledStudy
from app.errors import InputError
from app.progress import NULL_PROGRESS, Progress

if TYPE_CHECKING:  # pragma: no cover - typing only; the scanner imports pydicom
    from app.dicom.scan import PatientInfo, ScanResult, StudyInfo


def study_key(study: StudyInfo) -> str:
    """A study's identity within a scan (its Study Instance UID)."""
    return study.study_uid


def iter_studies(scan: ScanResult) -> Iterator[tuple[PatientInfo, StudyInfo]]:
    """(patient, study) pairs in scan order."""
    for patient in scan.patients:
        for study in patient.studies:
            yield patient, study


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
    return open_study_and_scan(folder, overrides, wanted, progress, how_to_choose=how_to_choose,
                               keep_volumes=keep_volumes, patient=patient)[1]


def open_study_and_scan(folder: Path, overrides: Mapping[str, str] | None = None,
                        wanted: str | None = None, progress: Progress = NULL_PROGRESS, *,
                        how_to_choose: str = CHOOSE_WITH_OPTION, keep_volumes: bool = True,
                        patient: str | None = None) -> tuple[ScanResult, AssembledStudy]:
    """:func:`open_study`, also returning the scan (its rejected files and series warnings are
    shown with a prediction)."""
    from app.dicom.assembly import assemble_folder

    if not folder.is_dir():
        raise InputError(f"not a folder: {folder}")
    scan, results = assemble_folder(folder, overrides, progress, keep_volumes=keep_volumes)
    return scan, choose_study(results, folder, wanted, how_to_choose=how_to_choose, patient=patient)


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
