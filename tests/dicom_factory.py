"""Small writer of real DICOM test files (pydicom), for the scan/volume/assembly tests.

Each helper writes standard-conforming files with known geometry and pixel values, so that a
test can state exactly what the scanner must find. Pixel values are chosen per slice (HU =
``slice index * 10 + column // 8`` by default, stored with a per-slice intercept) so that
ordering and rescale mistakes change the loaded HU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)

PREFIX = "1.2.826.0.1.3680043.8.498."


def uid() -> str:
    return generate_uid(prefix=PREFIX)


def default_hu(index: int, rows: int, cols: int) -> np.ndarray:
    """Known HU per slice: a ramp across columns, offset by the slice index."""
    ramp = (np.arange(cols) // 8).astype(np.int16)
    return np.broadcast_to(ramp, (rows, cols)) + np.int16(index * 10 - 100)


@dataclass
class SeriesSpec:
    """What one written series looks like."""

    n: int = 6
    rows: int = 32
    cols: int = 32
    z0: float = 0.0
    spacing: float = 5.0
    thickness: float | None = 5.0
    orientation: tuple[float, ...] = AXIAL
    positions: Sequence[Sequence[float]] | None = None
    modality: str = "CT"
    description: str = "ABD 5.0"
    series_number: int = 2
    series_uid: str = field(default_factory=uid)
    study_uid: str = ""
    patient_id: str = "P001"
    patient_name: str = "Test^Patient"
    frame_of_reference: str = ""
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL")
    acquisition_number: int | None = 1
    acquisition_time: str = "101500"
    contrast_agent: str | None = None
    contrast_start_time: str | None = None
    tilt_tag: float | None = None
    hu: Callable[[int, int, int], np.ndarray] = default_hu
    intercepts: Sequence[float] | None = None
    transfer_syntax: str = ExplicitVRLittleEndian


def make_dataset(spec: SeriesSpec, index: int, position: Sequence[float]) -> Dataset:
    """One CT slice as a pydicom Dataset with file meta."""
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    sop = uid()
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = spec.transfer_syntax
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop
    ds.Modality = spec.modality
    ds.ImageType = list(spec.image_type)
    ds.PatientID = spec.patient_id
    ds.PatientName = spec.patient_name
    ds.StudyInstanceUID = spec.study_uid or "1.2.826.0.1.3680043.8.498.1"
    ds.StudyDate = "20240101"
    ds.StudyTime = "100000"
    ds.StudyDescription = "CT ABDOMEN"
    ds.SeriesInstanceUID = spec.series_uid
    ds.SeriesNumber = spec.series_number
    ds.SeriesDescription = spec.description
    ds.InstanceNumber = index + 1
    if spec.acquisition_number is not None:
        ds.AcquisitionNumber = spec.acquisition_number
    ds.FrameOfReferenceUID = spec.frame_of_reference or generate_uid(
        prefix=PREFIX, entropy_srcs=[str(ds.StudyInstanceUID), "for"])
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = list(spec.orientation)
    ds.PixelSpacing = [0.8, 0.8]
    if spec.thickness is not None:
        ds.SliceThickness = spec.thickness
    if spec.tilt_tag is not None:
        ds.GantryDetectorTilt = spec.tilt_tag
    ds.AcquisitionTime = spec.acquisition_time
    ds.SeriesTime = spec.acquisition_time
    ds.ContentTime = spec.acquisition_time
    if spec.contrast_agent is not None:
        ds.ContrastBolusAgent = spec.contrast_agent
    if spec.contrast_start_time is not None:
        ds.ContrastBolusStartTime = spec.contrast_start_time
    ds.KVP = 120
    ds.Manufacturer = "TestVendor"
    ds.Rows = spec.rows
    ds.Columns = spec.cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    intercept = float(spec.intercepts[index]) if spec.intercepts is not None else -1024.0
    ds.RescaleIntercept = intercept
    ds.RescaleSlope = 1
    hu = spec.hu(index, spec.rows, spec.cols)
    stored = np.round(hu - intercept).astype(np.int16)
    ds.PixelData = stored.tobytes()
    return ds


def positions_of(spec: SeriesSpec) -> list[tuple[float, float, float]]:
    """The positions a spec describes (explicit list, or z0 + k·spacing along the normal)."""
    if spec.positions is not None:
        return [tuple(float(v) for v in p) for p in spec.positions]  # type: ignore[misc]
    row = np.asarray(spec.orientation[:3])
    col = np.asarray(spec.orientation[3:])
    normal = np.cross(row, col)
    base = np.array([-12.8, -12.8, 0.0])
    return [tuple(float(v) for v in base + (spec.z0 + k * spec.spacing) * normal)  # type: ignore[misc]
            for k in range(spec.n)]


def write_series(folder: Path, spec: SeriesSpec | None = None, **kwargs: object) -> list[Path]:
    """Write one series into ``folder`` (created) and return the file paths in slice order."""
    spec = spec or SeriesSpec(**kwargs)  # type: ignore[arg-type]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, pos in enumerate(positions_of(spec)):
        ds = make_dataset(spec, k, pos)
        path = folder / f"{spec.series_number:03d}_{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_secondary_capture(path: Path, study_uid: str = "", patient_id: str = "P001") -> Path:
    """A dose-report-like Secondary Capture image."""
    spec = SeriesSpec(n=1, study_uid=study_uid, patient_id=patient_id, modality="OT")
    ds = make_dataset(spec, 0, (0.0, 0.0, 0.0))
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_sr(path: Path) -> Path:
    """A minimal structured report (not an image)."""
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.67"  # X-Ray Radiation Dose SR
    meta.MediaStorageSOPInstanceUID = uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "SR"
    ds.PatientID = "P001"
    ds.StudyInstanceUID = uid()
    ds.SeriesInstanceUID = uid()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_raw_dataset(path: Path, spec: SeriesSpec | None = None) -> Path:
    """A slice written without preamble and file meta (implicit VR little endian)."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    spec = spec or SeriesSpec(n=1)
    ds = make_dataset(spec, 0, (0.0, 0.0, 0.0))
    del ds.file_meta
    buf = DicomBytesIO()
    buf.is_little_endian = True
    buf.is_implicit_VR = True
    write_dataset(buf, ds)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


def truncate(path: Path, keep_fraction: float = 0.6) -> Path:
    """Cut a file short (pixel data truncated)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


def synthetic_patient(out: Path, seed: int, matrix: int = 96) -> Path:
    """One phantom patient of the synthetic generator written as DICOM under ``out``; its folder.

    For module fixtures that need one whole three-phase study (export, PACS, CLI tests)."""
    from app.synthetic.cohort import generate_cohort
    from app.synthetic.options import StudyOptions

    generate_cohort(out, 1, seed=seed, options=StudyOptions(matrix=matrix))
    return next(p for p in out.iterdir() if p.is_dir())
