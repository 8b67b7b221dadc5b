"""The one study of a folder to work on, and whether it may be predicted as assembled.

``assemble_folder`` returns every study it found; a case is one of them. The choice and its
refusals (nothing usable, an unknown study UID, several studies and no choice, a study whose
assembly failed) were written out by ``predict``, ``self-test`` and the training pipeline each
in their own words; they are one function here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from app.dicom.errors import DicomError
from app.dicom.scan import StudyInfo
from app.dicom.types import AssembledStudy
from app.errors import InputError
from app.progress import NULL_PROGRESS, Progress

#: What ``predict`` tells the user to do about a folder with several studies.
CHOOSE_WITH_OPTION = "choose one with --study"

AssemblyResults = Sequence[tuple[StudyInfo, AssembledStudy | DicomError]]


def choose_study(results: AssemblyResults, folder: Path, wanted: str | None = None, *,
                 how_to_choose: str = CHOOSE_WITH_OPTION) -> AssembledStudy:
    """The one assembled study of ``results`` (optionally the one with UID ``wanted``).

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
    if len(results) > 1:
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
               keep_volumes: bool = True) -> AssembledStudy:
    """Scan and assemble ``folder``, then :func:`choose_study` (the CLI's and training's way in).

    Raises ``InputError`` for a path that is not a folder, besides the errors of
    :func:`choose_study` and of the assembly (bad overrides).
    """
    from app.dicom.assembly import assemble_folder

    if not folder.is_dir():
        raise InputError(f"not a folder: {folder}")
    _scan, results = assemble_folder(folder, overrides, progress, keep_volumes=keep_volumes)
    return choose_study(results, folder, wanted, how_to_choose=how_to_choose)


def confirmation_problem(study: AssembledStudy) -> str | None:
    """Why the study's phase assignment needs the user's confirmation, or None.

    An assignment with conflicting evidence or two candidates for one phase is never predicted
    silently: the CLI refuses it without ``--confirm``, the app shows a banner.
    """
    if not study.needs_confirmation:
        return None
    return "; ".join(study.confirmation_reasons) or "conflicting phase evidence"
