"""The desktop app's DICOM jobs (export, PACS echo/query/retrieve/store), as plain functions.

Like :mod:`app.ui.jobs`: each ``*_job`` returns ``fn(progress) -> result`` for the
:class:`~app.ui.workers.JobManager`; the work itself is the Qt-free :mod:`app.export` and
:mod:`app.dicomnet`, exactly what ``predict --dicom-out`` and the tests run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.dicom.types import AssembledStudy
from app.errors import InputError
from app.progress import Progress, sub_progress
from app.ui.jobs import importing

JobFn = Callable[[Progress], Any]


@dataclass
class SentResult:
    """A result stored on the PACS: what was written locally and what the node accepted."""

    export: Any  # app.export.writer.DicomExport
    stored: Any  # app.dicomnet.store.StoreResult


def export_job(study: AssembledStudy, result: Any, cams: Any, scan: Any, out_dir: Path) -> JobFn:
    """Write the SR and the captures of the shown prediction into ``out_dir``."""

    def run(progress: Progress) -> Any:
        if cams is None:
            raise InputError("the Grad-CAM heatmaps are still being computed; export again "
                             "when they are shown")
        with importing(progress):
            from app.export.sources import instance_paths
            from app.export.writer import export_dicom
        progress.update(0.1, "writing DICOM SR and captures")
        files = instance_paths(scan, study.assignment.values())
        return export_dicom(study, result, cams, files, out_dir)

    return run


def send_job(settings: Any, study: AssembledStudy, result: Any, cams: Any, scan: Any,
             out_dir: Path, listener: Any = None) -> JobFn:
    """Export (into ``out_dir``) and C-STORE the result objects on the configured node."""
    export = export_job(study, result, cams, scan, out_dir)

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


def echo_job(settings: Any, listener: Any = None) -> JobFn:
    def run(progress: Progress) -> Any:
        with importing(progress):
            from app.dicomnet.link import DicomLink
        return DicomLink(settings, listener=listener).echo()

    return run


def find_job(settings: Any, listener: Any = None, **query: str) -> JobFn:
    def run(progress: Progress) -> Any:
        with importing(progress):
            from app.dicomnet.link import DicomLink
        progress.update(0.1, "querying the PACS")
        return DicomLink(settings, listener=listener).find_studies(**query)

    return run


def retrieve_job(settings: Any, study: Any, import_dir: Path, listener: Any = None) -> JobFn:
    """Retrieve one :class:`~app.dicomnet.link.StudyMatch` into ``import_dir``."""

    def run(progress: Progress) -> Any:
        with importing(progress):
            from app.dicomnet.link import DicomLink
            from app.dicomnet.retrieve import retrieve_study
        return retrieve_study(DicomLink(settings, listener=listener), study.study_uid, import_dir,
                              progress, patient_id=study.patient_id, expected=study.n_instances)

    return run
