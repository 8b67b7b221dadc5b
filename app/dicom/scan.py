"""Scan a folder of DICOM files: headers only, grouped patient → study → series, checked.

:func:`scan_folder` walks a folder recursively (following folder links once, so that link loops
end), reads each file's header with :func:`app.dicom.tags.read_header` (no pixel decoding; the
pixel data's declared length is checked against the file), and groups the images by patient,
study and series. A series is split where it mixes orientations, matrix sizes or acquisitions
that repeat positions; localizers inside a series are dropped and counted; each part's geometry
is checked from its positions (:mod:`app.dicom.geometry`).

Every file ends as exactly one of ``used``, ``skipped`` or ``rejected`` with a reason, and every
series as ``ok``, ``warnings`` or ``refused`` with a reason (RELIABILITY.md 1–15). The result is
ordered by content (UIDs, numbers, positions), never by file names, so that the same files
renamed or shuffled give the same result.
"""

from __future__ import annotations

import os
import stat
import statistics
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

from app.dicom.errors import FolderError
from app.dicom.geometry import (
    analyse_positions,
    classify_orientation,
    normal_of,
    same_orientation,
)
from app.dicom.tags import FileProblem, FrameGeometry, Header, describe, read_header
from app.dicom.types import InstanceRef, SeriesInfo
from app.progress import NULL_PROGRESS, Progress

FileStatus = Literal["used", "skipped", "rejected"]

#: Orientations the model can use; others are listed but refused.
INTENDED_ORIENTATION = "axial"
INTENDED_MODALITY = "CT"
#: Distinct per-file warnings listed on a series before the rest is summarised.
MAX_FILE_WARNINGS = 5


@dataclass
class FileOutcome:
    """What became of one file found by the scan."""

    path: Path
    status: FileStatus
    reason: str = ""
    series_uid: str | None = None


@dataclass
class StudyInfo:
    """One study of one patient with its series (split parts are separate entries)."""

    study_uid: str
    study_date: str
    study_description: str
    patient_id: str
    patient_name: str
    series: list[SeriesInfo] = field(default_factory=list)

    def usable_series(self) -> list[SeriesInfo]:
        """Series that are not refused (candidates for phase assignment)."""
        return [s for s in self.series if s.status != "refused"]


@dataclass
class PatientInfo:
    """One patient (keyed by PatientID, or by name when the ID is blank)."""

    patient_id: str
    patient_name: str
    studies: list[StudyInfo] = field(default_factory=list)


@dataclass
class ScanResult:
    """The outcome of :func:`scan_folder`.

    Attributes
    ----------
    root:
        The folder that was scanned.
    patients:
        Patients → studies → series, in a content-defined order.
    files:
        One :class:`FileOutcome` per file found, sorted by path.
    elapsed_s:
        Wall time of the scan.
    """

    root: Path
    patients: list[PatientInfo]
    files: list[FileOutcome]
    elapsed_s: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        """Number of files per status (used / skipped / rejected)."""
        c = Counter(f.status for f in self.files)
        return {k: c.get(k, 0) for k in ("used", "skipped", "rejected")}

    @property
    def studies(self) -> list[StudyInfo]:
        """All studies of all patients."""
        return [s for p in self.patients for s in p.studies]

    @property
    def series(self) -> list[SeriesInfo]:
        """All series (and split parts) of all studies."""
        return [s for st in self.studies for s in st.series]

    @property
    def problem(self) -> str | None:
        """Why nothing usable was found (the CLI exits 2 with this), or None."""
        if any(s.status != "refused" for s in self.series):
            return None
        if not self.series:
            if not self.files or all(f.reason.startswith("not DICOM") for f in self.files):
                return "no DICOM found"
            c = self.counts
            return (f"no DICOM image found: {c['skipped']} files skipped, "
                    f"{c['rejected']} rejected")
        reasons = sorted({s.refused_reason or "" for s in self.series})
        return "no usable series: " + "; ".join(reasons)

    def find_series(self, uid: str) -> SeriesInfo | None:
        """The series (or split part) with this ``uid``; a plain Series Instance UID also
        matches its first part."""
        for s in self.series:
            if s.uid == uid:
                return s
        for s in self.series:
            if s.series_instance_uid == uid:
                return s
        return None


# --------------------------------------------------------------------------------------------
# Walking the folder


def _walk(root: Path, outcomes: list[FileOutcome]) -> Iterator[Path]:
    """Yield the regular files under ``root``, following folder links once.

    Link loops and files reached twice through links end as skipped outcomes; broken links and
    unreadable folders as rejected ones. Entries are visited in sorted order.
    """
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: dict[tuple[int, int], Path] = {}
    try:
        st = root.stat()
    except OSError as exc:
        raise FolderError(f"cannot read folder {root}: {exc.strerror or exc}") from exc
    seen_dirs.add((st.st_dev, st.st_ino))
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except FileNotFoundError:
            outcomes.append(FileOutcome(folder, "rejected", "folder vanished during the scan"))
            continue
        except OSError as exc:
            if folder == root:
                raise FolderError(f"cannot read folder {root}: {exc.strerror or exc}") from exc
            outcomes.append(
                FileOutcome(folder, "rejected", f"unreadable folder: {exc.strerror or exc}")
            )
            continue
        subdirs: list[Path] = []
        for entry in entries:
            path = Path(entry.path)
            try:
                est = entry.stat(follow_symlinks=True)
            except FileNotFoundError:
                reason = ("broken symbolic link" if entry.is_symlink()
                          else "file vanished during the scan")
                outcomes.append(FileOutcome(path, "rejected", reason))
                continue
            except OSError as exc:
                reason = ("symbolic link loop" if exc.errno == 40
                          else f"unreadable: {exc.strerror or exc}")
                outcomes.append(FileOutcome(path, "rejected", reason))
                continue
            key = (est.st_dev, est.st_ino)
            if stat.S_ISDIR(est.st_mode):
                if key in seen_dirs:
                    outcomes.append(FileOutcome(
                        path, "skipped", "folder link to an already scanned folder (link loop)"))
                    continue
                seen_dirs.add(key)
                subdirs.append(path)
            elif stat.S_ISREG(est.st_mode):
                if key in seen_files:
                    outcomes.append(FileOutcome(
                        path, "skipped", f"same file as {seen_files[key]} (linked)"))
                    continue
                seen_files[key] = path
                yield path
            else:
                outcomes.append(FileOutcome(path, "skipped", "not a regular file"))
        stack.extend(reversed(subdirs))


# --------------------------------------------------------------------------------------------
# Grouping and splitting


@dataclass
class _Slice:
    header: Header
    frame: int | None
    geometry: FrameGeometry


def _expand(headers: list[Header]) -> list[_Slice]:
    out: list[_Slice] = []
    for h in headers:
        if len(h.frames) == 1 and not h.enhanced:
            out.append(_Slice(h, None, h.frames[0]))
        else:
            out.extend(_Slice(h, i, g) for i, g in enumerate(h.frames))
    return out


def _split_orientation(slices: list[_Slice]) -> list[list[_Slice]]:
    groups: list[tuple[tuple[float, ...], list[_Slice]]] = []
    for s in slices:
        for ori, members in groups:
            if ori == s.geometry.orientation or same_orientation(ori, s.geometry.orientation):
                members.append(s)
                break
        else:
            groups.append((s.geometry.orientation, [s]))
    return [m for _, m in groups]


def _split_matrix(slices: list[_Slice]) -> list[list[_Slice]]:
    by_size: dict[tuple[int, int], list[_Slice]] = defaultdict(list)
    for s in slices:
        by_size[(s.header.rows, s.header.columns)].append(s)
    return [by_size[k] for k in sorted(by_size)]


def _split_duplicates(slices: list[_Slice]) -> tuple[list[list[_Slice]], str | None]:
    """Split a part whose positions repeat into acquisitions, where that resolves it.

    Returns the parts and a note of what was done (None when nothing repeated).
    """
    z = [_z(s) for s in slices]
    rounded = Counter(round(v, 2) for v in z)
    if all(n == 1 for n in rounded.values()):
        return [slices], None
    by_acq: dict[int, list[_Slice]] = defaultdict(list)
    for s in slices:
        by_acq[s.header.acquisition_number if s.header.acquisition_number is not None else -1]\
            .append(s)
    if len(by_acq) > 1:
        parts = [by_acq[k] for k in sorted(by_acq)]
        ok = all(
            len({round(_z(s), 2) for s in p}) == len(p)
            for p in parts
        )
        # Only a split into real volumes resolves the repeats; slivers of one or two slices
        # (the same level scanned again) are left for the geometry check to refuse.
        if ok and all(len(p) >= 3 for p in parts):
            return parts, (f"split into {len(parts)} acquisitions (AcquisitionNumber "
                           f"{', '.join(str(k) for k in sorted(by_acq))}) that repeat positions")
    return [slices], "duplicate positions"


@lru_cache(maxsize=256)
def _normal_of(orientation: tuple[float, ...]) -> tuple[float, float, float]:
    n = normal_of(orientation)
    return (float(n[0]), float(n[1]), float(n[2]))


def _z(s: _Slice) -> float:
    """Position along the slice normal (plain Python: called once per slice, numpy is slower)."""
    n = _normal_of(s.geometry.orientation)
    p = s.geometry.position
    return p[0] * n[0] + p[1] * n[1] + p[2] * n[2]


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _min(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _build_series(
    uid: str, slices: list[_Slice], notes: list[str], refused: str | None
) -> SeriesInfo:
    """One SeriesInfo from one part: geometry checks, tags from its slices, status."""
    orientation = slices[0].geometry.orientation
    # The lowest slice represents the series: its descriptive tags (names, descriptions,
    # contrast, scanner, GantryDetectorTilt) are read once, here.
    rep = min(slices, key=lambda s: (round(_z(s), 3), s.header.sop_instance_uid)).header
    describe(rep)
    report = analyse_positions(
        [s.geometry.position for s in slices], orientation, tilt_tag=rep.gantry_tilt
    )
    order = report.order
    instances = [
        InstanceRef(
            path=slices[i].header.path,
            sop_instance_uid=slices[i].header.sop_instance_uid,
            position=tuple(float(v) for v in slices[i].geometry.position),  # type: ignore[arg-type]
            z=float(report.z[i]),
            instance_number=slices[i].header.instance_number,
            frame=slices[i].frame,
        )
        for i in order
    ]
    headers = [slices[i].header for i in order]
    warnings = list(notes) + report.warnings
    header_warnings = Counter(w for h in {id(h): h for h in headers}.values() for w in h.warnings)
    listed = sorted(header_warnings.items())
    for w, n in listed[:MAX_FILE_WARNINGS]:
        warnings.append(f"{w} ({n} file{'s' if n > 1 else ''})")
    if len(listed) > MAX_FILE_WARNINGS:
        warnings.append(f"and {len(listed) - MAX_FILE_WARNINGS} more kinds of file warnings")
    orient = classify_orientation(orientation)
    # The most useful reason first: outside the intended use says more than bad geometry.
    reason = refused
    if reason is None and rep.modality != INTENDED_MODALITY:
        reason = f"outside the intended use: modality {rep.modality or 'unknown'} (CT needed)"
    if reason is None and orient != INTENDED_ORIENTATION:
        reason = f"outside the intended use: {orient} series (axial CT needed)"
    reason = reason or report.refused
    thickness = _median([s.geometry.slice_thickness for s in slices
                         if s.geometry.slice_thickness is not None])
    spacing = slices[0].geometry.pixel_spacing
    info = SeriesInfo(
        uid=uid,
        series_instance_uid=rep.series_uid,
        series_number=rep.series_number,
        description=rep.series_description,
        modality=rep.modality,
        orientation=orient,
        image_type=list(rep.image_type),
        n_slices=len(instances),
        rows=rep.rows,
        columns=rep.columns,
        pixel_spacing=(float(spacing[0]), float(spacing[1])) if spacing else None,
        slice_thickness=thickness,
        slice_spacing=report.spacing,
        z_range=report.z_range,
        frame_of_reference_uid=rep.frame_of_reference_uid,
        patient_id=rep.patient_id,
        patient_name=rep.patient_name,
        study_uid=rep.study_uid,
        study_date=rep.study_date,
        study_description=rep.study_description,
        manufacturer=rep.manufacturer,
        manufacturer_model=rep.manufacturer_model,
        kvp=rep.kvp,
        convolution_kernel=rep.convolution_kernel,
        contrast_agent=rep.contrast_agent,
        contrast_route=rep.contrast_route,
        contrast_volume_ml=rep.contrast_volume_ml,
        contrast_start_time=rep.contrast_start_time,
        acquisition_time=_min([h.acquisition_time for h in headers]),
        series_time=rep.series_time,
        content_time=_min([h.content_time for h in headers]),
        transfer_syntax=rep.transfer_syntax,
        warnings=warnings,
        refused_reason=reason,
        instances=instances,
        image_orientation=tuple(float(v) for v in orientation),  # type: ignore[arg-type]
        tilt_deg=report.tilt_deg,
        gaps=list(report.gaps),
    )
    info.status = "refused" if reason else ("warnings" if warnings else "ok")
    return info


def _series_parts(
    headers: list[Header], outcomes: dict[Path, FileOutcome]
) -> list[tuple[list[_Slice], list[str], str | None]]:
    """Split one Series Instance UID's files into parts, each with notes and a refusal."""
    localizers = [h for h in headers if h.is_localizer]
    images = [h for h in headers if not h.is_localizer]
    notes: list[str] = []
    parts: list[tuple[list[_Slice], list[str], str | None]] = []
    if localizers and images:
        for h in localizers:
            outcomes[h.path] = FileOutcome(h.path, "skipped", "localizer image dropped from "
                                           f"series {h.series_number}", h.series_uid)
        notes.append(f"{len(localizers)} localizer image{'s' if len(localizers) > 1 else ''} "
                     "dropped")
    elif localizers:
        return [(_expand(localizers), [], "localizer (scout) images only: not a usable series")]
    slices = _expand(images)
    by_orientation = _split_orientation(slices)
    if len(by_orientation) > 1:
        notes.append(f"series mixes {len(by_orientation)} orientations: split")
    for group in by_orientation:
        by_matrix = _split_matrix(group)
        if len(by_matrix) > 1:
            notes.append(f"series mixes {len(by_matrix)} matrix sizes: split")
        for sub in by_matrix:
            pieces, note = _split_duplicates(sub)
            if note == "duplicate positions":
                parts.append((sub, list(notes), None))  # geometry refuses it with the numbers
                continue
            extra = [note] if note else []
            parts.extend((p, notes + extra, None) for p in pieces)
    return parts


def _part_key(part: list[_Slice]) -> tuple[object, ...]:
    z = [_z(s) for s in part]
    acq = min((s.header.acquisition_number or 0) for s in part)
    return (-len(part), acq, round(min(z), 3), min(s.header.sop_instance_uid for s in part))


def _short_warning(text: str) -> str:
    """A pydicom warning as one short line (the documentation link cut off)."""
    text = text.split(" Please see ")[0].strip()
    return "pydicom: " + (text if len(text) <= 100 else text[:97] + "...")


def scan_folder(path: str | Path, progress: Progress | None = None) -> ScanResult:
    """Scan ``path`` recursively and group what it holds into patients, studies and series.

    Reads headers only (plus a few bytes to check the pixel data's length), so that a folder of a
    few thousand slices scans in seconds; decoding happens later in
    :func:`app.dicom.volume.load_volume`, only for the series that are used.

    Parameters
    ----------
    path:
        The folder.
    progress:
        Progress/cancel object; cancellation raises :class:`app.errors.Cancelled`.

    Returns
    -------
    ScanResult
        Patients → studies → series, and one outcome per file. A folder without any usable
        image gives a result whose :attr:`ScanResult.problem` says so.

    Raises
    ------
    FolderError
        ``path`` does not exist, is not a folder, or cannot be listed.
    """
    progress = progress or NULL_PROGRESS
    t0 = time.perf_counter()
    root = Path(path)
    if not root.exists():
        raise FolderError(f"folder not found: {root}")
    if not root.is_dir():
        raise FolderError(f"not a folder: {root}")
    walk_outcomes: list[FileOutcome] = []
    progress.update(0.0, "listing files")
    files = list(_walk(root, walk_outcomes))
    progress.check()
    outcomes: dict[Path, FileOutcome] = {o.path: o for o in walk_outcomes}
    headers: list[Header] = []
    n = len(files)
    # pydicom reports odd values (wrong VR content, bad UIDs) as Python warnings; they belong to
    # the file's outcome (RELIABILITY.md 4: "no effect beyond a warning"), not to stderr.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i, f in enumerate(files):
            if i % 16 == 0:
                progress.check()
                progress.update(0.95 * i / max(n, 1), f"reading headers {i}/{n}")
            read = read_header(f)
            if isinstance(read, FileProblem):
                outcomes[f] = FileOutcome(f, read.status, read.reason)
            else:
                headers.append(read)
                # Once per file: pydicom may say the same thing twice (read_partial checks the
                # character set twice), and a series counts its warnings in files.
                for w in caught:
                    text = _short_warning(str(w.message))
                    if text not in read.warnings:
                        read.warnings.append(text)
            caught.clear()
    progress.update(0.95, "grouping series")
    # Duplicate SOP Instance UIDs: the same image twice (copied files); keep one, by content.
    by_sop: dict[str, list[Header]] = defaultdict(list)
    for h in headers:
        by_sop[h.sop_instance_uid].append(h)
    unique: list[Header] = []
    for sop in sorted(by_sop):
        copies = sorted(by_sop[sop], key=lambda h: (h.size, str(h.path)))
        unique.append(copies[0])
        for dup in copies[1:]:
            outcomes[dup.path] = FileOutcome(
                dup.path, "skipped", f"duplicate of {copies[0].path} (same SOP Instance UID)")
    by_series: dict[str, list[Header]] = defaultdict(list)
    for h in unique:
        by_series[h.series_uid].append(h)
    all_series: list[SeriesInfo] = []
    for series_uid in sorted(by_series):
        parts = _series_parts(by_series[series_uid], outcomes)
        parts.sort(key=lambda p: _part_key(p[0]))
        for k, (slices, notes, refused) in enumerate(parts):
            uid = series_uid if k == 0 else f"{series_uid}#{k + 1}"
            info = _build_series(uid, slices, notes, refused)
            all_series.append(info)
            for s in slices:
                if s.header.path not in outcomes:
                    note = f"series {info.series_number}"
                    if info.status == "refused":
                        note += " (refused, listed only)"
                    outcomes[s.header.path] = FileOutcome(s.header.path, "used", note, uid)
    patients = _group(all_series)
    result = ScanResult(
        root=root,
        patients=patients,
        files=sorted(outcomes.values(), key=lambda o: str(o.path)),
        elapsed_s=time.perf_counter() - t0,
    )
    progress.update(1.0, f"{len(all_series)} series")
    return result


def _group(series: list[SeriesInfo]) -> list[PatientInfo]:
    """Patients → studies → series, each level in a content-defined order."""
    patients: dict[tuple[str, str], PatientInfo] = {}
    studies: dict[str, StudyInfo] = {}
    for s in series:
        pkey = (s.patient_id, "" if s.patient_id else s.patient_name)
        patient = patients.get(pkey)
        if patient is None:
            patient = patients[pkey] = PatientInfo(s.patient_id, s.patient_name)
        skey = f"{pkey}|{s.study_uid}"
        study = studies.get(skey)
        if study is None:
            study = studies[skey] = StudyInfo(
                s.study_uid, s.study_date, s.study_description, s.patient_id, s.patient_name)
            patient.studies.append(study)
        study.series.append(s)
    for st in studies.values():
        st.series.sort(key=lambda s: (s.series_number if s.series_number is not None else 1 << 30,
                                      s.uid))
    for p in patients.values():
        p.studies.sort(key=lambda st: (st.study_date, st.study_uid))
    return [patients[k] for k in sorted(patients)]
