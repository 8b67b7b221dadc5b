"""Load a scanned series as a float32 HU volume with its geometry.

The slice order, positions and SOP Instance UIDs come from the scan (:class:`SeriesInfo`), which
sorted the slices along the slice normal; this module only decodes pixels. Each slice gets its own
rescale (slope/intercept, or the modality LUT where one is given; for enhanced multi-frame images
the per-frame Pixel Value Transformation), because scanners do vary the intercept from slice to
slice and a stack rescaled with the first slice's values is wrong (STYLE.md "things to avoid").

Decoding is the cost floor (``dcmread`` + pixel decode); the loader writes each decoded slice
straight into one preallocated float32 array, and decodes files on a small thread pool because
the compressed-syntax decoders (OpenJPEG, libjpeg) release the GIL.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from app.dicom.errors import VolumeLoadError
from app.dicom.geometry import direction_matrix
from app.dicom.limits import hu_problem, volume_bytes_problem
from app.dicom.types import InstanceRef, SeriesInfo, Volume
from app.errors import is_crash, one_line
from app.progress import NULL_PROGRESS, Progress


def _rescale_of(ds: Any, frame: int | None) -> tuple[float, float]:
    """Slope and intercept of one slice (top level, or functional groups for enhanced)."""
    slope = ds.get("RescaleSlope")
    intercept = ds.get("RescaleIntercept")
    if slope is None and frame is not None:
        for owner_kw in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
            owner = ds.get(owner_kw)
            if not owner:
                continue
            item = owner[frame] if owner_kw.startswith("PerFrame") else owner[0]
            pvt = item.get("PixelValueTransformationSequence")
            if pvt:
                slope = pvt[0].get("RescaleSlope")
                intercept = pvt[0].get("RescaleIntercept")
                break
    return (float(slope) if slope not in (None, "") else 1.0,
            float(intercept) if intercept not in (None, "") else 0.0)


def _decode_file(
    path: Path, targets: list[tuple[int, InstanceRef]], out: np.ndarray
) -> None:
    """Decode the slices of one file into their rows of ``out`` (HU, float32)."""
    try:
        ds = pydicom.dcmread(path)
        declared = (int(ds.get("Rows") or 0), int(ds.get("Columns") or 0))
        if declared != out.shape[1:]:  # changed since the scan: never decode an unchecked size
            raise VolumeLoadError(
                f"slice {path.name} now declares {declared[0]}×{declared[1]} pixels, the "
                f"scanned series {out.shape[1]}×{out.shape[2]}: rescan the folder")
        multi = any(ref.frame is not None for _, ref in targets)
        n_frames = int(ds.get("NumberOfFrames") or 1)
        # A few frames of a large multi-frame object (sampled for classification) are decoded
        # one by one; otherwise the whole object once.
        by_frame = multi and len(targets) * 4 < n_frames
        frames: np.ndarray | None = None if by_frame else ds.pixel_array
        for row, ref in targets:
            if frames is None:
                from pydicom.pixels import pixel_array

                arr = pixel_array(ds, index=ref.frame)
            else:
                arr = frames[ref.frame] if multi and ref.frame is not None else frames
            if arr.shape != out.shape[1:]:
                raise VolumeLoadError(
                    f"slice {path.name} has {arr.shape[0]}×{arr.shape[1]} pixels, the series "
                    f"{out.shape[1]}×{out.shape[2]}"
                )
            if "ModalityLUTSequence" in ds:
                from pydicom.pixels import apply_modality_lut

                out[row] = apply_modality_lut(arr, ds)
            else:
                slope, intercept = _rescale_of(ds, ref.frame)
                # One pass: cast into the preallocated row, then scale in place (no temporaries).
                np.copyto(out[row], arr, casting="unsafe")
                with np.errstate(over="ignore", invalid="ignore"):  # _check_hu names it
                    if slope != 1.0:
                        out[row] *= np.float32(slope)
                    if intercept != 0.0:
                        out[row] += np.float32(intercept)
            _check_hu(out[row], path, ref.frame)
    except VolumeLoadError:
        raise
    except FileNotFoundError as exc:
        raise VolumeLoadError(f"slice file vanished since the scan: {path}") from exc
    except MemoryError as exc:
        raise VolumeLoadError(f"cannot decode {path}: not enough memory for its pixel data "
                              f"(declared {out.shape[1]}×{out.shape[2]} pixels)") from exc
    except BaseException as exc:  # any decoder failure (a Rust panic too) is this file's refusal
        if not is_crash(exc):
            raise
        raise VolumeLoadError(
            f"cannot decode {path}: {type(exc).__name__}: {one_line(str(exc))}"
        ) from exc


def _check_hu(row: np.ndarray, path: Path, frame: int | None) -> None:
    """Refuse a decoded slice whose HU are not finite or beyond ±MAX_ABS_HU.

    The scan checks the top-level rescale values; this catches what it cannot see (per-frame
    rescale of enhanced images, modality LUTs, float32 overflow), so that a NaN or infinite
    slice never reaches the model (it would vote silently). min/max propagate NaN: two passes.
    """
    what = hu_problem(row)
    if what:
        where = path.name if frame is None else f"{path.name} frame {frame + 1}"
        raise VolumeLoadError(f"slice {where} has {what} after rescaling: its rescale values "
                              "(RescaleSlope/RescaleIntercept) are not usable")


def load_volume(
    series: SeriesInfo,
    progress: Progress | None = None,
    indices: Sequence[int] | None = None,
    workers: int | None = None,
    reuse: Volume | None = None,
) -> Volume:
    """Decode a scanned series into a HU volume with its geometry.

    Parameters
    ----------
    series:
        A series from :func:`app.dicom.scan.scan_folder` (its instances are already sorted by
        position along the slice normal).
    progress:
        Progress/cancel object; checked between files.
    indices:
        Load only these slice indices (into ``series.instances``), e.g. a few sampled slices for
        phase classification; the volume then holds just those slices, in ascending order.
    workers:
        Decoding threads (default: up to 4, fewer on small machines).
    reuse:
        A volume already holding some of these slices (e.g. the few sampled for phase
        classification): its slices are copied by SOP Instance UID instead of decoded again.

    Returns
    -------
    Volume
        float32 HU ``(n, rows, cols)`` with z positions, origin, spacing, direction and UIDs.

    Raises
    ------
    VolumeLoadError
        A file vanished, cannot be decoded, or does not match the series' matrix; the message
        names the file.
    """
    progress = progress or NULL_PROGRESS
    if not series.instances:
        raise VolumeLoadError(f"series {series.series_number} ({series.uid}) has no slices")
    chosen = sorted(set(indices)) if indices is not None else range(len(series.instances))
    refs = []
    for i in chosen:
        if not 0 <= i < len(series.instances):
            raise VolumeLoadError(
                f"slice index {i} outside series {series.series_number} "
                f"({len(series.instances)} slices)"
            )
        refs.append(series.instances[i])
    if not refs:
        raise VolumeLoadError("no slices requested")
    too_big = volume_bytes_problem(len(refs), series.rows, series.columns)
    if too_big:
        raise VolumeLoadError(f"series {series.series_number}: {too_big}")
    try:
        out = np.empty((len(refs), series.rows, series.columns), dtype=np.float32)
    except MemoryError as exc:
        raise VolumeLoadError(f"series {series.series_number}: not enough memory for "
                              f"{len(refs)} slices of {series.rows}×{series.columns}") from exc
    known: dict[str, int] = {}
    if reuse is not None and reuse.hu.shape[1:] == out.shape[1:]:
        known = {u: i for i, u in enumerate(reuse.sop_instance_uids)}
    by_file: dict[Path, list[tuple[int, InstanceRef]]] = {}
    for row, ref in enumerate(refs):
        k = known.get(ref.sop_instance_uid) if ref.frame is None else None
        if k is not None and reuse is not None:
            out[row] = reuse.hu[k]
            continue
        by_file.setdefault(ref.path, []).append((row, ref))
    jobs = list(by_file.items())
    # Threads pay off once there are enough files to amortise starting them (the compressed
    # decoders release the GIL); a handful of sampled slices decode faster in this thread.
    n_workers = workers if workers is not None else (
        min(4, os.cpu_count() or 1, len(jobs)) if len(jobs) >= 12 else 1)
    progress.update(0.0, f"loading series {series.series_number}")
    if n_workers <= 1:
        for k, (path, targets) in enumerate(jobs):
            progress.check()
            _decode_file(path, targets, out)
            progress.update((k + 1) / len(jobs), f"loading series {series.series_number}")
    else:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            futures = [pool.submit(_decode_file, p, t, out) for p, t in jobs]
            try:
                for k, fut in enumerate(futures):
                    fut.result()
                    progress.update((k + 1) / len(jobs), f"loading series {series.series_number}")
                    progress.check()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    z = np.array([r.z for r in refs], dtype=np.float64)
    if series.slice_spacing is not None:
        spacing = float(series.slice_spacing)
    elif len(z) > 1:
        spacing = float(np.median(np.diff(z)))
    else:
        spacing = float(series.slice_thickness or 1.0)
    orientation = series.image_orientation or (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    return Volume(
        hu=out,
        z_positions=z,
        origin=tuple(float(v) for v in refs[0].position),  # type: ignore[arg-type]
        pixel_spacing=series.pixel_spacing or (1.0, 1.0),
        slice_spacing=spacing,
        direction=direction_matrix(orientation),
        sop_instance_uids=[r.sop_instance_uid for r in refs],
        series_uid=series.uid,
        slice_thickness=series.slice_thickness if series.slice_thickness else spacing,
    )
