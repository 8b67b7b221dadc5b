"""The source images a result refers to: headers of the slices the model read.

The SR and the captures must sit in the patient's study and cite the images they came from, so
their patient/study modules are copied from real source headers (highdicom does that from the
"evidence"), never retyped. An :class:`~app.dicom.types.AssembledStudy` knows the SOP Instance
UIDs of its slices; the scan knows the files. Only the slices used by the prediction are read
(headers only, ``stop_before_pixels``): a few dozen small reads, not the whole study again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from app.export.errors import ExportError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from app.dicom.scan import ScanResult
    from app.dicom.types import AssembledStudy


@dataclass
class SourceImages:
    """Headers of the slices a prediction used.

    Attributes
    ----------
    by_phase:
        phase → headers of that phase's used slices, in table order (the study's pairs).
    by_uid:
        SOP Instance UID → header, for every header in ``by_phase``.
    """

    by_phase: dict[str, list[Dataset]]
    by_uid: dict[str, Dataset]

    @property
    def all(self) -> list[Dataset]:
        """Every header, phase by phase (highdicom's evidence)."""
        return [ds for headers in self.by_phase.values() for ds in headers]


def instance_paths(scan: ScanResult, series_uids: Iterable[str]) -> dict[str, Path]:
    """SOP Instance UID → file for the instances of the given series (split parts included)."""
    wanted = set(series_uids)
    paths: dict[str, Path] = {}
    for study in scan.studies:
        for series in study.series:
            if series.series_instance_uid in wanted:
                for inst in series.instances:
                    paths.setdefault(inst.sop_instance_uid, inst.path)
    return paths


def source_files(folder: Path, study: AssembledStudy) -> dict[str, Path]:
    """SOP Instance UID → file for the study's series, found by the project's own scanner.

    For callers that kept only the assembled study (``hcc-response predict``): a header-only
    rescan of ``folder`` (about a second for a 3 × 50-slice study), so that the files are found
    exactly as the import found them (no preamble, odd names, nested folders).
    """
    from app.dicom.scan import scan_folder

    return instance_paths(scan_folder(folder), study.assignment.values())


def read_sources(study: AssembledStudy, paths: Mapping[str, Path],
                 pair_indices: Sequence[int] | None = None) -> SourceImages:
    """Read the headers of the slices used by ``study.pairs`` (or only ``pair_indices``).

    Raises
    ------
    ExportError
        When a source file is no longer where the scan found it, or is no longer DICOM; the
        message names the file (the study must be imported again).
    """
    indices = range(len(study.pairs)) if pair_indices is None else pair_indices
    by_phase: dict[str, list[Dataset]] = {}
    by_uid: dict[str, Dataset] = {}
    for phase in study.phases:
        volume = study.volumes[phase]
        seen: list[Dataset] = []
        for k in indices:
            uid = volume.sop_instance_uids[study.pairs[k].index[phase]]
            if uid in by_uid:
                continue
            path = paths.get(uid)
            if path is None:
                raise ExportError(f"source image {uid} ({phase}) is not in the imported folder")
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except (OSError, InvalidDicomError) as exc:
                raise ExportError(f"cannot read source image {path}: {exc}") from exc
            by_uid[uid] = ds
            seen.append(ds)
        by_phase[phase] = seen
    return SourceImages(by_phase=by_phase, by_uid=by_uid)
