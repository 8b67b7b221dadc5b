"""Reading one DICOM file's header cheaply and checking its pixel data without decoding it.

:func:`read_header` is the per-file unit of work of the scan. It opens the file once, lets pydicom
parse only the attributes the application needs (``specific_tags``) up to the pixel data, then
reads the pixel data element's own header from the same open file to check that the declared
length fits in the file and matches the image size. It never decodes pixels and never allocates
a declared length: long elements are skipped with a seek (``defer_size``), and a declared length
that runs past the end of the file shows up as a read position beyond the file size.

The result is a plain :class:`Header` (no pydicom objects), or a :class:`FileProblem` saying why
the file is skipped or rejected. Tag values are converted defensively: a malformed value (wrong
VR, odd character set) costs a warning, not the file (RELIABILITY.md 4).
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

#: Attributes the scan reads; everything else is skipped by a seek.
SCAN_TAGS: tuple[str, ...] = (
    "SOPClassUID", "SOPInstanceUID", "Modality", "ImageType", "PatientID", "PatientName",
    "PatientBirthDate", "StudyInstanceUID", "StudyDate", "StudyTime", "StudyDescription",
    "AccessionNumber", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription",
    "InstanceNumber", "AcquisitionNumber", "ImagePositionPatient", "ImageOrientationPatient",
    "PixelSpacing", "SliceThickness", "SpacingBetweenSlices", "Rows", "Columns",
    "BitsAllocated", "BitsStored", "SamplesPerPixel", "PixelRepresentation",
    "PhotometricInterpretation", "NumberOfFrames", "FrameOfReferenceUID", "Manufacturer",
    "ManufacturerModelName", "KVP", "ConvolutionKernel", "ContrastBolusAgent",
    "ContrastBolusRoute", "ContrastBolusVolume", "ContrastBolusStartTime", "AcquisitionTime",
    "SeriesTime", "ContentTime", "GantryDetectorTilt", "RescaleSlope", "RescaleIntercept",
    "BodyPartExamined", "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence",
)

#: Values larger than this are skipped with a seek instead of being read (RELIABILITY.md 5).
DEFER_SIZE = 4 * 1024 * 1024

_PIXEL_DATA_TAG = (0x7FE0, 0x0010)
_ITEM = (0xFFFE, 0xE000)
_SEQ_DELIM = (0xFFFE, 0xE0DD)
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_DEFLATED = "1.2.840.10008.1.2.1.99"
_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", _DEFLATED}

Outcome = Literal["used", "skipped", "rejected"]


@dataclass
class FileProblem:
    """Why a file is not used: ``status`` is ``skipped`` (not ours) or ``rejected`` (broken)."""

    status: Outcome
    reason: str


@dataclass
class FrameGeometry:
    """Position and orientation of one frame (or of a single-frame file)."""

    position: tuple[float, float, float]
    orientation: tuple[float, ...]
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None


@dataclass
class Header:
    """What the scan keeps of one image file (plain values only)."""

    path: Path
    size: int
    sop_class_uid: str
    sop_instance_uid: str
    modality: str
    image_type: list[str]
    patient_id: str
    patient_name: str
    study_uid: str
    study_date: str
    study_description: str
    series_uid: str
    series_number: int | None
    series_description: str
    instance_number: int | None
    acquisition_number: int | None
    frames: list[FrameGeometry]
    rows: int
    columns: int
    frame_of_reference_uid: str
    transfer_syntax: str
    manufacturer: str = ""
    manufacturer_model: str = ""
    kvp: float | None = None
    convolution_kernel: str = ""
    contrast_agent: str | None = None
    contrast_route: str | None = None
    contrast_volume_ml: float | None = None
    contrast_start_time: float | None = None
    acquisition_time: float | None = None
    series_time: float | None = None
    content_time: float | None = None
    gantry_tilt: float | None = None
    enhanced: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def is_localizer(self) -> bool:
        """ImageType says LOCALIZER (scout/topogram), whatever the vendor puts elsewhere."""
        return any(v.upper() == "LOCALIZER" for v in self.image_type)


def parse_tm(value: Any) -> float | None:
    """Seconds since midnight from a DICOM TM value (``HHMMSS.FFFFFF``, also ``HH:MM:SS``).

    Returns None for an empty or unparseable value: missing times are common (blanked exports),
    and the phase logic treats them as unknown rather than failing.
    """
    text = str(value or "").strip().replace(":", "")
    if not text:
        return None
    try:
        main, _, frac = text.partition(".")
        hh = int(main[0:2])
        mm = int(main[2:4]) if len(main) >= 4 else 0
        ss = int(main[4:6]) if len(main) >= 6 else 0
        seconds = hh * 3600 + mm * 60 + ss + (float("0." + frac) if frac.isdigit() else 0.0)
    except ValueError:
        return None
    if not (0 <= hh < 24 and 0 <= mm < 60 and 0 <= ss < 61):
        return None
    return float(seconds)


@lru_cache(maxsize=64)
def decoder_problem(transfer_syntax: str) -> str | None:
    """Why pixel data in ``transfer_syntax`` cannot be decoded here, or None when it can.

    Asks pydicom's pixel decoder registry once per syntax (cached), so that an undecodable file
    is rejected by name at scan time and not at prediction time (RELIABILITY.md 10).
    """
    if not transfer_syntax or transfer_syntax in _UNCOMPRESSED:
        return None
    from pydicom.pixels import get_decoder

    uid = UID(transfer_syntax)
    name = uid.name if uid.name != transfer_syntax else "unknown"
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        return f"unsupported transfer syntax {transfer_syntax} ({name}): no decoder available"
    if not decoder.is_available:
        return (
            f"unsupported transfer syntax {transfer_syntax} ({name}): its decoder plugin is "
            "not installed"
        )
    return None


def derived_uid(*parts: str) -> str:
    """A stable DICOM UID (``2.25.<decimal>``) derived from content, for blanked UIDs."""
    import hashlib

    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogateescape")).hexdigest()
    return "2.25." + str(int(digest[:30], 16))


def _looks_like_raw_dataset(head: bytes) -> bool:
    """True when a file without preamble starts like a DICOM data set.

    Only such files are read with ``force=True`` (RELIABILITY.md 1 forbids forcing arbitrary
    files): the first element must be in group 0002 or 0008 with a plausible VR or length.
    """
    if len(head) < 8:
        return False
    vr = head[4:6]
    explicit = vr.isalpha() and vr.isupper()
    group, elem = struct.unpack("<HH", head[:4])
    if group in (0x0002, 0x0008) and elem <= 0x1000:
        return explicit or struct.unpack("<I", head[4:8])[0] < 1024
    group, elem = struct.unpack(">HH", head[:4])  # big endian is always explicit VR
    return group in (0x0002, 0x0008) and elem <= 0x1000 and explicit


def _str(ds: Dataset, keyword: str, warnings: list[str]) -> str:
    try:
        value = ds.get(keyword)
    except Exception as exc:  # a malformed value must not cost the file
        warnings.append(f"unreadable {keyword}: {type(exc).__name__}")
        return ""
    if value is None:
        return ""
    return str(value).strip()


def _num(ds: Dataset, keyword: str, warnings: list[str]) -> float | None:
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
            value = value[0]
        out = float(value)
    except Exception as exc:
        warnings.append(f"unreadable {keyword}: {type(exc).__name__}")
        return None
    return out if math.isfinite(out) else None


def _int(ds: Dataset, keyword: str, warnings: list[str]) -> int | None:
    value = _num(ds, keyword, warnings)
    return None if value is None else int(value)


def _floats(obj: Any, keyword: str, n: int) -> tuple[float, ...] | None:
    try:
        value = obj.get(keyword)
        if value is None:
            return None
        out = tuple(float(v) for v in value)
    except Exception:
        return None
    if len(out) != n or not all(math.isfinite(v) for v in out):
        return None
    return out


def _first(seq_owner: Any, keyword: str) -> Any:
    try:
        seq = seq_owner.get(keyword)
    except Exception:
        return None
    if not seq:
        return None
    return seq[0]


def _enhanced_frames(ds: Dataset) -> list[FrameGeometry] | str:
    """Per-frame geometry of an enhanced multi-frame image, or the name of what is missing."""
    shared = _first(ds, "SharedFunctionalGroupsSequence")
    try:
        per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    except Exception:
        per_frame = []
    if not per_frame:
        return "PerFrameFunctionalGroupsSequence"

    def group(item: Any, name: str) -> Any:
        found = _first(item, name) if item is not None else None
        if found is None and shared is not None:
            found = _first(shared, name)
        return found

    frames: list[FrameGeometry] = []
    for item in per_frame:
        pos_item = group(item, "PlanePositionSequence")
        ori_item = group(item, "PlaneOrientationSequence")
        pix_item = group(item, "PixelMeasuresSequence")
        position = _floats(pos_item, "ImagePositionPatient", 3) if pos_item else None
        orientation = _floats(ori_item, "ImageOrientationPatient", 6) if ori_item else None
        if position is None:
            return "ImagePositionPatient (per frame)"
        if orientation is None:
            return "ImageOrientationPatient (functional groups)"
        spacing = _floats(pix_item, "PixelSpacing", 2) if pix_item else None
        thickness = None
        if pix_item is not None:
            try:
                t = pix_item.get("SliceThickness")
                thickness = float(t) if t not in (None, "") else None
            except Exception:
                thickness = None
        frames.append(FrameGeometry(position, orientation, spacing, thickness))  # type: ignore[arg-type]
    return frames


def _has_pixel_tag(fp: Any, pos: int, transfer_syntax: str) -> bool:
    """True when the element at ``pos`` (where header reading stopped) is Pixel Data."""
    fp.seek(pos)
    head = fp.read(4)
    if len(head) < 4:
        return False
    endian = ">" if transfer_syntax == "1.2.840.10008.1.2.2" else "<"
    return struct.unpack(endian + "HH", head) == _PIXEL_DATA_TAG


def _pixel_problem(
    fp: Any, pos: int, size: int, ds: Dataset, transfer_syntax: str, expected: int
) -> str | None:
    """Check the pixel data element at ``pos`` against the file size and the image size."""
    fp.seek(pos)
    head = fp.read(12)
    if len(head) < 8:
        return "no pixel data"
    big = transfer_syntax == "1.2.840.10008.1.2.2"
    endian = ">" if big else "<"
    group, elem = struct.unpack(endian + "HH", head[:4])
    if (group, elem) != _PIXEL_DATA_TAG:
        return "no pixel data"
    implicit = getattr(ds, "original_encoding", (False, True))[0]
    if implicit is None:
        implicit = transfer_syntax == "1.2.840.10008.1.2"
    if implicit:
        (length,) = struct.unpack(endian + "I", head[4:8])
        value_at = pos + 8
    else:
        if len(head) < 12:
            return "pixel data truncated: the element header is cut off"
        (length,) = struct.unpack(endian + "I", head[8:12])
        value_at = pos + 12
    if length != 0xFFFFFFFF:
        if value_at + length > size:
            return (
                f"pixel data truncated: {max(size - value_at, 0)} of {length} declared bytes "
                "present in the file"
            )
        if transfer_syntax in _UNCOMPRESSED and length < expected:
            return f"pixel data too short: {length} bytes for an image needing {expected}"
        return None
    if transfer_syntax in _UNCOMPRESSED and transfer_syntax:
        return "pixel data has an undefined length in an uncompressed transfer syntax"
    # Encapsulated: walk the item headers (offset table + fragments) with seeks only.
    at = value_at
    fragments = 0
    while True:
        fp.seek(at)
        item = fp.read(8)
        if len(item) < 8:
            return "pixel data truncated: the encapsulated fragments run past the end of the file"
        tag = struct.unpack("<HH", item[:4])
        (item_len,) = struct.unpack("<I", item[4:8])
        if tag == _SEQ_DELIM:
            break
        if tag != _ITEM or item_len == 0xFFFFFFFF:
            return "pixel data corrupt: unexpected element inside encapsulated pixel data"
        at += 8 + item_len
        if at > size:
            return (
                f"pixel data truncated: a fragment of {item_len} bytes runs "
                f"{at - size} bytes past the end of the file"
            )
        fragments += 1
    if fragments < 2:  # the first item is the (possibly empty) basic offset table
        return "pixel data empty: no compressed fragments"
    return None


def read_header(path: Path) -> Header | FileProblem:
    """Read one file's header and check its pixel data; never decode pixels.

    Parameters
    ----------
    path:
        The file. It may vanish, be unreadable or be anything at all.

    Returns
    -------
    Header | FileProblem
        The header of a usable image, or why the file is skipped (not DICOM, not an image, not a
        CT image of the patient) or rejected (truncated, undecodable, missing attributes).
    """
    try:
        fp = open(path, "rb")  # noqa: SIM115 - closed in finally; dcmread reads from it
    except FileNotFoundError:
        return FileProblem("rejected", "file vanished during the scan")
    except PermissionError:
        return FileProblem("rejected", "unreadable: permission denied")
    except OSError as exc:
        return FileProblem("rejected", f"unreadable: {exc.strerror or type(exc).__name__}")
    try:
        return _read_open(fp, path)
    finally:
        fp.close()


def _read_open(fp: Any, path: Path) -> Header | FileProblem:
    size = os.fstat(fp.fileno()).st_size
    if size == 0:
        return FileProblem("skipped", "not DICOM: empty file")
    kwargs: dict[str, Any] = {
        "stop_before_pixels": True,
        "specific_tags": list(SCAN_TAGS),
        "defer_size": DEFER_SIZE,
    }
    forced = False
    try:
        ds = pydicom.dcmread(fp, **kwargs)
    except InvalidDicomError:
        fp.seek(0)
        if not _looks_like_raw_dataset(fp.read(8)):
            return FileProblem("skipped", "not DICOM")
        fp.seek(0)
        forced = True
        try:
            ds = pydicom.dcmread(fp, force=True, **kwargs)
        except Exception as exc:
            return FileProblem("rejected", f"unreadable DICOM: {type(exc).__name__}: {exc}")
    except Exception as exc:
        return FileProblem("rejected", f"unreadable DICOM: {type(exc).__name__}: {exc}")
    end = fp.tell()
    meta = getattr(ds, "file_meta", None)
    transfer_syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if end > size and transfer_syntax != _DEFLATED:
        return FileProblem(
            "rejected", f"corrupt: a declared element length runs {end - size} bytes past the "
            f"end of the {size}-byte file"
        )
    warnings: list[str] = []
    media_class = str(meta.get("MediaStorageSOPClassUID", "")) if meta is not None else ""
    sop_class = _str(ds, "SOPClassUID", warnings) or media_class
    if media_class == _DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
        return FileProblem("skipped", "not an image (DICOMDIR)")
    class_name = UID(sop_class).name if sop_class else ""
    if sop_class and "Image Storage" not in class_name:
        return FileProblem("skipped", f"not an image ({class_name or sop_class})")
    if sop_class.startswith("1.2.840.10008.5.1.4.1.1.7"):
        return FileProblem("skipped", f"not a CT image of the patient ({class_name})")
    if forced:
        warnings.append("no DICOM preamble/file meta; read as a raw data set")
    # Some anonymisers blank SOPInstanceUID in the data set but keep the file meta's copy.
    sop_instance = _str(ds, "SOPInstanceUID", warnings) or (
        str(meta.get("MediaStorageSOPInstanceUID", "")).strip() if meta is not None else "")
    missing = [] if sop_instance else ["SOPInstanceUID"]
    missing += [
        k for k in ("Rows",
                    "Columns", "BitsAllocated")
        if not _str(ds, k, warnings)
    ]
    if missing:
        if "Rows" not in ds and not _has_pixel_tag(fp, end, transfer_syntax):
            return FileProblem("skipped", "not an image (no pixel data)")
        return FileProblem("rejected", f"missing attribute {missing[0]}")
    problem = decoder_problem(transfer_syntax)
    if problem:
        return FileProblem("rejected", problem)

    rows = _int(ds, "Rows", warnings) or 0
    cols = _int(ds, "Columns", warnings) or 0
    n_frames = _int(ds, "NumberOfFrames", warnings) or 1
    bits = _int(ds, "BitsAllocated", warnings) or 16
    samples = _int(ds, "SamplesPerPixel", warnings) or 1
    expected = rows * cols * n_frames * samples * bits // 8
    if transfer_syntax == _DEFLATED:
        full = pydicom.dcmread(path)  # the data set is compressed as a whole: inflate to check
        data = full.get("PixelData")
        pix_problem = None if data is not None and len(data) >= expected else (
            "pixel data truncated" if data is not None else "no pixel data")
    else:
        pix_problem = _pixel_problem(fp, end, size, ds, transfer_syntax, expected)
    if pix_problem == "no pixel data":
        return FileProblem("skipped", "not an image (no pixel data)")
    if pix_problem:
        return FileProblem("rejected", pix_problem)

    enhanced = "PerFrameFunctionalGroupsSequence" in ds
    if enhanced:
        frames_or_missing = _enhanced_frames(ds)
        if isinstance(frames_or_missing, str):
            return FileProblem(
                "rejected", f"enhanced multi-frame image without {frames_or_missing}"
            )
        frames = frames_or_missing
        if len(frames) != n_frames:
            return FileProblem(
                "rejected", f"enhanced multi-frame image with {len(frames)} frame geometries "
                f"for {n_frames} frames"
            )
    else:
        if n_frames > 1:
            return FileProblem(
                "rejected", f"multi-frame image ({n_frames} frames) without per-frame geometry"
            )
        position = _floats(ds, "ImagePositionPatient", 3)
        orientation = _floats(ds, "ImageOrientationPatient", 6)
        if position is None:
            return FileProblem("rejected", "missing attribute ImagePositionPatient")
        if orientation is None:
            return FileProblem("rejected", "missing attribute ImageOrientationPatient")
        spacing = _floats(ds, "PixelSpacing", 2)
        frames = [FrameGeometry(position, orientation, spacing,  # type: ignore[arg-type]
                                _num(ds, "SliceThickness", warnings))]
    if frames[0].pixel_spacing is None:
        return FileProblem("rejected", "missing attribute PixelSpacing")

    # Anonymised exports sometimes blank the study/series UIDs. Rather than refuse real images,
    # derive a stable UID from content (2.25 form from a hash) and say so in a warning.
    study_uid = _str(ds, "StudyInstanceUID", warnings)
    if not study_uid:
        study_uid = derived_uid("study", _str(ds, "PatientID", warnings),
                                _str(ds, "PatientName", warnings), _str(ds, "StudyDate", warnings),
                                _str(ds, "StudyTime", warnings),
                                _str(ds, "AccessionNumber", warnings))
        warnings.append("blank StudyInstanceUID: study grouped by patient, date and time")
    series_uid = _str(ds, "SeriesInstanceUID", warnings)
    if not series_uid:
        series_uid = derived_uid("series", study_uid, _str(ds, "SeriesNumber", warnings),
                                 _str(ds, "SeriesDescription", warnings),
                                 _str(ds, "SeriesTime", warnings),
                                 _str(ds, "FrameOfReferenceUID", warnings),
                                 _str(ds, "ConvolutionKernel", warnings))
        warnings.append("blank SeriesInstanceUID: series grouped by number, description, "
                        "time and frame of reference")

    image_type: list[str] = []
    try:
        raw_type = ds.get("ImageType")
        if raw_type:
            image_type = [str(v).strip() for v in (
                raw_type if isinstance(raw_type, (list, pydicom.multival.MultiValue))
                else [raw_type])]
    except Exception:
        warnings.append("unreadable ImageType")
    agent = _str(ds, "ContrastBolusAgent", warnings) if "ContrastBolusAgent" in ds else None
    route = _str(ds, "ContrastBolusRoute", warnings) if "ContrastBolusRoute" in ds else None
    return Header(
        path=path,
        size=size,
        sop_class_uid=sop_class,
        sop_instance_uid=sop_instance,
        modality=_str(ds, "Modality", warnings).upper(),
        image_type=image_type,
        patient_id=_str(ds, "PatientID", warnings),
        patient_name=_str(ds, "PatientName", warnings),
        study_uid=study_uid,
        study_date=_str(ds, "StudyDate", warnings),
        study_description=_str(ds, "StudyDescription", warnings),
        series_uid=series_uid,
        series_number=_int(ds, "SeriesNumber", warnings),
        series_description=_str(ds, "SeriesDescription", warnings),
        instance_number=_int(ds, "InstanceNumber", warnings),
        acquisition_number=_int(ds, "AcquisitionNumber", warnings),
        frames=frames,
        rows=rows,
        columns=cols,
        frame_of_reference_uid=_str(ds, "FrameOfReferenceUID", warnings),
        transfer_syntax=transfer_syntax,
        manufacturer=_str(ds, "Manufacturer", warnings),
        manufacturer_model=_str(ds, "ManufacturerModelName", warnings),
        kvp=_num(ds, "KVP", warnings),
        convolution_kernel=_str(ds, "ConvolutionKernel", warnings),
        contrast_agent=agent,
        contrast_route=route,
        contrast_volume_ml=_num(ds, "ContrastBolusVolume", warnings),
        contrast_start_time=parse_tm(_str(ds, "ContrastBolusStartTime", warnings)),
        acquisition_time=parse_tm(_str(ds, "AcquisitionTime", warnings)),
        series_time=parse_tm(_str(ds, "SeriesTime", warnings)),
        content_time=parse_tm(_str(ds, "ContentTime", warnings)),
        gantry_tilt=_num(ds, "GantryDetectorTilt", warnings),
        enhanced=enhanced,
        warnings=warnings,
    )
