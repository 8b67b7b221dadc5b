"""Walking the studies of a scan: (patient, study) pairs and a study's identity.

The desktop app's browser, its import job and the case flow all walk a
:class:`~app.dicom.scan.ScanResult` the same way; this is that walk, in the DICOM layer where
the types live (it used to sit in the browser widget's module, which made the Qt-free jobs
import a widget file).
"""

from __future__ import annotations

from collections.abc import Iterator

from app.dicom.scan import PatientInfo, ScanResult, StudyInfo


def study_key(study: StudyInfo) -> str:
    """A study's identity within a scan (its Study Instance UID)."""
    return study.study_uid


def iter_studies(scan: ScanResult) -> Iterator[tuple[PatientInfo, StudyInfo]]:
    """(patient, study) pairs in scan order."""
    for patient in scan.patients:
        for study in patient.studies:
            yield patient, study
