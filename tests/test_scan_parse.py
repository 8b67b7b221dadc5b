"""Header parsing of the scan: the in-memory, common-layout path gives pydicom's own result.

``app.dicom.tags`` reads each file's first ``HEAD_BYTES`` and parses the usual layout with
pydicom's element reader directly, leaving everything else to ``read_partial``. These tests hold
that shortcut to pydicom's own reading on real, written and damaged files: the same elements,
file meta, encoding, end position and warnings, or no result at all (``read_partial`` then
reads the file). The scan's outcome must not depend on how much of a file is read at once.
"""

from __future__ import annotations

import io
import random
import struct
import warnings
from pathlib import Path

import pydicom
import pytest
from dicom_factory import SeriesSpec, make_dataset, write_raw_dataset, write_series, write_sr
from pydicom.dataelem import RawDataElement
from pydicom.sequence import Sequence
from pydicom.uid import ImplicitVRLittleEndian

from app.dicom import tags as tags_mod
from app.dicom.scan import ScanResult, scan_folder
from app.dicom.tags import read_header

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


# --- a corpus of written files ------------------------------------------------------------------


def _with_private_blocks(path: Path, k: int = 0) -> Path:
    """A slice with a private OB element and a private (undefined length) sequence."""
    ds = make_dataset(SeriesSpec(n=1), k, (-12.8, -12.8, 5.0 * k))
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Müller^Jürgen"
    block = ds.private_block(0x0029, "ACME 1.0", create=True)
    block.add_new(0x10, "OB", b"\x01\x02" * 50)
    item = pydicom.Dataset()
    item.SliceThickness = "1.0"
    block.add_new(0x11, "SQ", Sequence([item, pydicom.Dataset()]))
    ds.save_as(path, enforce_file_format=True)
    return path


def _with_functional_groups(path: Path) -> Path:
    """A slice carrying the (wanted) functional group sequences, nested two deep."""
    ds = make_dataset(SeriesSpec(n=1), 0, (0.0, 0.0, 0.0))
    measures = pydicom.Dataset()
    measures.PixelSpacing = [0.8, 0.8]
    shared = pydicom.Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.save_as(path, enforce_file_format=True)
    return path


def _long_header(path: Path, private_bytes: int) -> Path:
    """A slice whose header holds ``private_bytes`` of private data before the pixel data:
    an OB element, then an undefined length private sequence with a second OB inside."""
    ds = make_dataset(SeriesSpec(n=1), 0, (0.0, 0.0, 0.0))
    block = ds.private_block(0x0029, "ACME 1.0", create=True)
    block.add_new(0x10, "OB", b"\x07" * (private_bytes // 2))
    item = pydicom.Dataset()
    inner = item.private_block(0x0031, "ACME 1.0", create=True)
    inner.add_new(0x10, "OB", b"\x09" * (private_bytes // 2))
    block.add_new(0x11, "SQ", Sequence([item]))
    ds.save_as(path, enforce_file_format=True)
    return path


def _written_files(folder: Path) -> list[Path]:
    files = write_series(folder / "explicit", SeriesSpec(n=2))
    files += write_series(folder / "implicit",
                          SeriesSpec(n=2, transfer_syntax=ImplicitVRLittleEndian))
    files.append(_with_private_blocks(folder / "private.dcm"))
    files.append(_with_functional_groups(folder / "groups.dcm"))
    files.append(_long_header(folder / "long.dcm", 100_000))
    files.append(write_sr(folder / "sr.dcm"))
    files.append(write_raw_dataset(folder / "raw.dcm"))
    return files


def _corpus(folder: Path) -> list[Path]:
    """Written files, pydicom's test files and the real files of ../shared/data where present."""
    files = _written_files(folder)
    files += sorted(p for p in PYDICOM_FILES.rglob("*") if p.is_file())
    if SHARED_DATA.is_dir():
        files += sorted(p for p in SHARED_DATA.rglob("*") if p.is_file() and p.suffix != ".md")
    return files


# --- comparing the two ways of parsing -----------------------------------------------------------


def _element_key(elem: object) -> tuple[object, ...]:
    if isinstance(elem, RawDataElement):
        return ("raw", elem.tag, elem.VR, elem.length, elem.value, elem.value_tell,
                elem.is_implicit_VR, elem.is_little_endian)
    return ("converted", elem.tag, elem.VR, str(elem.value))  # type: ignore[attr-defined]


def _warned(fn: object) -> tuple[object, set[str]]:
    """``fn()``'s result (or the exception it raised) and the distinct warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn()  # type: ignore[operator]
        except Exception as exc:  # noqa: BLE001 - the exception is the result here
            result = exc
    return result, {str(w.message) for w in caught}


def _compare(data: bytes) -> str:
    """Parse ``data`` both ways; 'same' or 'declined' (or an AssertionError on a difference).

    The character set element is compared by value: ``read_partial`` converts it in place.
    """
    tags = tags_mod._scan_tag_ints()
    fast, fast_warnings = _warned(lambda: tags_mod._parse_common(io.BytesIO(data), data, tags))
    if fast is None or isinstance(fast, Exception):
        return "declined"  # read_partial reads it (an exception in memory is repeated there)
    ref, ref_warnings = _warned(lambda: tags_mod._parse(io.BytesIO(data), False, tags))
    assert not isinstance(ref, Exception), f"read_partial failed where the shortcut did not: {ref}"
    assert isinstance(fast, tags_mod._Parsed) and isinstance(ref, tags_mod._Parsed)
    charset = 0x00080005
    assert {t: _element_key(e) for t, e in fast.ds._dict.items() if t != charset} == \
        {t: _element_key(e) for t, e in ref.ds._dict.items() if t != charset}
    assert fast.ds.get(charset, None) == ref.ds.get(charset, None)
    for keyword in ("TransferSyntaxUID", "MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID"):
        assert tags_mod._meta(fast.meta, keyword) == tags_mod._meta(ref.meta, keyword)
    assert (fast.implicit, fast.end) == (ref.implicit, ref.end)
    assert fast_warnings == ref_warnings
    return "same"


def test_common_layout_parse_equals_read_partial(tmp_path: Path) -> None:
    files = _corpus(tmp_path)
    outcomes = {f: _compare(f.read_bytes()) for f in files}
    # Not vacuous: the written files of the usual layout take the shortcut, odd layouts do not.
    assert all(outcomes[f] == "same" for f in files[:6]), outcomes
    assert outcomes[tmp_path / "long.dcm"] == "same"
    assert outcomes[tmp_path / "sr.dcm"] == "same"
    assert outcomes[tmp_path / "raw.dcm"] == "declined"  # no preamble, no file meta
    big_endian = PYDICOM_FILES / "MR_small_bigendian.dcm"
    if big_endian.exists():
        assert outcomes[big_endian] == "declined"
    assert sum(o == "same" for o in outcomes.values()) >= 10


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_common_layout_parse_equals_read_partial_on_damaged_bytes(tmp_path: Path) -> None:
    """Cut and damaged headers (the file meta included): the same result, or none."""
    files = [*_written_files(tmp_path)[:6]]
    ct_small = PYDICOM_FILES / "CT_small.dcm"
    if ct_small.exists():
        files.append(ct_small)
    rng = random.Random(5)
    counts = {"same": 0, "declined": 0}
    for f in files:
        data = f.read_bytes()
        header = min(len(data), 2000)
        for cut in rng.sample(range(header), 20):
            counts[_compare(data[:cut])] += 1
        for _ in range(40):
            damaged = bytearray(data)
            for _ in range(3):
                damaged[rng.randrange(128, header)] = rng.randrange(256)
            counts[_compare(bytes(damaged))] += 1
        meta_end = 144 + struct.unpack("<I", data[140:144])[0]
        for _ in range(60):  # the file meta alone: VRs, lengths, the transfer syntax
            damaged = bytearray(data)
            damaged[rng.randrange(132, meta_end)] = rng.randrange(256)
            counts[_compare(bytes(damaged))] += 1
        # An empty meta element of a VR pydicom does not know: read_partial re-reads the meta.
        for vr in (b"AX", b"A\xbe", b"UL"):
            odd = struct.pack("<HH2sH", 0x0002, 0x0016, vr, 0)
            counts[_compare(data[:meta_end] + odd + data[meta_end:])] += 1
    assert counts["same"] > 50 and counts["declined"] > 50, counts


# --- the scan does not depend on how much is read at once ----------------------------------------


def _summary(result: ScanResult) -> list[object]:
    files = [(f.path.name, f.status, f.reason, f.series_uid) for f in result.files]
    series = [(s.uid, s.status, s.n_slices, s.warnings, s.refused_reason, s.description,
               s.patient_name, s.kvp, [i.sop_instance_uid for i in s.instances])
              for s in result.series]
    return [files, series]


def _mixed_folder(folder: Path) -> Path:
    write_series(folder / "a", SeriesSpec(n=4))
    write_series(folder / "b", SeriesSpec(n=3, series_number=3,
                                          transfer_syntax=ImplicitVRLittleEndian))
    (folder / "c").mkdir()
    for k in range(3):
        _with_private_blocks(folder / "c" / f"{k}.dcm", k)
    _long_header(folder / "long.dcm", 150_000)
    long_cut = folder / "long_cut.dcm"
    data = _long_header(long_cut, 150_000).read_bytes()
    long_cut.write_bytes(data[:-100])  # pixel data cut short behind a long header
    write_sr(folder / "sr.dcm")
    write_raw_dataset(folder / "raw.dcm")
    (folder / "notes.txt").write_text("not DICOM")
    if (PYDICOM_FILES / "CT_small.dcm").exists():
        (folder / "ct_small.dcm").write_bytes((PYDICOM_FILES / "CT_small.dcm").read_bytes())
    return folder


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_scan_outcome_does_not_depend_on_head_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _mixed_folder(tmp_path / "mixed")
    reference = _summary(scan_folder(folder))
    outcomes = {name: status for name, status, _, _ in reference[0]}  # type: ignore[misc]
    assert outcomes["long.dcm"] == "used" and outcomes["long_cut.dcm"] == "rejected"
    for size in (200, 700, 4096):
        monkeypatch.setattr(tags_mod, "HEAD_BYTES", size)
        assert _summary(scan_folder(folder)) == reference, size


def test_header_longer_than_head_bytes_is_read_from_the_file(tmp_path: Path) -> None:
    """A 150 KB private block before the pixel data (longer than HEAD_BYTES): read in full,
    no warning from a value cut off in memory; the same file cut short is rejected."""
    path = _long_header(tmp_path / "long.dcm", 150_000)
    assert path.stat().st_size > 2 * tags_mod.HEAD_BYTES
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        header = read_header(path)
    assert isinstance(header, tags_mod.Header), header
    assert caught == [] and header.warnings == []
    assert (header.rows, header.columns, header.patient_id) == (32, 32, "P001")
    path.write_bytes(path.read_bytes()[:-10])
    problem = read_header(path)
    assert isinstance(problem, tags_mod.FileProblem)
    assert problem.reason.startswith("pixel data truncated")


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom, writing the odd character set
def test_pydicom_warning_counted_once_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown character set: pydicom warns (read_partial twice per file); the series says
    how many files, whichever way the headers were parsed."""
    spec = SeriesSpec(n=3)
    (tmp_path / "s").mkdir()
    for k in range(3):
        ds = make_dataset(spec, k, (-12.8, -12.8, 5.0 * k))
        ds.SpecificCharacterSet = "ISO_IR 999"
        ds.save_as(tmp_path / "s" / f"{k}.dcm", enforce_file_format=True)
    expected = ["pydicom: Unknown encoding 'ISO_IR 999' - using default encoding instead "
                "(3 files)"]
    assert scan_folder(tmp_path).series[0].warnings == expected
    monkeypatch.setattr(tags_mod, "_parse_common", lambda *args: None)  # read_partial only
    assert scan_folder(tmp_path).series[0].warnings == expected
