"""Sanity limits on the header values that size memory or geometry (checked per file at scan).

A header is data from outside: a mutated or hostile file may declare 65535 × 65535 pixels, a
pixel spacing of 1e308 mm, an all-zero orientation or a RescaleSlope of NaN. Each of these
used to travel on until it broke something far away (a MemoryError while allocating the volume,
an OverflowError in the anatomy code, a silently wrong prediction from an all-NaN slice). The
scan now refuses such a file with a reason naming the value, so that nothing after the scan sees
it (RELIABILITY.md: every file ends used, skipped or rejected with a reason).

The limits are generous for CT and far from anything that could overflow or exhaust memory:

- **Rows/Columns ≤ 4096**: CT is 512² (1024² or 2048² for high-resolution reconstructions); one
  4096² float32 slice is 64 MB, so a series at the limit is still refused by the volume budget
  (:data:`MAX_VOLUME_BYTES`) before anything is allocated, never by a MemoryError.
- **NumberOfFrames ≤ 5000**: an enhanced CT of the whole body has a few thousand frames at most.
- **BitsAllocated 8, 16 or 32; 1 ≤ BitsStored ≤ BitsAllocated; SamplesPerPixel 1**: CT is
  greyscale; anything else is not a CT slice the loader could make HU of.
- **PixelSpacing 0.01–50 mm**: 0, negative, NaN or 1e308 make every mm-based computation wrong.
- **SliceThickness ≤ 100 mm** (0 is read as "not given", with a warning; some exports write 0).
- **ImagePositionPatient within ±100 m**: larger values make differences of positions overflow.
- **ImageOrientationPatient**: two unit vectors (norm 1 ± 0.02), orthogonal (|dot| ≤ 0.02).
- **RescaleSlope/Intercept finite, slope ≠ 0, and the HU range of the stored values within
  ±100 000 HU** (12-bit CT spans −1024…3071 HU, 16-bit at most about ±65 000).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.dicom._tag_values import _vn, _vs
from app.dicom.errors import DicomError

MAX_ROWS = 4096
MAX_COLUMNS = 4096
MAX_FRAMES = 5000
BITS_ALLOCATED = (8, 16, 32)
PIXEL_SPACING_MM = (0.01, 50.0)
MAX_SLICE_THICKNESS_MM = 100.0
MAX_POSITION_MM = 100_000.0
ORIENTATION_TOLERANCE = 0.02
MAX_ABS_HU = 100_000.0
#: A RescaleSlope above this stores HU in steps too coarse for the 10-60 HU contrast between a
#: tumour and the liver (half the smallest such contrast; an 8-bit export stores ~32 HU per
#: value, the 12-bit JPEG test slice 2 HU); warned, not refused.
COARSE_HU_STEP = 5.0
#: Largest HU volume the loader allocates (float32): 4 GB is a 512² series of ~3800 slices
#: (0.625 mm slices over 2.4 m), far beyond a liver study.
MAX_VOLUME_BYTES = 4_000_000_000


class ImplausibleGeometry(DicomError):
    """A volume's geometry (pixel spacing, orientation) is outside the sanity limits."""


@dataclass(frozen=True)
class ImageSize:
    """The checked size of one file's pixel data."""

    rows: int
    columns: int
    frames: int
    bits_allocated: int
    samples: int

    @property
    def expected_bytes(self) -> int:
        """Bytes of uncompressed pixel data this size needs."""
        return self.rows * self.columns * self.frames * self.samples * self.bits_allocated // 8


def _fmt(value: float) -> str:
    """A value as the user would recognise it from the header (NaN, inf, 1e+308, 0.8)."""
    return f"{value:g}"


def _multi(values: Sequence[float]) -> str:
    """A multi-valued attribute as written in DICOM (values separated by backslashes)."""
    return "\\".join(_fmt(v) for v in values)


def image_size(rows: float | None, columns: float | None, frames: float | None,
               bits_allocated: float | None, bits_stored: float | None,
               samples: float | None) -> ImageSize | str:
    """The image size, or why the declared values cannot be a CT slice (a rejection reason).

    ``None`` is "absent": NumberOfFrames and SamplesPerPixel default to 1, BitsStored to
    BitsAllocated (the caller has already refused a missing Rows/Columns/BitsAllocated).
    """
    r, c = int(rows or 0), int(columns or 0)
    if not 1 <= r <= MAX_ROWS or not 1 <= c <= MAX_COLUMNS:
        return (f"implausible image size: Rows {r} × Columns {c} (at most "
                f"{MAX_ROWS} × {MAX_COLUMNS} for CT)")
    n = 1 if frames is None else int(frames)
    if not 1 <= n <= MAX_FRAMES:
        return f"implausible NumberOfFrames {n} (1 to {MAX_FRAMES})"
    bits = int(bits_allocated or 0)
    if bits not in BITS_ALLOCATED:
        return f"unsupported BitsAllocated {bits} (CT uses 8, 16 or 32)"
    stored = bits if bits_stored is None else int(bits_stored)
    if not 1 <= stored <= bits:
        return f"implausible BitsStored {stored} with BitsAllocated {bits}"
    spp = 1 if samples is None else int(samples)
    if spp != 1:
        return f"SamplesPerPixel {spp}: not a greyscale CT image"
    return ImageSize(r, c, n, bits, spp)


def spacing_problem(spacing: Sequence[float] | None) -> str | None:
    """Why a PixelSpacing is unusable (None: it is fine, or absent)."""
    if spacing is None:
        return None
    lo, hi = PIXEL_SPACING_MM
    if not all(math.isfinite(v) and lo <= v <= hi for v in spacing):
        return (f"implausible PixelSpacing {_multi(spacing)} mm "
                f"({lo:g} to {hi:g} mm)")
    return None


def thickness_problem(thickness: float | None) -> str | None:
    """Why a SliceThickness is unusable (0 and absent are handled by the caller)."""
    if thickness is None:
        return None
    if not math.isfinite(thickness) or not 0.0 <= thickness <= MAX_SLICE_THICKNESS_MM:
        return (f"implausible SliceThickness {_fmt(thickness)} mm "
                f"(0 to {MAX_SLICE_THICKNESS_MM:g} mm)")
    return None


def position_problem(position: Sequence[float]) -> str | None:
    """Why an ImagePositionPatient is unusable (non-finite or beyond ±100 m)."""
    if not all(math.isfinite(v) and abs(v) <= MAX_POSITION_MM for v in position):
        return (f"implausible ImagePositionPatient {_multi(position)} "
                f"(beyond ±{MAX_POSITION_MM:g} mm)")
    return None


def orientation_problem(orientation: Sequence[float]) -> str | None:
    """Why an ImageOrientationPatient is not two orthogonal unit vectors (None: it is)."""
    if len(orientation) != 6 or not all(math.isfinite(v) for v in orientation):
        return "ImageOrientationPatient is not six finite numbers"
    row, col = orientation[:3], orientation[3:]
    n_row = math.sqrt(sum(v * v for v in row))
    n_col = math.sqrt(sum(v * v for v in col))
    dot = sum(a * b for a, b in zip(row, col, strict=True))
    tol = ORIENTATION_TOLERANCE
    if abs(n_row - 1.0) > tol or abs(n_col - 1.0) > tol or abs(dot) > tol:
        return (f"invalid ImageOrientationPatient {_multi(orientation)}: "
                f"row and column directions must be orthogonal unit vectors (norms "
                f"{n_row:.3f} and {n_col:.3f}, dot product {dot:.3f})")
    return None


def rescale_problem(slope: float | None, intercept: float | None, bits_stored: int,
                    signed: bool) -> str | None:
    """Why a RescaleSlope/RescaleIntercept cannot give HU (None: they can, or are absent).

    Checks that both are finite, that the slope is not 0, and that the stored values' range
    (from BitsStored and PixelRepresentation, up to 16 bits) maps into ±:data:`MAX_ABS_HU`; a
    float32 volume would otherwise hold infinities (RescaleIntercept 1e308) or NaN
    (RescaleSlope NaN). The loader checks the decoded HU themselves as well.
    """
    m = 1.0 if slope is None else slope
    b = 0.0 if intercept is None else intercept
    if not math.isfinite(m) or not math.isfinite(b):
        return f"RescaleSlope {_fmt(m)} / RescaleIntercept {_fmt(b)}: not finite numbers"
    if m == 0.0:
        return "RescaleSlope 0: every pixel would have the same HU"
    bits = max(1, int(bits_stored))
    if bits > 16:  # 32-bit stored values span ±2e9 in theory: the loader checks the real ones
        return None
    lo, hi = ((-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1))
    ends = (m * lo + b, m * hi + b)
    if max(abs(v) for v in ends) > MAX_ABS_HU:
        return (f"RescaleSlope {_fmt(m)} / RescaleIntercept {_fmt(b)} map the stored values to "
                f"{_fmt(min(ends))}…{_fmt(max(ends))} HU (beyond ±{MAX_ABS_HU:g} HU)")
    return None


def hu_problem(hu: np.ndarray) -> str | None:
    """What is wrong with decoded HU values (non-finite, or beyond ±:data:`MAX_ABS_HU`), or None.

    One rule for the loader (each decoded slice) and for the model's input (any volume, also
    one made from arrays): such a slice would vote silently. min/max propagate NaN: two passes.
    """
    lo, hi = float(np.min(hu)), float(np.max(hu))
    if lo >= -MAX_ABS_HU and hi <= MAX_ABS_HU:
        return None
    bad = int(np.count_nonzero(~np.isfinite(hu)))
    return f"{bad} non-finite HU values" if bad else f"HU from {lo:g} to {hi:g} (beyond ±{MAX_ABS_HU:g})"


def volume_bytes_problem(n_slices: int, rows: int, columns: int) -> str | None:
    """Why a float32 volume of this size is not allocated (None: it fits the budget)."""
    need = int(n_slices) * int(rows) * int(columns) * 4
    if need > MAX_VOLUME_BYTES:
        return (f"series too large to load: {n_slices} slices of {rows} × {columns} pixels need "
                f"{need / 1e9:.1f} GB (at most {MAX_VOLUME_BYTES / 1e9:.1f} GB)")
    return None


def frame_problem(position: Sequence[float], orientation: Sequence[float],
                  spacing: Sequence[float] | None, thickness: float | None) -> str | None:
    """Why the geometry of one slice (or frame) is unusable (None: it is fine)."""
    return (position_problem(position) or orientation_problem(orientation)
            or spacing_problem(spacing) or thickness_problem(thickness))


# --------------------------------------------------------------------------------------------
# Reading the checked values from a header being parsed (:func:`app.dicom.tags.read_header`)


def read_decimal(v: dict[str, Any], ds: Any, keyword: str, warnings: list[str]) -> float | None:
    """A DS value of the header, keeping NaN and infinities (None: absent or unreadable).

    The scan's number reader drops non-finite values, which would make "RescaleSlope NaN" read
    as "no RescaleSlope" and the file pass; here they are kept for the checks to name.
    """
    text = _vs(v, ds, keyword, warnings)
    first = text.split("\\")[0].strip()
    if not first:
        return None
    try:
        return float(first)
    except ValueError:
        warnings.append(f"unreadable {keyword}: ValueError")
        return None


def read_image_size(v: dict[str, Any], ds: Any, warnings: list[str]) -> ImageSize | str:
    """:func:`image_size` of a header being parsed (NumberOfFrames 0 reads as absent)."""
    return image_size(_vn(v, ds, "Rows", warnings), _vn(v, ds, "Columns", warnings),
                      _vn(v, ds, "NumberOfFrames", warnings) or None,
                      _vn(v, ds, "BitsAllocated", warnings), _vn(v, ds, "BitsStored", warnings),
                      _vn(v, ds, "SamplesPerPixel", warnings))


def read_rescale_problem(v: dict[str, Any], ds: Any, warnings: list[str],
                         size: ImageSize) -> str | None:
    """:func:`rescale_problem` of a header being parsed (top-level rescale values only; the
    per-frame ones of an enhanced image are checked on the decoded HU by the loader)."""
    slope = read_decimal(v, ds, "RescaleSlope", warnings)
    intercept = read_decimal(v, ds, "RescaleIntercept", warnings)
    if slope is None and intercept is None:
        return None
    stored = _vn(v, ds, "BitsStored", warnings) or size.bits_allocated
    signed = _vn(v, ds, "PixelRepresentation", warnings) == 1
    problem = rescale_problem(slope, intercept, int(stored), signed)
    if problem is None and slope is not None and abs(slope) > COARSE_HU_STEP:
        warnings.append(f"HU stored in steps of {abs(slope):.3g} HU ({int(stored)} bits stored): "
                        "soft-tissue contrast is coarse")
    return problem


def frames_problem(frames: Sequence[Any]) -> str | None:
    """:func:`frame_problem` of every frame (:class:`app.dicom.tags.FrameGeometry`); the frame
    is named in the reason where there are several."""
    for k, f in enumerate(frames):
        problem = frame_problem(f.position, f.orientation, f.pixel_spacing, f.slice_thickness)
        if problem:
            return problem if len(frames) == 1 else f"frame {k + 1}: {problem}"
    return None
