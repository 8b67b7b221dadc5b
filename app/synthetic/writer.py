"""DICOM mechanics of the generator: UIDs, stored pixel values, datasets and files.

Everything written is deterministic: UIDs are derived from the cohort seed and the object's
role (``2.25.<name-based UUID>``; note that :func:`pydicom.uid.generate_uid` ignores its entropy
sources when the prefix is None, so it cannot be used for 2.25 UIDs here), no wall-clock
time is ever written, and compression is lossless, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from app import __version__
from app.synthetic.conventions import Vendor
from app.synthetic.errors import SyntheticError

#: Transfer syntax per ``StudyOptions.transfer_syntax``.
TRANSFER_SYNTAX_UIDS: dict[str, UID] = {
    "explicit": ExplicitVRLittleEndian,
    "rle": RLELossless,
    "jpeg2000": JPEG2000Lossless,
}

#: Namespace of the name-based (version 5) UUIDs behind every UID the generator writes.
_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:hcc-response:synthetic")


def make_uid(*parts: object) -> str:
    """A deterministic UID for the object named by ``parts`` (seed, patient, role, index...).

    ``2.25.`` followed by the integer of a name-based UUID (ISO/IEC 9834-8, as DICOM PS3.5
    §B.2 allows); the parts are joined with a separator so that ("1", "23") and ("12", "3")
    differ.
    """
    name = "\x1f".join(map(str, parts))
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, name).int}"


IMPLEMENTATION_CLASS_UID = UID(make_uid("implementation"))
IMPLEMENTATION_VERSION_NAME = f"HCCRESP_{__version__}"[:16]


def stored_values(hu: np.ndarray, vendor: Vendor) -> np.ndarray:
    """HU → stored pixel values in the vendor's convention (slope 1, vendor intercept).

    Unsigned 12-bit vendors store ``HU + 1024`` in 0..4095; signed 16-bit vendors store
    ``HU − intercept`` as int16. Values are rounded to the nearest integer.
    """
    stored = np.rint(np.asarray(hu, dtype=np.float32) - np.float32(vendor.intercept))
    if vendor.signed:
        return np.clip(stored, -32768, 32767).astype(np.int16)
    return np.clip(stored, 0, 2**vendor.bits_stored - 1).astype(np.uint16)


def set_pixels(ds: Dataset, pixels: np.ndarray, signed: bool, bits_stored: int) -> None:
    """Attach monochrome pixel data and the image pixel module attributes."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.BitsAllocated = 8 if pixels.dtype.itemsize == 1 else 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()


def finish_and_save(ds: Dataset, path: Path, sop_class: str, transfer_syntax: str, pixels: np.ndarray) -> None:
    """Add the file meta information, compress if asked, and write ``path`` (Part 10 file).

    Parameters
    ----------
    transfer_syntax:
        Key of :data:`TRANSFER_SYNTAX_UIDS`. Compression keeps the SOP Instance UID (the truth
        file refers to it) and is lossless, so the decoded HU equal the uncompressed ones.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    ts = TRANSFER_SYNTAX_UIDS[transfer_syntax]
    if ts != ExplicitVRLittleEndian:
        try:
            ds.compress(ts, arr=pixels, encoding_plugin=_plugin_for(ts), generate_instance_uid=False)
        except (RuntimeError, ValueError) as exc:  # missing plugin or unsupported pixel format
            raise SyntheticError(f"cannot compress with {ts.name}: {exc}") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _plugin_for(ts: UID) -> str:
    """Prefer pylibjpeg-rle's C encoder for RLE (pydicom's own is pure Python, ~50× slower)."""
    if ts == RLELossless:
        from pydicom.pixels.encoders import RLELosslessEncoder

        if "pylibjpeg" in RLELosslessEncoder.available_plugins:
            return "pylibjpeg"
    return ""


def base_dataset(attrs: dict[str, Any], charset: str) -> Dataset:
    """A dataset with ``SpecificCharacterSet`` first and then ``attrs`` (keyword → value).

    ``None`` values are skipped, so callers can blank tags by passing None.
    """
    ds = Dataset()
    ds.SpecificCharacterSet = charset
    for keyword, value in attrs.items():
        if value is not None:
            setattr(ds, keyword, value)
    return ds


def ds_number(value: float, decimals: int = 4) -> str:
    """A DS string short enough for DICOM (≤ 16 characters) and stable across platforms."""
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return text


def dicom_time(seconds: float) -> str:
    """Seconds since midnight → ``HHMMSS.ffffff`` (TM)."""
    seconds = max(0.0, min(seconds, 86399.999))
    h = int(seconds // 3600)
    m = int((seconds % 3600) // 60)
    s = seconds - 3600 * h - 60 * m
    return f"{h:02d}{m:02d}{s:09.6f}"
