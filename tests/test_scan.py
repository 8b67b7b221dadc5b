"""Folder scan: grouping, splitting, geometry checks and per-file outcomes (RELIABILITY.md 1-15)."""

from __future__ import annotations

import dataclasses
import random
import shutil
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import (
    CORONAL,
    SeriesSpec,
    make_dataset,
    truncate,
    uid,
    write_raw_dataset,
    write_secondary_capture,
    write_series,
    write_sr,
)
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import pack_bits
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from app.dicom import scan as scan_mod
from app.dicom import tags as tags_mod
from app.dicom.errors import FolderError
from app.dicom.scan import ScanResult, scan_folder
from app.dicom.tags import parse_tm, read_header

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def outcome(result: ScanResult, name: str) -> tuple[str, str]:
    hits = [f for f in result.files if f.path.name == name]
    assert len(hits) == 1, [f.path for f in result.files]
    return hits[0].status, hits[0].reason


def only_series(result: ScanResult) -> scan_mod.SeriesInfo:
    assert len(result.series) == 1, [(s.uid, s.n_slices) for s in result.series]
    return result.series[0]


def pydicom_file(name: str) -> Path:
    path = PYDICOM_FILES / name
    if not path.exists():
        pytest.skip(f"pydicom test file {name} not bundled")
    return path


# --- folder level ------------------------------------------------------------------------------


def test_missing_folder_and_file_instead_of_folder(tmp_path: Path) -> None:
    with pytest.raises(FolderError, match="folder not found"):
        scan_folder(tmp_path / "nope")
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(FolderError, match="not a folder"):
        scan_folder(f)


def test_empty_folder_says_no_dicom(tmp_path: Path) -> None:  # RELIABILITY 1
    result = scan_folder(tmp_path)
    assert result.files == [] and result.patients == []
    assert result.problem == "no DICOM found"


def test_non_dicom_files_are_skipped_never_forced(tmp_path: Path) -> None:  # RELIABILITY 1
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 200)
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4\n" + b"x" * 300)
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 100)
    result = scan_folder(tmp_path)
    assert result.counts == {"used": 0, "skipped": 4, "rejected": 0}
    assert outcome(result, "empty.dcm") == ("skipped", "not DICOM: empty file")
    assert outcome(result, "photo.jpg") == ("skipped", "not DICOM")
    assert result.problem == "no DICOM found"


# --- one clean series --------------------------------------------------------------------------


def test_clean_series_fields(tmp_path: Path) -> None:
    spec = SeriesSpec(n=7, z0=-30.0, spacing=5.0, description="PV 5.0", series_number=4,
                      contrast_agent="Iomeron", contrast_start_time="101200",
                      acquisition_time="101310.5")
    write_series(tmp_path / "s", spec)
    result = scan_folder(tmp_path)
    s = only_series(result)
    assert s.status == "ok" and s.warnings == []
    assert (s.n_slices, s.rows, s.columns) == (7, 32, 32)
    assert s.orientation == "axial" and s.modality == "CT"
    assert s.slice_spacing == pytest.approx(5.0) and s.slice_thickness == pytest.approx(5.0)
    assert s.z_range == pytest.approx((-30.0, 0.0))
    assert s.pixel_spacing == (0.8, 0.8)
    assert s.series_number == 4 and s.description == "PV 5.0"
    assert s.contrast_agent == "Iomeron"
    assert s.contrast_start_time == pytest.approx(10 * 3600 + 12 * 60)
    assert s.acquisition_time == pytest.approx(10 * 3600 + 13 * 60 + 10.5)
    assert [i.z for i in s.instances] == sorted(i.z for i in s.instances)
    assert [i.instance_number for i in s.instances] == list(range(1, 8))
    assert result.counts == {"used": 7, "skipped": 0, "rejected": 0}
    assert result.problem is None


def test_parse_tm() -> None:
    assert parse_tm("140216.7") == pytest.approx(14 * 3600 + 2 * 60 + 16.7)
    assert parse_tm("14:02:16") == pytest.approx(14 * 3600 + 136)
    assert parse_tm("1402") == pytest.approx(14 * 3600 + 120)
    assert parse_tm("") is None and parse_tm(None) is None and parse_tm("99xx") is None


# --- RELIABILITY 2, 3, 4, 5: file integrity ----------------------------------------------------


def test_truncated_pixel_data_rejected_at_scan(tmp_path: Path) -> None:
    paths = write_series(tmp_path / "s", SeriesSpec(n=5))
    truncate(paths[2], 0.7)
    result = scan_folder(tmp_path)
    status, reason = outcome(result, paths[2].name)
    assert status == "rejected" and "pixel data truncated" in reason
    s = only_series(result)
    assert s.n_slices == 4
    # The missing slice then shows as a gap in the geometry, never silently stitched.
    assert any("gap of 10.0 mm" in w for w in s.warnings)


def test_truncated_encapsulated_pixel_data_rejected(tmp_path: Path, shared_data: Path) -> None:
    src = next((shared_data / "totalsegmentator_example_ct").glob("CT.*"))
    good = tmp_path / "good"
    shutil.copy(src, good)
    assert not hasattr(read_header(good), "status")
    bad = tmp_path / "bad"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size - 5000])
    problem = read_header(bad)
    assert problem.status == "rejected" and "truncated" in problem.reason  # type: ignore[union-attr]


def test_file_without_preamble_accepted_with_warning(tmp_path: Path) -> None:  # RELIABILITY 3
    spec = SeriesSpec(n=4)
    paths = write_series(tmp_path / "s", spec)
    raw = write_raw_dataset(tmp_path / "s" / "raw", dataclasses.replace(spec, n=1))
    # Put the raw slice at a position of its own, after the series.
    ds = pydicom.dcmread(raw, force=True)
    ds.ImagePositionPatient = [-12.8, -12.8, 20.0]
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, True
    write_dataset(buf, ds)
    raw.write_bytes(buf.getvalue())
    assert raw.read_bytes()[128:132] != b"DICM"
    result = scan_folder(tmp_path)
    s = only_series(result)
    assert s.n_slices == len(paths) + 1
    assert outcome(result, "raw")[0] == "used"
    assert any("no DICOM preamble" in w and "(1 file)" in w for w in s.warnings)


def test_raw_dataset_missing_attribute_is_named(tmp_path: Path) -> None:  # RELIABILITY 3
    raw = write_raw_dataset(tmp_path / "raw")
    ds = pydicom.dcmread(raw, force=True)
    del ds.ImagePositionPatient
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, True
    write_dataset(buf, ds)
    raw.write_bytes(buf.getvalue())
    result = scan_folder(tmp_path)
    assert outcome(result, "raw") == ("rejected", "missing attribute ImagePositionPatient")


def test_private_tags_odd_charset_and_wrong_vr_are_harmless(tmp_path: Path) -> None:  # 4
    spec = SeriesSpec(n=4)
    folder = tmp_path / "s"
    folder.mkdir()
    for k in range(4):
        ds = make_dataset(spec, k, (-12.8, -12.8, 5.0 * k))
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = "Müller^Jürgen"
        block = ds.private_block(0x0029, "ACME 1.0", create=True)
        block.add_new(0x10, "OB", b"\x01\x02" * 50)
        block.add_new(0x11, "SQ", pydicom.Sequence([pydicom.Dataset()]))
        ds.SliceThickness = "5.000"
        path = folder / f"{k}.dcm"
        ds.save_as(path, enforce_file_format=True)
    # A value that is not a number in a DS field (wrong content for its VR).
    assert path.read_bytes().count(b"5.000 ") == 1
    data = path.read_bytes().replace(b"5.000 ", b"abcde ", 1)
    path.write_bytes(data)
    result = scan_folder(tmp_path)
    s = only_series(result)
    assert s.n_slices == 4 and s.status == "warnings"
    assert s.patient_name == "Müller^Jürgen"
    assert s.warnings == ["unreadable SliceThickness: ValueError (1 file)"]
    assert s.slice_thickness == pytest.approx(5.0)  # from the other three slices


def _huge_length_file(tmp_path: Path) -> Path:
    """A valid slice followed by a private OB element declaring 1 GiB."""
    src = write_series(tmp_path / "src", SeriesSpec(n=1))[0]
    ds = pydicom.dcmread(src)
    pixel = ds.PixelData
    del ds.PixelData
    path = tmp_path / "huge.dcm"
    ds.save_as(path, enforce_file_format=True)
    # Explicit VR LE: tag (0029,1010) OB, reserved, length 1 GiB, then a few real bytes.
    element = struct.pack("<HH2sHI", 0x0029, 0x1010, b"OB", 0, 1 << 30) + pixel[:64]
    path.write_bytes(path.read_bytes() + element)
    return path


def test_declared_length_beyond_file_rejected_without_allocating(tmp_path: Path) -> None:  # 5
    path = _huge_length_file(tmp_path)
    tracemalloc.start()
    try:
        problem = read_header(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert problem.status == "rejected"  # type: ignore[union-attr]
    assert "past the end" in problem.reason  # type: ignore[union-attr]
    assert peak < 16 * 1024 * 1024, f"peak allocation {peak} bytes"


# --- RELIABILITY 6, 7: geometry ----------------------------------------------------------------


def test_gap_detected_with_its_z_and_instance_gaps_ignored(tmp_path: Path) -> None:  # 6
    z = [-60.0, -55.0, -50.0, -45.0, -35.0, -30.0]
    spec = SeriesSpec(positions=[(-12.8, -12.8, v) for v in z], n=len(z))
    paths = write_series(tmp_path / "s", spec)
    # InstanceNumber gaps with contiguous positions are not an error: renumber 1, 3, 5 ...
    for k, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        ds.InstanceNumber = 1 + 2 * k
        ds.save_as(p)
    s = only_series(scan_folder(tmp_path))
    assert s.status == "warnings"
    assert s.warnings == [
        "gap of 10.0 mm between z = -45.0 and -35.0 mm (expected 5.0 mm; missing slice?)"
    ]
    assert s.gaps == [(-45.0, -35.0)]
    clean = SeriesSpec(n=5, series_number=9, patient_id="P2")
    paths2 = write_series(tmp_path / "t", clean)
    for k, p in enumerate(paths2):
        ds = pydicom.dcmread(p)
        ds.InstanceNumber = 10 * k + 1
        ds.save_as(p)
    res = scan_folder(tmp_path / "t")
    assert only_series(res).warnings == []


def test_uneven_spacing_warned_with_numbers(tmp_path: Path) -> None:
    z = [0.0, 1.0, 2.1, 3.1, 4.4, 5.4, 6.6]  # steps 1.0-1.3 mm: uneven, but no gap
    write_series(tmp_path, SeriesSpec(positions=[(0, 0, v) for v in z], n=len(z)))
    s = only_series(scan_folder(tmp_path))
    assert any(w.startswith("uneven slice spacing: steps from 1.0 to 1.3 mm") for w in s.warnings)
    assert s.gaps == []


def test_tilt_detected_from_positions_even_when_tag_says_zero(tmp_path: Path) -> None:  # 7
    # Positions drift 1.82 mm in y per 5 mm in z: atan(1.82/5) = 20.0 degrees.
    drift = 5.0 * np.tan(np.radians(20.0))
    pos = [(-12.8, -12.8 + k * drift, 5.0 * k) for k in range(6)]
    write_series(tmp_path, SeriesSpec(positions=pos, n=6, tilt_tag=0.0))
    s = only_series(scan_folder(tmp_path))
    assert s.tilt_deg == pytest.approx(20.0, abs=0.05)
    assert "gantry tilt of 20.0° measured from slice positions; GantryDetectorTilt says 0.0°" \
        in s.warnings


def test_mixed_orientations_are_split(tmp_path: Path) -> None:  # 7
    series_uid = uid()
    write_series(tmp_path / "a", SeriesSpec(n=5, series_uid=series_uid))
    write_series(tmp_path / "c", SeriesSpec(n=4, series_uid=series_uid, orientation=CORONAL,
                                            series_number=3))
    result = scan_folder(tmp_path)
    parts = sorted(result.series, key=lambda s: s.uid)
    assert [s.uid for s in parts] == [series_uid, series_uid + "#2"]
    axial, coronal = parts
    assert (axial.orientation, axial.n_slices, axial.status) == ("axial", 5, "warnings")
    assert (coronal.orientation, coronal.n_slices, coronal.status) == ("coronal", 4, "refused")
    assert coronal.refused_reason == "outside the intended use: coronal series (axial CT needed)"
    assert "series mixes 2 orientations: split" in axial.warnings
    assert result.counts["used"] == 9


def test_two_acquisitions_repeating_positions_are_split(tmp_path: Path) -> None:  # 7
    series_uid = uid()
    write_series(tmp_path / "a", SeriesSpec(n=5, series_uid=series_uid, acquisition_number=1))
    write_series(tmp_path / "b", SeriesSpec(n=5, series_uid=series_uid, acquisition_number=2,
                                            series_number=3, acquisition_time="102000"))
    result = scan_folder(tmp_path)
    assert len(result.series) == 2
    for s in result.series:
        assert s.n_slices == 5 and s.status == "warnings"
        assert "split into 2 acquisitions (AcquisitionNumber 1, 2) that repeat positions" \
            in s.warnings


def test_duplicate_positions_without_acquisitions_refused(tmp_path: Path) -> None:  # 7
    series_uid = uid()
    write_series(tmp_path / "a", SeriesSpec(n=5, series_uid=series_uid, acquisition_number=1))
    write_series(tmp_path / "b", SeriesSpec(n=2, series_uid=series_uid, acquisition_number=1,
                                            series_number=3, z0=5.0))
    s = only_series(scan_folder(tmp_path))
    assert s.status == "refused"
    assert s.refused_reason == (
        "duplicate positions: 4 slices share 2 positions (first at z = 5.0 mm); "
        "cannot build one volume"
    )


# --- RELIABILITY 8, 9: localizers, enhanced multi-frame ----------------------------------------


def test_localizers_dropped_and_counted(tmp_path: Path) -> None:  # 8
    series_uid = uid()
    write_series(tmp_path / "a", SeriesSpec(n=5, series_uid=series_uid))
    write_series(tmp_path / "l", SeriesSpec(n=2, series_uid=series_uid, series_number=1,
                                            orientation=CORONAL,
                                            image_type=("ORIGINAL", "PRIMARY", "LOCALIZER")))
    result = scan_folder(tmp_path)
    s = only_series(result)
    assert s.n_slices == 5 and "2 localizer images dropped" in s.warnings
    assert result.counts == {"used": 5, "skipped": 2, "rejected": 0}
    assert all(f.reason.startswith("localizer image dropped") for f in result.files
               if f.status == "skipped")


def test_localizer_alone_is_not_usable(tmp_path: Path, shared_data: Path) -> None:  # 8
    result = scan_folder(shared_data / "dcm_qa_ct" / "Philips")
    s = only_series(result)
    assert s.status == "refused" and "localizer" in (s.refused_reason or "")
    sc = [f for f in result.files if f.path.parent.name == "S4010" and f.path.name != "DIRFILE"]
    assert len(sc) == 5 and all(
        f.reason == "not a CT image of the patient (Secondary Capture Image Storage)" for f in sc
    )
    assert result.problem is not None


def _write_enhanced(path: Path, n: int = 5, spacing: float = 4.0) -> np.ndarray:
    """An Enhanced CT object with per-frame positions; returns the HU it stores."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import EnhancedCTImageStorage, ExplicitVRLittleEndian

    rows = cols = 16
    hu = np.stack([np.full((rows, cols), 10 * k - 20, np.int16) for k in range(n)])
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = EnhancedCTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = EnhancedCTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.PatientID = "E1"
    ds.PatientName = "Enhanced"
    ds.StudyInstanceUID = uid()
    ds.SeriesInstanceUID = uid()
    ds.SeriesNumber = 7
    ds.FrameOfReferenceUID = uid()
    ds.Rows, ds.Columns = rows, cols
    ds.NumberOfFrames = n
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = [0.7, 0.7]
    pm.SliceThickness = spacing
    shared.PixelMeasuresSequence = Sequence([pm])
    po = Dataset()
    po.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PlaneOrientationSequence = Sequence([po])
    pvt = Dataset()
    pvt.RescaleSlope = 1
    pvt.RescaleIntercept = -1000
    pvt.RescaleType = "HU"
    shared.PixelValueTransformationSequence = Sequence([pvt])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per = []
    for k in range(n):
        item = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = [0.0, 0.0, -spacing * k]  # written head-first, descending z
        item.PlanePositionSequence = Sequence([pp])
        per.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.PixelData = (hu + 1000).astype(np.int16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return hu


def test_enhanced_multiframe_supported_through_per_frame_geometry(tmp_path: Path) -> None:  # 9
    from app.dicom.volume import load_volume

    hu = _write_enhanced(tmp_path / "enh.dcm", n=5)
    result = scan_folder(tmp_path)
    s = only_series(result)
    assert s.status == "ok" and s.n_slices == 5
    assert [i.frame for i in s.instances] == [4, 3, 2, 1, 0]
    assert s.slice_spacing == pytest.approx(4.0)
    vol = load_volume(s)
    np.testing.assert_array_equal(vol.hu, hu[::-1].astype(np.float32))
    one = load_volume(s, indices=[3])  # decoded frame by frame
    np.testing.assert_array_equal(one.hu[0], vol.hu[3])


# --- RELIABILITY 10, 11, 13: syntaxes, non-images, intended use ---------------------------------


def test_undecodable_transfer_syntax_rejected_by_name(tmp_path: Path, shared_data: Path) -> None:
    folder = shared_data / "ct_transfer_syntaxes"
    for f in folder.glob("*.4.5[35].dcm"):
        shutil.copy(f, tmp_path / f.name)
    result = scan_folder(tmp_path)
    reasons = sorted(f.reason for f in result.files)
    assert len(reasons) == 2
    assert reasons[0].startswith("unsupported transfer syntax 1.2.840.10008.1.2.4.53 (JPEG")
    assert reasons[1].startswith("unsupported transfer syntax 1.2.840.10008.1.2.4.55 (JPEG")
    assert all(f.status == "rejected" for f in result.files)


def test_lossy_compression_and_coarse_hu_are_warned_per_series(tmp_path: Path, shared_data: Path) -> None:
    """RELIABILITY.md 10: only lossless syntaxes decode to the same HU; the lossy ones (JPEG
    baseline 8-bit comes back ~20 HU off) are used, but their series says so - and so does every
    prediction made on them (``app.case.flow.shown_warnings``)."""
    folder = shared_data / "ct_transfer_syntaxes"
    expected = {
        "1.2.840.10008.1.2.4.50": ["HU stored in steps of 32.1 HU (8 bits stored)",
                                   "lossy compressed (JPEG Baseline (Process 1))"],
        "1.2.840.10008.1.2.4.51": ["lossy compressed (JPEG Extended (Process 2 and 4))"],
        "1.2.840.10008.1.2.4.81": ["lossy compressed (JPEG-LS Lossy (Near-Lossless) Image Compression)"],
        "1.2.840.10008.1.2.4.91": ["lossy compressed (JPEG 2000 Image Compression)"],  # says 01
    }
    for syntax in ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.57",
                   "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90"):
        expected[syntax] = []  # lossless: no warning
    for syntax, words in expected.items():
        one = tmp_path / syntax
        one.mkdir()
        shutil.copy(next(folder.glob(f"*_{syntax}.dcm")), one / "x.dcm")
        warnings = scan_folder(one).series[0].warnings
        assert len(warnings) == len(words), (syntax, warnings)
        for w, start in zip(sorted(warnings), words, strict=True):
            assert w.startswith(start), (syntax, warnings)


@pytest.mark.parametrize(("syntax", "flag", "words"), [
    ("1.2.840.10008.1.2.1", "01", "lossy compressed (LossyImageCompression 01: compressed with loss"),
    ("1.2.840.10008.1.2.1", "00", None),
    ("1.2.840.10008.1.2.4.91", "", "possibly lossy compressed (JPEG 2000 Image Compression; the file "
                                   "does not say"),
    ("1.2.840.10008.1.2.4.91", "00", None),
    ("1.2.840.10008.1.2.4.90", "", None),
    ("1.2.840.10008.1.2.4.50", "", "lossy compressed (JPEG Baseline (Process 1))"),
])
def test_lossy_compression_note(syntax: str, flag: str, words: str | None) -> None:
    from app.dicom.tags import lossy_compression_note

    note = lossy_compression_note(syntax, flag)
    assert (note is None) if words is None else note is not None and note.startswith(words)


def test_once_lossy_series_stored_uncompressed_is_warned(tmp_path: Path) -> None:
    paths = write_series(tmp_path / "s", SeriesSpec(n=4))
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.LossyImageCompression = "01"
        ds.BitsStored, ds.HighBit, ds.RescaleSlope = 12, 11, 16  # an export in 16-HU steps
        ds.save_as(p)
    warnings = scan_folder(tmp_path).series[0].warnings
    assert "lossy compressed (LossyImageCompression 01: compressed with loss before it was stored): " \
           "HU values are approximate (4 files)" in warnings
    assert any(w.startswith("HU stored in steps of 16 HU") and w.endswith("(4 files)") for w in warnings)


def test_non_image_objects_skipped(tmp_path: Path) -> None:  # 11
    for name in ("rtstruct.dcm", "test-SR.dcm", "rtplan.dcm"):
        shutil.copy(pydicom_file(name), tmp_path / name)
    shutil.copy(pydicom_file("dicomdirtests/DICOMDIR"), tmp_path / "DICOMDIR")
    write_sr(tmp_path / "dose_sr.dcm")
    write_secondary_capture(tmp_path / "dose_sc.dcm")
    result = scan_folder(tmp_path)
    assert outcome(result, "DICOMDIR") == ("skipped", "not an image (DICOMDIR)")
    assert outcome(result, "rtstruct.dcm") == ("skipped", "not an image (RT Structure Set Storage)")
    assert outcome(result, "test-SR.dcm") == ("skipped", "not an image (Comprehensive SR Storage)")
    assert outcome(result, "dose_sr.dcm") == ("skipped",
                                              "not an image (X-Ray Radiation Dose SR Storage)")
    assert outcome(result, "dose_sc.dcm") == (
        "skipped", "not a CT image of the patient (Secondary Capture Image Storage)")
    assert result.problem is not None


SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation Storage
GSPS_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"  # Grayscale Softcopy Presentation State Storage


def _non_image(sop_class: str, modality: str, media_class: str | None = None) -> Dataset:
    """A non-image object's common attributes (no pixel module); written by the caller."""
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class if media_class is None else media_class
    meta.MediaStorageSOPInstanceUID = uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientID = "P001"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = uid()
    ds.SeriesNumber = 90
    ds.InstanceNumber = 1
    return ds


def _write_seg(path: Path, sop_class: str = SEG_CLASS, media_class: str | None = None) -> Path:
    """A binary DICOM Segmentation of two axial frames, with real (bit-packed) pixel data."""
    ds = _non_image(sop_class, "SEG", media_class)
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.SegmentationType = "BINARY"
    ds.FrameOfReferenceUID = uid()
    ds.Rows = ds.Columns = 16
    ds.NumberOfFrames = 2
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    ds.PixelRepresentation = 0
    orientation, measures, shared = Dataset(), Dataset(), Dataset()
    orientation.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    measures.PixelSpacing = [0.8, 0.8]
    measures.SliceThickness = 5.0
    shared.PlaneOrientationSequence = [orientation]
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for k in range(2):
        position, frame = Dataset(), Dataset()
        position.ImagePositionPatient = [-12.8, -12.8, 5.0 * k]
        frame.PlanePositionSequence = [position]
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = frames
    mask = np.zeros((2, 16, 16), np.uint8)
    mask[:, 4:12, 4:12] = 1
    ds.PixelData = pack_bits(mask)
    ds.save_as(path, enforce_file_format=bool(sop_class and media_class != ""))
    return path


def _write_gsps(path: Path, sop_class: str = GSPS_CLASS, media_class: str | None = None) -> Path:
    """A Grayscale Softcopy Presentation State (no pixel data) referencing a CT image."""
    ds = _non_image(sop_class, "PR", media_class)
    ds.ContentLabel = "LIVER_WINDOW"
    ref = Dataset()
    ref.ReferencedSOPClassUID = CTImageStorage
    ref.ReferencedSOPInstanceUID = uid()
    voi = Dataset()
    voi.ReferencedImageSequence = [ref]
    voi.WindowCenter = 60
    voi.WindowWidth = 400
    ds.SoftcopyVOILUTSequence = [voi]
    ds.save_as(path, enforce_file_format=bool(sop_class and media_class != ""))
    return path


def test_segmentation_and_presentation_state_skipped(tmp_path: Path) -> None:  # 11
    seg = _write_seg(tmp_path / "seg.dcm")
    _write_gsps(tmp_path / "gsps.dcm")
    assert pydicom.dcmread(seg).pixel_array.shape == (2, 16, 16)  # a SEG with real pixel data
    write_series(tmp_path / "ct", SeriesSpec(n=4))
    result = scan_folder(tmp_path)
    assert outcome(result, "seg.dcm") == ("skipped", "not an image (Segmentation Storage)")
    assert outcome(result, "gsps.dcm") == (
        "skipped", "not an image (Grayscale Softcopy Presentation State Storage)")
    assert result.counts == {"used": 4, "skipped": 2, "rejected": 0}
    s = only_series(result)
    assert (s.status, s.n_slices) == ("ok", 4)


def _blank_class(path: Path, media_class: str) -> None:
    """Blank the data set's SOPClassUID and set the file meta's class (it may be blank too)."""
    ds = pydicom.dcmread(path)
    ds.SOPClassUID = ""
    ds.file_meta.MediaStorageSOPClassUID = media_class
    ds.save_as(path, enforce_file_format=bool(media_class))


def test_blank_sop_class_falls_back_to_the_media_class(tmp_path: Path) -> None:  # 11
    paths = write_series(tmp_path / "ct", SeriesSpec(n=4))
    _blank_class(paths[1], CTImageStorage)
    sc = write_secondary_capture(tmp_path / "sc.dcm")
    _blank_class(sc, SecondaryCaptureImageStorage)
    seg = _write_seg(tmp_path / "seg.dcm", sop_class="", media_class=SEG_CLASS)
    assert pydicom.dcmread(seg).get("SOPClassUID") == ""
    header = read_header(paths[1])
    assert isinstance(header, tags_mod.Header) and header.sop_class_uid == CTImageStorage
    assert not any("class" in w.lower() for w in header.warnings)
    result = scan_folder(tmp_path)
    assert outcome(result, paths[1].name)[0] == "used"
    # the media class decides, whatever it says: a secondary capture or SEG stays out
    assert outcome(result, "sc.dcm") == (
        "skipped", "not a CT image of the patient (Secondary Capture Image Storage)")
    assert outcome(result, "seg.dcm") == ("skipped", "not an image (Segmentation Storage)")
    s = only_series(result)
    assert (s.status, s.n_slices) == ("ok", 4)


def test_blank_sop_class_everywhere_is_judged_by_content(tmp_path: Path) -> None:  # 11
    # With no SOP Class UID in the data set nor in the file meta the class is unknown; the file
    # is judged by what it holds. A CT slice with CT pixel data and geometry is used (as a CT
    # image: its modality and geometry are checked as for any slice); a non-image object without
    # class still stays out: a SEG by its 1-bit pixel data, a presentation state by having none.
    paths = write_series(tmp_path / "ct", SeriesSpec(n=4))
    _blank_class(paths[2], "")
    raw = pydicom.dcmread(paths[2])
    assert raw.SOPClassUID == "" and raw.file_meta.MediaStorageSOPClassUID == ""
    _write_seg(tmp_path / "seg.dcm", sop_class="", media_class="")
    _write_gsps(tmp_path / "gsps.dcm", sop_class="", media_class="")
    header = read_header(paths[2])
    assert isinstance(header, tags_mod.Header)
    assert (header.sop_class_uid, header.forced) == ("", False)
    result = scan_folder(tmp_path)
    assert outcome(result, paths[2].name)[0] == "used"
    assert outcome(result, "seg.dcm") == ("rejected", "unsupported BitsAllocated 1 (CT uses 8, 16 or 32)")
    assert outcome(result, "gsps.dcm") == ("skipped", "not an image (no pixel data)")
    s = only_series(result)
    assert (s.status, s.n_slices) == ("warnings", 4)
    assert s.warnings == ["no SOP Class UID: taken for an image by its content (1 file)"]


def test_non_ct_modality_refused(tmp_path: Path) -> None:  # 13
    write_series(tmp_path, SeriesSpec(n=5, modality="MR"))
    s = only_series(scan_folder(tmp_path))
    assert s.status == "refused"
    assert s.refused_reason == "outside the intended use: modality MR (CT needed)"


def test_pydicom_example_ct_and_mr(tmp_path: Path) -> None:
    shutil.copy(pydicom_file("CT_small.dcm"), tmp_path / "ct.dcm")
    shutil.copy(pydicom_file("MR_small.dcm"), tmp_path / "mr.dcm")
    result = scan_folder(tmp_path)
    by_mod = {s.modality: s for s in result.series}
    assert set(by_mod) == {"CT", "MR"}
    assert by_mod["MR"].refused_reason == "outside the intended use: modality MR (CT needed)"
    assert by_mod["CT"].refused_reason.startswith("not a volume: 1 distinct slice position")
    assert len(result.patients) == 2


# --- RELIABILITY 12: patients and studies kept apart -------------------------------------------


def test_patients_and_studies_kept_apart(tmp_path: Path) -> None:
    s1, s2 = uid(), uid()
    write_series(tmp_path / "a", SeriesSpec(n=4, patient_id="A", study_uid=s1, series_number=2))
    write_series(tmp_path / "b", SeriesSpec(n=4, patient_id="A", study_uid=s1, series_number=3))
    write_series(tmp_path / "c", SeriesSpec(n=4, patient_id="A", study_uid=s2, series_number=2))
    write_series(tmp_path / "d", SeriesSpec(n=4, patient_id="B", study_uid=uid()))
    result = scan_folder(tmp_path)
    assert [p.patient_id for p in result.patients] == ["A", "B"]
    a = result.patients[0]
    assert sorted(len(st.series) for st in a.studies) == [1, 2]
    for p in result.patients:
        for st in p.studies:
            assert {s.patient_id for s in st.series} == {p.patient_id}
            assert {s.study_uid for s in st.series} == {st.study_uid}


def test_blank_series_uid_grouped_by_content(tmp_path: Path, shared_data: Path) -> None:
    result = scan_folder(shared_data / "totalsegmentator_example_ct")
    s = only_series(result)
    assert s.n_slices == 20 and s.series_instance_uid.startswith("2.25.")
    assert any(w.startswith("blank SeriesInstanceUID") for w in s.warnings)
    assert s.slice_spacing == pytest.approx(2.0)
    assert s.transfer_syntax == "1.2.840.10008.1.2.4.90"


# --- RELIABILITY 14: the file system fights back -----------------------------------------------


def test_links_loops_vanishing_unreadable_and_odd_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    deep = root / ("ü" * 40) / ("very_long_folder_name_" * 8) / "名前"
    paths = write_series(deep, SeriesSpec(n=5))
    odd = deep / "scan ß 🙂.dcm"
    paths[0].rename(odd)
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "broken").symlink_to(root / "does-not-exist")
    (root / "again.dcm").symlink_to(paths[1])
    vanishing = paths[2]
    locked = paths[3]
    real_read = scan_mod.read_header
    real_open = open

    def flaky_read(path: Path):  # the file vanishes between listing and reading
        if path == vanishing:
            path.unlink()
        return real_read(path)

    def locked_open(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(file) == locked:  # tests run as root here, so chmod cannot lock a file
            raise PermissionError(13, "Permission denied")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(scan_mod, "read_header", flaky_read)
    monkeypatch.setattr(tags_mod, "open", locked_open, raising=False)
    result = scan_folder(root)
    assert outcome(result, "loop")[0] == "skipped"
    assert "link loop" in outcome(result, "loop")[1]
    assert outcome(result, "broken") == ("rejected", "broken symbolic link")
    linked = sorted([outcome(result, "again.dcm"), outcome(result, paths[1].name)])
    assert linked[0][0] == "skipped" and linked[0][1].startswith("same file as")
    assert linked[1][0] == "used"
    assert outcome(result, vanishing.name) == ("rejected", "file vanished during the scan")
    assert outcome(result, locked.name) == ("rejected", "unreadable: permission denied")
    assert outcome(result, odd.name)[0] == "used"
    s = only_series(result)
    assert s.n_slices == 3


# --- RELIABILITY 15: same content, same result -------------------------------------------------


def _content(result: ScanResult) -> list[object]:
    out: list[object] = []
    for p in result.patients:
        for st in p.studies:
            for s in st.series:
                d = dataclasses.asdict(s)
                d["instances"] = [(i["sop_instance_uid"], i["z"], i["frame"])
                                  for i in d["instances"]]
                out.append((p.patient_id, st.study_uid, d))
    out.append(sorted((f.status, f.reason) for f in result.files))
    return out


def test_same_folder_twice_and_shuffled_renamed_copy_identical(tmp_path: Path) -> None:
    src = tmp_path / "src"
    series_uid = uid()
    write_series(src / "a", SeriesSpec(n=6, series_uid=series_uid))
    write_series(src / "b", SeriesSpec(n=3, series_uid=series_uid, orientation=CORONAL))
    write_series(src / "c", SeriesSpec(n=5, series_number=5, description="ART",
                                       positions=[(0, 0, v) for v in (0, 5, 10, 20, 25)]))
    write_sr(src / "sr.dcm")
    (src / "notes.txt").write_text("hello")
    first, second = scan_folder(src), scan_folder(src)
    assert _content(first) == _content(second)
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    files = sorted(p for p in src.rglob("*") if p.is_file())
    rng = random.Random(7)
    names = [f"x{rng.randrange(10**9):09d}" for _ in files]
    rng.shuffle(files)
    for f, name in zip(files, names, strict=True):
        shutil.copy(f, shuffled / name)
    assert _content(scan_folder(shuffled)) == _content(first)


# --- real files --------------------------------------------------------------------------------


def test_real_geometry_cases(shared_data: Path) -> None:
    d = shared_data / "dicom2nifti_failing"
    gap = only_series(scan_folder(d / "sliceincrement" / "001"))
    assert "gap of 10.0 mm between z = 28.1 and 38.1 mm (expected 5.0 mm; missing slice?)" \
        in gap.warnings
    uneven = only_series(scan_folder(d / "sliceincrement" / "002"))
    assert uneven.status == "warnings"
    tilt = only_series(scan_folder(d / "gantrytilting" / "001"))
    assert tilt.tilt_deg > 10 and any("gantry tilt" in w for w in tilt.warnings)
    same = only_series(scan_folder(d / "notavolume" / "001"))
    assert same.refused_reason == "not a volume: all 4 slices at the same position z = 61.5 mm"
    mixed = scan_folder(d / "sliceorientation" / "001")
    assert len(mixed.series) == 2 and {s.orientation for s in mixed.series} == {"axial", "sagittal"}
    ge = only_series(scan_folder(shared_data / "dcm_qa_ct" / "GE"))
    assert ge.n_slices == 28 and ge.tilt_deg == pytest.approx(18.5, abs=0.3)
    assert any("uneven slice spacing" in w for w in ge.warnings)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's complaints about the damage
def test_corrupted_bytes_and_every_truncation_end_as_outcomes(tmp_path: Path) -> None:
    """Damage anywhere in a file gives a header or a reason, never an exception (RELIABILITY 14)."""
    src = write_series(tmp_path / "src", SeriesSpec(n=1, rows=16, cols=16))[0]
    data = src.read_bytes()
    rng = random.Random(3)
    target = tmp_path / "x.dcm"
    seen: set[str] = set()
    for cut in range(0, len(data), max(1, len(data) // 60)):
        target.write_bytes(data[:cut])
        result = read_header(target)
        seen.add(type(result).__name__)
        if cut < len(data) - 512:  # cut inside the header or the pixel data: never "used"
            assert getattr(result, "status", "rejected") in ("skipped", "rejected"), cut
    for _ in range(150):
        damaged = bytearray(data)
        for _ in range(4):
            damaged[rng.randrange(132, len(data))] = rng.randrange(256)
        target.write_bytes(bytes(damaged))
        seen.add(type(read_header(target)).__name__)
    assert seen == {"Header", "FileProblem"}
