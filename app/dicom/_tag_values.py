"""Fast, defensive access to the tag values of a header being read (private to
:mod:`app.dicom.tags`).

pydicom converts a raw element on first access (VR lookup, validation, value objects), which
costs more than reading the file's header. The scan reads only simple values, so it decodes the
raw bytes itself where that is unambiguous (ASCII text, US binary) and falls back to pydicom's
conversion for anything else (non-ASCII text with a character set, deferred or converted
elements). Without this the scan took ~4x the bare header read; see bench/scan_speed.py.

A malformed value (wrong VR, odd character set) costs a warning, not the file
(RELIABILITY.md 4).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

#: Attributes read from every file: what grouping, splitting and geometry need.
SCAN_TAGS: tuple[str, ...] = (
    "SOPClassUID", "SOPInstanceUID", "Modality", "ImageType", "PatientID",
    "StudyInstanceUID", "SeriesInstanceUID", "SeriesNumber", "InstanceNumber",
    "AcquisitionNumber", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
    "SliceThickness", "Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "NumberOfFrames",
    "FrameOfReferenceUID", "AcquisitionTime", "ContentTime", "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence", "BitsStored", "PixelRepresentation", "RescaleSlope",
    "RescaleIntercept", "LossyImageCompression",
)
#: Read with every file but decoded only where a Study/Series Instance UID is blank (they
#: identify the study and series then, see :func:`derived_uid`).
KEY_TAGS: tuple[str, ...] = (
    "PatientName", "StudyDate", "StudyTime", "AccessionNumber", "SeriesDescription",
    "SeriesTime", "ConvolutionKernel",
)
#: Attributes that describe a series; read once per series from one file (:func:`describe`),
#: which keeps the per-file cost of the scan close to a bare header read.
DESCRIPTIVE_TAGS: tuple[str, ...] = (
    "PatientName", "StudyDate", "StudyTime", "StudyDescription", "AccessionNumber",
    "SeriesDescription", "SeriesTime", "Manufacturer", "ManufacturerModelName", "KVP",
    "ConvolutionKernel", "ContrastBolusAgent", "ContrastBolusRoute", "ContrastBolusVolume",
    "ContrastBolusStartTime", "GantryDetectorTilt",
)

_TAG: dict[str, int] = {}
_US_TAGS = {"Rows", "Columns", "BitsAllocated", "BitsStored", "SamplesPerPixel",
            "PixelRepresentation"}
_SLOW = object()


def _tag(keyword: str) -> int | None:
    tag = _TAG.get(keyword)
    if tag is None:
        from pydicom.datadict import tag_for_keyword

        found = tag_for_keyword(keyword)
        if found is None:
            return None
        tag = _TAG[keyword] = int(found)
    return tag


for _kw in (*SCAN_TAGS, *DESCRIPTIVE_TAGS, "DirectoryRecordSequence", "TransferSyntaxUID", "MediaStorageSOPClassUID",
            "MediaStorageSOPInstanceUID"):
    _tag(_kw)


@lru_cache(maxsize=32)
def _encodings(charset: bytes) -> tuple[str, ...]:
    from pydicom.charset import convert_encodings

    names = [v.strip() for v in charset.decode("ascii", "replace").split("\\")]
    return tuple(convert_encodings(names))


def _decode(obj: Any, raw: bytes) -> str:
    """Text of non-ASCII bytes in the data set's Specific Character Set."""
    from pydicom.charset import decode_bytes

    d = getattr(obj, "_dict", {})
    cs = d.get(0x00080005)
    charset = b""
    if cs is not None:
        charset = cs.value if isinstance(cs.value, bytes) else "\\".join(
            cs.value if isinstance(cs.value, (list, pydicom.multival.MultiValue))
            else [str(cs.value)]).encode()
    return decode_bytes(raw, list(_encodings(charset or b"ISO_IR 6")), {ord("^"), ord("=")})


def _text(obj: Any, keyword: str) -> Any:
    """Text of a raw element (padding stripped); None when absent; _SLOW when not raw.

    ASCII is decoded directly; other bytes through the data set's character set.
    """
    elem = _raw(obj, keyword)
    if elem is None or elem is _SLOW:
        return elem
    value = elem.value
    try:
        return value.decode("ascii").strip(" \x00")
    except UnicodeDecodeError:
        return _decode(obj, value).strip(" \x00")


def _raw(obj: Any, keyword: str) -> Any:
    """The raw element of ``keyword`` in ``obj``; None when absent; _SLOW when not raw."""
    d = getattr(obj, "_dict", None)
    tag = _TAG.get(keyword) or _tag(keyword)
    if d is None or tag is None:
        return _SLOW
    elem = d.get(tag)
    if elem is None:
        return None
    if not isinstance(elem, RawDataElement) or elem.value is None:
        return _SLOW
    return elem


def _meta(meta: Mapping[int, Any], keyword: str) -> str:
    """A file meta value as text, from the meta elements by tag (raw or converted)."""
    tag = _tag(keyword)
    elem = meta.get(tag) if tag is not None else None
    if elem is None:
        return ""
    value = elem.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value or "").strip(" \x00")


def _has(obj: Any, keyword: str) -> bool:
    d = getattr(obj, "_dict", None)
    tag = _tag(keyword)
    if d is None or tag is None:
        return keyword in obj
    return tag in d


def _slow_value(obj: Any, keyword: str) -> Any:
    value = obj.get(keyword)
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return value


def _str(ds: Dataset, keyword: str, warnings: list[str]) -> str:
    try:
        text = _text(ds, keyword)
        if text is _SLOW:
            text = _slow_value(ds, keyword)
    except Exception as exc:  # a malformed value must not cost the file
        warnings.append(f"unreadable {keyword}: {type(exc).__name__}")
        return ""
    if text is None:
        return ""
    return str(text).strip()


def _num(ds: Dataset, keyword: str, warnings: list[str]) -> float | None:
    try:
        if keyword in _US_TAGS:
            elem = _raw(ds, keyword)
            if elem is None:
                return None
            if elem is not _SLOW and len(elem.value) >= 2:
                return float(struct.unpack("<H" if elem.is_little_endian else ">H",
                                           elem.value[:2])[0])
        text = _text(ds, keyword)
        if text is _SLOW:
            value = ds.get(keyword)
            if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
                value = value[0] if len(value) else None
        else:
            value = text.split("\\")[0].strip() if text is not None else None
        if value is None or value == "":
            return None
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
        text = _text(obj, keyword)
        if text is None:
            return None
        if text is _SLOW:
            value = obj.get(keyword)
            if value is None:
                return None
            out = tuple(float(v) for v in value)
        else:
            out = tuple(float(v) for v in text.split("\\"))
    except Exception:
        return None
    # Non-finite values are kept: app.dicom.limits names them in the file's rejection.
    return out if len(out) == n else None


# One pass over the parsed elements decodes every value the scan needs (the per-keyword helpers
# above cost a dictionary lookup through pydicom's tag type each); anything that is not plain
# raw bytes (sequences, deferred or already converted elements) is marked and read through them.
_KW_OF: dict[int, str] = {}


def _values(ds: Dataset) -> dict[str, Any]:
    if not _KW_OF:
        _KW_OF.update({_TAG[k]: k for k in SCAN_TAGS if k in _TAG})
    out: dict[str, Any] = {}
    d = getattr(ds, "_dict", None)
    if d is None:
        return out
    for tag, elem in d.items():
        kw = _KW_OF.get(int(tag))
        if kw is None:
            continue
        value = elem.value if type(elem) is RawDataElement else None
        if type(value) is not bytes:
            out[kw] = _SLOW
        elif kw in _US_TAGS:
            out[kw] = float(struct.unpack("<H" if elem.is_little_endian else ">H",
                                          value[:2])[0]) if len(value) >= 2 else None
        else:
            try:
                out[kw] = value.decode("ascii").strip(" \x00").strip()
            except UnicodeDecodeError:
                out[kw] = _decode(ds, value).strip(" \x00").strip()
    return out


def _vs(v: dict[str, Any], ds: Dataset, kw: str, warnings: list[str]) -> str:
    x = v.get(kw)
    if x is None:
        return ""
    if x is _SLOW:
        return _str(ds, kw, warnings)
    return x if isinstance(x, str) else str(x)


def _vn(v: dict[str, Any], ds: Dataset, kw: str, warnings: list[str]) -> float | None:
    x = v.get(kw)
    if x is None or isinstance(x, float):
        return x
    if x is _SLOW:
        return _num(ds, kw, warnings)
    first = x.split("\\")[0].strip()
    if not first:
        return None
    try:
        out = float(first)
    except ValueError:
        warnings.append(f"unreadable {kw}: ValueError")
        return None
    return out if math.isfinite(out) else None


def _vi(v: dict[str, Any], ds: Dataset, kw: str, warnings: list[str]) -> int | None:
    value = _vn(v, ds, kw, warnings)
    return None if value is None else int(value)


def _vf(v: dict[str, Any], ds: Dataset, kw: str, n: int) -> tuple[float, ...] | None:
    x = v.get(kw)
    if x is None:
        return None
    if x is _SLOW:
        return _floats(ds, kw, n)
    try:
        out = tuple(float(p) for p in x.split("\\"))
    except ValueError:
        return None
    return out if len(out) == n else None  # non-finite values are kept, as in _floats
