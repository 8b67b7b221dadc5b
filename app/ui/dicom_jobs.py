"""The desktop app's DICOM jobs (export, PACS echo/query/retrieve/store), as plain functions.

Like :mod:`app.ui.jobs`: each ``*_job`` returns ``fn(progress) -> result`` for the
:class:`~app.ui.workers.JobManager`; the work itself is the Qt-free :mod:`app.export` and
:mod:`app.dicomnet`, exactly what ``predict --dicom-out`` and the tests run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from app.dicom.types import AssembledStudy
from app.errors import InputError
from app.progress import Progress, sub_progress
from app.ui.jobs import importing

if TYPE_CHECKING:  # pragma: no cover - typing only; these pull in torch, highdicom, pynetdicom
    from app.dicom.scan import ScanResult
    from app.dicomnet.association import AssociationListener
    from app.dicomnet.config import NetworkSettings
    from app.dicomnet.link import EchoResult, StudyMatch
    from app.dicomnet.retrieve import RetrieveResult
    from app.dicomnet.store import StoreResult
    from app.export.writer import DicomExport
    from app.inference.gradcam import CamResult
    from app.inference.result import PredictionResult

_T = TypeVar("_T")

#: A job for the :class:`~app.ui.workers.JobManager` whose worker returns a ``_T``.
JobFn = Callable[[Progress], _T]


@dataclass
class SentResult:
    """A result stored on the PACS: what was written locally and what the node accepted."""

    export: DicomExport
    stored: StoreResult


def export_job(study: AssembledStudy, result: PredictionResult, cams: CamResult | None,
               scan: ScanResult | None, out_dir: Path,
               warnings: Sequence[str] | None = None) -> JobFn[DicomExport]:
    """Write the SR and the captures of the shown prediction into ``out_dir``; ``warnings``:
    everything said with it (the register record's list), written into the SR."""

    def run(progress: Progress) -> DicomExport:
        if cams is None:
            raise InputError("the Grad-CAM heatmaps are still being computed; export again "
                             "when they are shown")
        if scan is None:
            raise InputError("the DICOM files of this study are not known (it was not imported "
                             "from a folder in this session); import its folder, then export")
        with importing(progress):
            from app.export.sources import instance_paths
            from app.export.writer import export_dicom
        progress.update(0.1, "writing DICOM SR and captures")
        files = instance_paths(scan, study.assignment.values())
        return export_dicom(study, result, cams, files, out_dir, warnings=warnings)

    return run


def send_job(settings: NetworkSettings, study: AssembledStudy, result: PredictionResult,
             cams: CamResult | None, scan: ScanResult | None, out_dir: Path,
             listener: AssociationListener | None = None,
             warnings: Sequence[str] | None = None) -> JobFn[SentResult]:
    """Export (into ``out_dir``) and C-STORE the result objects on the configured node."""
    export = export_job(study, result, cams, scan, out_dir, warnings)

    def run(progress: Progress) -> SentResult:
        written = export(sub_progress(progress, 0.0, 0.4))
        with importing(progress):
            from app.dicomnet.link import DicomLink
            from app.dicomnet.store import store_files
        progress.update(0.4, "storing on the PACS")
        link = DicomLink(settings, listener=listener)
        return SentResult(written, store_files(link, written.files,
                                               sub_progress(progress, 0.4, 1.0)))

    return run


def echo_job(settings: NetworkSettings,
             listener: AssociationListener | None = None) -> JobFn[EchoResult]:
    def run(progress: Progress) -> EchoResult:
        with importing(progress):
            from app.dicomnet.link import DicomLink
        return DicomLink(settings, listener=listener).echo()

    return run


def find_job(settings: NetworkSettings, listener: AssociationListener | None = None,
             **query: str) -> JobFn[list[StudyMatch]]:
    def run(progress: Progress) -> list[StudyMatch]:
        with importing(progress):
            from app.dicomnet.link import DicomLink
        progress.update(0.1, "querying the PACS")
        return DicomLink(settings, listener=listener).find_studies(**query)

    return run


def retrieve_job(settings: NetworkSettings, study: StudyMatch, import_dir: Path,
                 listener: AssociationListener | None = None) -> JobFn[RetrieveResult]:
    """Retrieve one :class:`~app.dicomnet.link.StudyMatch` into ``import_dir``."""

    def run(progress: Progress) -> RetrieveResult:
        with importing(progress):
            from app.dicomnet.link import DicomLink
            from app.dicomnet.retrieve import retrieve_study
        return retrieve_study(DicomLink(settings, listener=listener), study.study_uid, import_dir,
                              progress, patient_id=study.patient_id, expected=study.n_instances)

    return run
