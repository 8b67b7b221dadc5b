"""Reading one DICOM file's header cheaply and checking its pixel data without decoding it.

:func:`read_header` is the per-file unit of work of the scan. It opens the file once and reads its
first ``HEAD_BYTES`` in one call; pydicom parses the attributes the application needs
(``specific_tags``) up to the pixel data from those bytes in memory, and the pixel data element's
own header is checked against the file size and the image size. It never decodes pixels and never
allocates a declared length: long elements are skipped with a seek (``defer_size``), and a
declared length that runs past the end of the file shows up as a read position beyond the file
size. A header longer than ``HEAD_BYTES`` is parsed again from the open file.

Files in the usual layout (preamble, file meta, a standard little endian transfer syntax) are
parsed with pydicom's element reader directly, which gives the same elements as ``read_partial``
without building its file meta and file data sets; anything else goes through ``read_partial``
with all its handling (see :func:`_parse_common`). Together this makes the scan cheaper than a
bare ``dcmread(stop_before_pixels=True)`` of the same files (``bench/scan_speed.py``).

The result is a plain :class:`Header` (no pydicom objects), or a :class:`FileProblem` saying why
the file is skipped or rejected. Tag values are converted defensively: a malformed value (wrong
VR, odd character set) costs a warning, not the file (RELIABILITY.md 4).
"""

from __future__ import annotations

import io
import os
import struct
import warnings as pywarnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, Literal

import pydicom
from pydicom.charset import default_encoding
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import data_element_generator
from pydicom.uid import UID

from app.dicom._tag_values import (
    DESCRIPTIVE_TAGS,
    KEY_TAGS,
    SCAN_TAGS,
    _floats,
    _has,
    _meta,
    _num,
    _str,
    _tag,
    _values,
    _vf,
    _vi,
    _vn,
    _vs,
)
from app.dicom.limits import frames_problem, read_decimal, read_image_size, read_rescale_problem
from app.errors import one_line

#: Values larger than this are skipped with a seek instead of being read (RELIABILITY.md 5).
DEFER_SIZE = 4 * 1024 * 1024
#: Bytes read in one call from the start of each file and parsed in memory. A CT header is a few
#: KB (tens with private vendor blocks); a longer one is parsed again from the file.
HEAD_BYTES = 64 * 1024

_PIXEL_DATA_TAG = (0x7FE0, 0x0010)
_ITEM = (0xFFFE, 0xE000)
_SEQ_DELIM = (0xFFFE, 0xE0DD)
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_DEFLATED = "1.2.840.10008.1.2.1.99"
_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", _DEFLATED}

#: Compressed transfer syntaxes that cannot lose information (JPEG lossless processes 14,
#: JPEG-LS lossless, JPEG 2000 and HTJ2K lossless-only, RLE). Every other compressed syntax is,
#: or may be, lossy (:func:`lossy_compression_note`).
_LOSSLESS_COMPRESSED = {
    "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.5",
}
#: Syntaxes that allow lossless and lossy coding alike: the file's LossyImageCompression says which.
_EITHER_COMPRESSED = {"1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.203"}

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
    forced: bool = False
    #: ImageType says LOCALIZER (scout/topogram), whatever the vendor puts elsewhere.
    localizer: bool = False
    #: True once :func:`describe` filled the descriptive fields.
    described: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def is_localizer(self) -> bool:
        """Alias of :attr:`localizer` (computed once when the header is read)."""
        return self.localizer


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


def lossy_compression_note(transfer_syntax: str, lossy_flag: str) -> str | None:
    """A warning when the file's pixels are, or may be, lossy compressed; None when they are not.

    Why: the model's inputs and the tumour measures are HU differences of 10-60 HU between lesion
    and liver. Lossy JPEG changes HU (JPEG baseline stores 8 bits: the shared test slice comes
    back 20 HU off on average), so a prediction on such images must say so (RELIABILITY.md 10:
    compressed images decode "to the same HU" only where the compression is lossless).
    ``lossy_flag`` is LossyImageCompression (0028,2110): "01" also marks images that were lossy
    compressed once and are stored uncompressed now; "00" vouches for a lossless file.
    """
    flag = lossy_flag.strip()
    compressed = bool(transfer_syntax) and transfer_syntax not in _UNCOMPRESSED
    name = _uid_name(transfer_syntax) if compressed else ""
    if flag == "01":
        how = name if compressed and transfer_syntax not in _LOSSLESS_COMPRESSED else \
            "LossyImageCompression 01: compressed with loss before it was stored"
        return f"lossy compressed ({how}): HU values are approximate"
    if flag == "00" or not compressed or transfer_syntax in _LOSSLESS_COMPRESSED:
        return None
    if transfer_syntax in _EITHER_COMPRESSED:
        return (f"possibly lossy compressed ({name}; the file does not say whether with loss): "
                "HU values may be approximate")
    return f"lossy compressed ({name}): HU values are approximate"


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


@lru_cache(maxsize=1)
def _scan_tag_ints() -> list[int]:
    """SCAN_TAGS and KEY_TAGS as tag numbers (dcmread converts keywords on every call)."""
    return [t for t in (_tag(k) for k in (*SCAN_TAGS, *KEY_TAGS)) if t is not None]


def _read_descriptive(path: Path, force: bool) -> Dataset:
    """The descriptive tags of one file, parsed the way :func:`read_header` parses."""
    with open(path, "rb") as fp:
        return _parse_source(_open_source(fp, path), force, _descriptive_tag_ints()).ds


@lru_cache(maxsize=1)
def _descriptive_tag_ints() -> list[int]:
    return [t for t in (_tag(k) for k in DESCRIPTIVE_TAGS) if t is not None]


def describe(header: Header) -> None:
    """Fill the descriptive fields of ``header`` (names, descriptions, contrast, scanner).

    The scan calls this once per series, for the file that represents it. A file that vanished
    or changed since the scan leaves the fields empty and adds a warning.
    """
    if header.described:
        return
    header.described = True
    warnings = header.warnings
    try:
        ds = _read_descriptive(header.path, header.forced)
    except Exception as exc:
        warnings.append(f"series tags unreadable: {type(exc).__name__}")
        return
    header.patient_name = _str(ds, "PatientName", warnings)
    header.study_date = _str(ds, "StudyDate", warnings)
    header.study_description = _str(ds, "StudyDescription", warnings)
    header.series_description = _str(ds, "SeriesDescription", warnings)
    header.manufacturer = _str(ds, "Manufacturer", warnings)
    header.manufacturer_model = _str(ds, "ManufacturerModelName", warnings)
    header.kvp = _num(ds, "KVP", warnings)
    header.convolution_kernel = _str(ds, "ConvolutionKernel", warnings)
    if _has(ds, "ContrastBolusAgent"):
        header.contrast_agent = _str(ds, "ContrastBolusAgent", warnings)
    if _has(ds, "ContrastBolusRoute"):
        header.contrast_route = _str(ds, "ContrastBolusRoute", warnings)
    header.contrast_volume_ml = _num(ds, "ContrastBolusVolume", warnings)
    header.contrast_start_time = parse_tm(_str(ds, "ContrastBolusStartTime", warnings))
    header.series_time = parse_tm(_str(ds, "SeriesTime", warnings))
    header.gantry_tilt = _num(ds, "GantryDetectorTilt", warnings)


@lru_cache(maxsize=256)
def _uid_name(uid: str) -> str:
    return UID(uid).name if uid else ""


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


def _has_pixel_tag(src: _Source, pos: int, transfer_syntax: str) -> bool:
    """True when the element at ``pos`` (where header reading stopped) is Pixel Data."""
    head = src.read_at(pos, 4)
    if len(head) < 4:
        return False
    endian = ">" if transfer_syntax == "1.2.840.10008.1.2.2" else "<"
    return struct.unpack(endian + "HH", head) == _PIXEL_DATA_TAG


def _pixel_problem(
    src: _Source, pos: int, implicit: bool | None, transfer_syntax: str, expected: int
) -> str | None:
    """Check the pixel data element at ``pos`` against the file size and the image size."""
    size = src.size
    head = src.read_at(pos, 12)
    if len(head) < 8:
        return "no pixel data"
    big = transfer_syntax == "1.2.840.10008.1.2.2"
    endian = ">" if big else "<"
    group, elem = struct.unpack(endian + "HH", head[:4])
    if (group, elem) != _PIXEL_DATA_TAG:
        return "no pixel data"
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
        item = src.read_at(at, 8)
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


@dataclass
class _Source:
    """One open file and its first bytes, read with a single ``read()``.

    pydicom parses the header from these bytes in memory (:func:`_parse_source`); the pixel
    data check reads its few bytes from them too and goes to the file only past them (large
    images, encapsulated fragments).
    """

    fp: BinaryIO
    path: Path
    head: bytes
    #: The file's size in bytes (from ``fstat`` only when ``head`` did not reach the end).
    size: int

    @property
    def complete(self) -> bool:
        """True when ``head`` holds the whole file."""
        return len(self.head) == self.size

    def read_at(self, pos: int, n: int) -> bytes:
        """``n`` bytes at ``pos`` (fewer at the end of the file)."""
        if pos + n <= len(self.head) or self.complete:
            return self.head[pos:pos + n]
        self.fp.seek(pos)
        return self.fp.read(n)  # type: ignore[no-any-return]


def _open_source(fp: BinaryIO, path: Path) -> _Source:
    head = fp.read(HEAD_BYTES)
    # A short read of a regular file means its end was reached: no fstat needed.
    size = len(head) if len(head) < HEAD_BYTES else os.fstat(fp.fileno()).st_size
    return _Source(fp, path, head, size)


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
        fp = open(path, "rb")  # noqa: SIM115 - closed in finally; read once, maybe seeked
    except FileNotFoundError:
        return FileProblem("rejected", "file vanished during the scan")
    except PermissionError:
        return FileProblem("rejected", "unreadable: permission denied")
    except OSError as exc:
        return FileProblem("rejected", f"unreadable: {exc.strerror or type(exc).__name__}")
    try:
        return _read_open(_open_source(fp, path))
    except Exception as exc:  # a malformed file must end as "rejected", never stop the scan
        return FileProblem("rejected", f"unreadable DICOM: {type(exc).__name__}: {one_line(str(exc))}")
    finally:
        fp.close()


_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})
#: The pixel data tags as the bytes that start their element, either byte order.
_PIXEL_TAG_BYTES = frozenset(
    struct.pack(e + "HH", t >> 16, t & 0xFFFF) for t in _PIXEL_TAGS for e in "<>"
)


def _before_pixels(tag: int, vr: str | None, length: int) -> bool:
    return tag in _PIXEL_TAGS


def _parse(fp: Any, force: bool, tags: list[int]) -> _Parsed:
    """Parse the header up to the pixel data with pydicom, keeping only ``tags``.

    ``pydicom.filereader.read_partial`` (what ``dcmread`` calls) is used directly with the tag
    numbers prepared once: ``dcmread`` would convert the tag list on every file, which alone
    costs about 7 % of a bare header read.
    """
    read_partial = getattr(pydicom.filereader, "read_partial", None)
    if read_partial is None:  # pragma: no cover - other pydicom versions
        ds = pydicom.dcmread(fp, stop_before_pixels=True, force=force, specific_tags=tags,
                             defer_size=DEFER_SIZE)
    else:
        ds = read_partial(fp, _before_pixels, defer_size=DEFER_SIZE, force=force,
                          specific_tags=tags)
    meta = getattr(ds, "file_meta", None)
    return _Parsed(ds, getattr(meta, "_dict", {}), getattr(ds, "original_encoding", (None,))[0],
                   fp.tell())


@dataclass
class _Parsed:
    """A parsed header: the kept data set elements, the file meta elements by tag, whether
    the data set is implicit VR (None: not known), and where parsing stopped (at the pixel
    data element, or at the end of what was read)."""

    ds: Dataset
    meta: Mapping[int, Any]
    implicit: bool | None
    end: int
    forced: bool = False  # no preamble/file meta: read as a raw data set


def _not_file_meta(tag: int, vr: str | None, length: int) -> bool:
    return tag >> 16 != 2


#: What a conformant file holds after "DICM": (0002,0000) File Meta Information Group Length, UL,
#: 4 bytes. ``read_partial`` converts the first meta element (and re-reads the meta as implicit
#: VR when that fails, pydicom issue 503); this one converts without a word.
_META_START = b"\x02\x00\x00\x00UL\x04\x00"
#: VRs pydicom can convert.
_KNOWN_VRS = frozenset(v.value for v in pydicom.valuerep.VR)


def _explicit_vr(vr: bytes) -> bool:
    """True when two bytes read as a VR are a VR (pydicom's own test for explicit VR)."""
    return len(vr) == 2 and 0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B


#: Transfer syntaxes whose data set is little endian and not deflated: implicit VR (True) or
#: explicit VR (False). Only standard ones: ``read_partial`` checks (and warns about) any other.
_LITTLE_ENDIAN_SYNTAXES: dict[str, bool] = {
    str(ts): ts.is_implicit_VR for ts in pydicom.uid.AllTransferSyntaxes
    if ts.is_little_endian and not ts.is_deflated
}


def _syntax_is_implicit(meta: Mapping[int, Any]) -> bool | None:
    """Whether the data set is implicit VR little endian (True) or explicit VR little endian
    (False) by the file meta's standard transfer syntax; None for any other case."""
    elem = meta.get(0x00020010)
    if elem is None or elem.VR != "UI" or type(elem.value) is not bytes:
        return None
    value: bytes = elem.value
    try:
        syntax = value.decode("ascii").rstrip("\x00 ")  # as pydicom reads a UI value
    except UnicodeDecodeError:
        return None
    return _LITTLE_ENDIAN_SYNTAXES.get(syntax)


def _parse_common(buf: io.BytesIO, head: bytes, tags: list[int]) -> _Parsed | None:
    """Parse the usual file layout with pydicom's element reader directly; None otherwise.

    ``read_partial`` costs about a third more than its element reading: it builds and checks
    a file meta data set and a ``FileDataset``, and settles odd layouts. For the layout nearly
    every CT file has (preamble, file meta in explicit VR, a little endian transfer syntax
    whose VR encoding the first data set element confirms, no command set), the same
    :func:`pydicom.filereader.data_element_generator` calls that ``read_partial`` would make
    give the same elements. Anything else returns None, and ``read_partial`` reads the file
    with all its handling (warnings, guesses, deflate, big endian, no preamble).
    """
    if head[128:140] != b"DICM" + _META_START:
        return None
    buf.seek(132)
    meta: dict[int, Any] = {
        e.tag: e for e in data_element_generator(buf, False, True, _not_file_meta)}
    # An element pydicom cannot convert, or one without a value, makes read_partial re-read the
    # meta (it converts such elements while checking the first one).
    if any(e.VR not in _KNOWN_VRS or e.value is None for e in meta.values()):
        return None
    implicit = _syntax_is_implicit(meta)
    at = buf.tell()
    first = head[at:at + 6]
    if implicit is None or len(first) < 6 or first[:2] == b"\x00\x00" \
            or _explicit_vr(first[4:6]) == implicit:
        return None
    elements = {e.tag: e for e in data_element_generator(
        buf, implicit, True, _before_pixels, DEFER_SIZE, default_encoding, tags)}
    return _Parsed(Dataset(elements), meta, implicit, buf.tell())


def _memory_file(src: _Source) -> io.BytesIO:
    buf = io.BytesIO(src.head)
    buf.name = str(src.path)  # type: ignore[misc]  # pydicom names the file in its messages
    return buf


def _parse_head(src: _Source, force: bool, tags: list[int]) -> _Parsed | None:
    """The header parsed from ``src.head`` in memory, or None where memory does not do.

    Memory spares the per-element reads and tells on the file (about a quarter of a bare
    header read). When ``head`` is only the start of the file, the outcome counts only when
    the parse stopped at the pixel data inside ``head`` (every byte it looked at was there);
    otherwise the header is longer than ``HEAD_BYTES`` and None sends it to the file.
    """
    buf = _memory_file(src)
    parsed = None if force else _parse_common(buf, src.head, tags)
    if parsed is None:
        buf.seek(0)
        parsed = _parse(buf, force, tags)
    if src.complete:
        return parsed
    end = parsed.end
    if end + 12 <= len(src.head) and src.head[end:end + 4] in _PIXEL_TAG_BYTES:
        return parsed
    return None


def _parse_source(src: _Source, force: bool, tags: list[int]) -> _Parsed:
    """Parse the header of ``src``: in memory where that gives the file's own outcome.

    The attempt in memory runs with pydicom's warnings held back; they are passed on only when
    its result is kept, so that a value cut off at the end of ``head``, or a layout that
    ``read_partial`` then reads again, never warns twice or wrongly. Any failure in memory is
    repeated by ``read_partial`` on the file (or on the whole file in memory), which gives
    pydicom's own error and warnings.
    """
    with pywarnings.catch_warnings(record=True) as held:
        pywarnings.simplefilter("always")
        try:
            parsed = _parse_head(src, force, tags)
        except Exception:
            parsed = None
    if parsed is not None:
        for w in held:
            pywarnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return parsed
    if src.complete:
        return _parse(_memory_file(src), force, tags)
    src.fp.seek(0)
    return _parse(src.fp, force, tags)


def _read_open(src: _Source) -> Header | FileProblem:
    """The header of an opened file, or why it is skipped (not an image) or rejected (broken)."""
    if src.size == 0:
        return FileProblem("skipped", "not DICOM: empty file")
    parsed = _parse_file(src)
    if isinstance(parsed, FileProblem):
        return parsed
    ds, meta, end = parsed.ds, parsed.meta, parsed.end
    transfer_syntax = _meta(meta, "TransferSyntaxUID")
    if end > src.size and transfer_syntax != _DEFLATED:
        return FileProblem(
            "rejected", f"corrupt: a declared element length runs {end - src.size} bytes past "
            f"the end of the {src.size}-byte file"
        )
    warnings: list[str] = []
    v = _values(ds)
    sop = _image_class(v, ds, meta, warnings)
    if isinstance(sop, FileProblem):
        return sop
    if parsed.forced:
        warnings.append("no DICOM preamble/file meta; read as a raw data set")
    # Some anonymisers blank SOPInstanceUID in the data set but keep the file meta's copy.
    sop_instance = _vs(v, ds, "SOPInstanceUID", warnings) or _meta(meta, "MediaStorageSOPInstanceUID")
    missing = [] if sop_instance else ["SOPInstanceUID"]
    missing += [k for k in ("Rows", "Columns", "BitsAllocated") if not _vn(v, ds, k, warnings)]
    if missing:
        if "Rows" not in v and not _has_pixel_tag(src, end, transfer_syntax):
            return FileProblem("skipped", "not an image (no pixel data)")
        return FileProblem("rejected", f"missing attribute {missing[0]}")
    problem = decoder_problem(transfer_syntax)
    if problem:
        return FileProblem("rejected", problem)
    lossy = lossy_compression_note(transfer_syntax, _vs(v, ds, "LossyImageCompression", warnings))
    if lossy:
        warnings.append(lossy)

    size = read_image_size(v, ds, warnings)  # sanity limits (app.dicom.limits)
    if isinstance(size, str):
        return FileProblem("rejected", size)
    rows, cols, n_frames = size.rows, size.columns, size.frames
    pix_problem = _pixel_data_problem(src, parsed, transfer_syntax, size.expected_bytes)
    if pix_problem == "no pixel data":
        return FileProblem("skipped", "not an image (no pixel data)")
    if pix_problem:
        return FileProblem("rejected", pix_problem)
    enhanced = "PerFrameFunctionalGroupsSequence" in v
    frames = _frames(v, ds, n_frames, enhanced, warnings)
    if isinstance(frames, FileProblem):
        return frames
    problem = frames_problem(frames) or read_rescale_problem(v, ds, warnings, size)
    if problem:
        return FileProblem("rejected", problem)
    study_uid, series_uid = _study_and_series_uid(v, ds, warnings)
    image_type = [t.strip() for t in _vs(v, ds, "ImageType", warnings).split("\\") if t.strip()]
    return Header(
        path=src.path,
        size=src.size,
        sop_class_uid=sop,
        sop_instance_uid=sop_instance,
        modality=_vs(v, ds, "Modality", warnings).upper(),
        image_type=image_type,
        localizer=any(t.upper() == "LOCALIZER" for t in image_type),
        patient_id=_vs(v, ds, "PatientID", warnings),
        patient_name="",
        study_uid=study_uid,
        study_date="",
        study_description="",
        series_uid=series_uid,
        series_number=_vi(v, ds, "SeriesNumber", warnings),
        series_description="",
        instance_number=_vi(v, ds, "InstanceNumber", warnings),
        acquisition_number=_vi(v, ds, "AcquisitionNumber", warnings),
        frames=frames,
        rows=rows,
        columns=cols,
        frame_of_reference_uid=_vs(v, ds, "FrameOfReferenceUID", warnings),
        transfer_syntax=transfer_syntax,
        acquisition_time=parse_tm(_vs(v, ds, "AcquisitionTime", warnings)),
        content_time=parse_tm(_vs(v, ds, "ContentTime", warnings)),
        enhanced=enhanced,
        forced=parsed.forced,
        warnings=warnings,
    )


def _parse_file(src: _Source) -> _Parsed | FileProblem:
    """Parse the scan tags; a file without preamble is retried as a raw data set (``forced``)."""
    try:
        return _parse_source(src, False, _scan_tag_ints())
    except InvalidDicomError:
        if not _looks_like_raw_dataset(src.head[:8]):
            return FileProblem("skipped", "not DICOM")
        try:
            parsed = _parse_source(src, True, _scan_tag_ints())
        except Exception as exc:
            return FileProblem("rejected", f"unreadable DICOM: {type(exc).__name__}: {one_line(str(exc))}")
        parsed.forced = True
        return parsed
    except Exception as exc:
        return FileProblem("rejected", f"unreadable DICOM: {type(exc).__name__}: {one_line(str(exc))}")


def _image_class(v: dict[str, Any], ds: Dataset, meta: Mapping[int, Any],
                 warnings: list[str]) -> str | FileProblem:
    """The SOP Class UID, or why the file is not an image of the patient (skipped)."""
    media_class = _meta(meta, "MediaStorageSOPClassUID")
    sop_class = _vs(v, ds, "SOPClassUID", warnings) or media_class
    if media_class == _DICOMDIR_CLASS:
        return FileProblem("skipped", "not an image (DICOMDIR)")
    class_name = _uid_name(sop_class)
    if sop_class and "Image Storage" not in class_name:
        return FileProblem("skipped", f"not an image ({class_name or sop_class})")
    if sop_class.startswith("1.2.840.10008.5.1.4.1.1.7"):
        return FileProblem("skipped", f"not a CT image of the patient ({class_name})")
    if not sop_class:  # used if its pixel data, modality and geometry make it a CT slice
        warnings.append("no SOP Class UID: taken for an image by its content")
    return sop_class


def _pixel_data_problem(src: _Source, parsed: _Parsed, transfer_syntax: str,
                        expected: int) -> str | None:
    """Whether the pixel data is there with the ``expected`` bytes (None: it is)."""
    if transfer_syntax == _DEFLATED:
        full = pydicom.dcmread(src.path)  # the data set is compressed as a whole: inflate it
        data = full.get("PixelData")
        return None if data is not None and len(data) >= expected else (
            "pixel data truncated" if data is not None else "no pixel data")
    return _pixel_problem(src, parsed.end, parsed.implicit, transfer_syntax, expected)


def _frames(v: dict[str, Any], ds: Dataset, n_frames: int, enhanced: bool,
            warnings: list[str]) -> list[FrameGeometry] | FileProblem:
    """The geometry of every frame (enhanced multi-frame) or of the one slice."""
    if enhanced:
        frames_or_missing = _enhanced_frames(ds)
        if isinstance(frames_or_missing, str):
            return FileProblem("rejected", f"enhanced multi-frame image without {frames_or_missing}")
        frames = frames_or_missing
        if len(frames) != n_frames:
            return FileProblem(
                "rejected", f"enhanced multi-frame image with {len(frames)} frame geometries "
                f"for {n_frames} frames"
            )
    else:
        if n_frames > 1:
            return FileProblem("rejected",
                               f"multi-frame image ({n_frames} frames) without per-frame geometry")
        position = _vf(v, ds, "ImagePositionPatient", 3)
        orientation = _vf(v, ds, "ImageOrientationPatient", 6)
        if position is None:
            return FileProblem("rejected", "missing attribute ImagePositionPatient")
        if orientation is None:
            return FileProblem("rejected", "missing attribute ImageOrientationPatient")
        spacing = _vf(v, ds, "PixelSpacing", 2)
        frames = [FrameGeometry(position, orientation, spacing,  # type: ignore[arg-type]
                                read_decimal(v, ds, "SliceThickness", warnings))]
    if frames[0].pixel_spacing is None:
        return FileProblem("rejected", "missing attribute PixelSpacing")
    return frames


def _study_and_series_uid(v: dict[str, Any], ds: Dataset, warnings: list[str]) -> tuple[str, str]:
    """The study and series UIDs; blank ones are derived from content, with a warning.

    Anonymised exports sometimes blank the study/series UIDs. Rather than refuse real images,
    derive a stable UID from content (2.25 form from a hash) and say so in a warning.
    """
    study_uid = _vs(v, ds, "StudyInstanceUID", warnings)
    series_uid = _vs(v, ds, "SeriesInstanceUID", warnings)
    extra = ds  # KEY_TAGS were read with the file; decoded only here, where needed
    if not study_uid:
        study_uid = derived_uid("study", _vs(v, ds, "PatientID", warnings),
                                _str(extra, "PatientName", warnings),
                                _str(extra, "StudyDate", warnings),
                                _str(extra, "StudyTime", warnings),
                                _str(extra, "AccessionNumber", warnings))
        warnings.append("blank StudyInstanceUID: study grouped by patient, date and time")
    if not series_uid:
        series_uid = derived_uid("series", study_uid, _vs(v, ds, "SeriesNumber", warnings),
                                 _str(extra, "SeriesDescription", warnings),
                                 _str(extra, "SeriesTime", warnings),
                                 _vs(v, ds, "FrameOfReferenceUID", warnings),
                                 _str(extra, "ConvolutionKernel", warnings))
        warnings.append("blank SeriesInstanceUID: series grouped by number, description, "
                        "time and frame of reference")
    return study_uid, series_uid
