"""Slice geometry from positions: orientation, ordering, spacing, gaps, tilt, duplicates.

Everything here follows STYLE.md 7: slices are ordered by their position along the slice normal
(``ImagePositionPatient · (row × col)``), spacing comes from those positions, and the gantry tilt
is measured from how successive positions drift in-plane, because the GantryDetectorTilt tag is
often 0 or absent on reconstructions that are in fact tilted. Findings carry the measured numbers
so that a warning can be acted on ("gap of 10.0 mm between z = -45.0 and -35.0 mm").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from app.dicom.types import Orientation

#: Two orientations are the same when both direction cosines agree within this dot product.
SAME_DIRECTION_DOT = 0.9995
#: A step larger than this multiple of the median spacing is a gap (a missing slice).
GAP_FACTOR = 1.5
#: Steps differing from the median by more than this fraction make the spacing uneven.
UNEVEN_TOLERANCE = 0.1
#: Tilt below this angle (degrees) is numerical noise.
TILT_TOLERANCE_DEG = 0.5
#: Positions closer than this along the normal (mm) are the same position.
DUPLICATE_TOLERANCE_MM = 0.01


def normal_of(orientation: Sequence[float]) -> np.ndarray:
    """Unit slice normal (row direction × column direction) of an ImageOrientationPatient."""
    row = np.asarray(orientation[:3], dtype=float)
    col = np.asarray(orientation[3:6], dtype=float)
    n = np.cross(row, col)
    norm = float(np.linalg.norm(n))
    return n / norm if norm > 0 else n


def direction_matrix(orientation: Sequence[float]) -> np.ndarray:
    """3×3 matrix with rows: row direction, column direction, slice normal."""
    row = np.asarray(orientation[:3], dtype=float)
    col = np.asarray(orientation[3:6], dtype=float)
    return np.stack([row, col, normal_of(orientation)])


def same_orientation(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when two ImageOrientationPatient values describe the same plane and in-plane axes."""
    ra, ca = np.asarray(a[:3], float), np.asarray(a[3:6], float)
    rb, cb = np.asarray(b[:3], float), np.asarray(b[3:6], float)
    return bool(np.dot(ra, rb) > SAME_DIRECTION_DOT and np.dot(ca, cb) > SAME_DIRECTION_DOT)


def classify_orientation(orientation: Sequence[float]) -> Orientation:
    """Axial, coronal or sagittal by the dominant axis of the slice normal; else oblique.

    The threshold (|component| ≥ 0.8, i.e. within ~37°) keeps gantry-tilted axial
    reconstructions axial while a double-oblique reformat is called oblique.
    """
    n = np.abs(normal_of(orientation))
    axis = int(np.argmax(n))
    if n[axis] < 0.8:
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]  # type: ignore[return-value]


@dataclass
class GeometryReport:
    """What the positions of one series part say.

    ``order`` sorts the input slices by ``z``; ``duplicates`` lists groups of input indices that
    share a position; ``warnings`` are human-readable with measured numbers; ``refused`` is set
    when no sound volume can be built from these positions.
    """

    z: np.ndarray
    order: np.ndarray
    spacing: float | None
    z_range: tuple[float, float] | None
    tilt_deg: float
    duplicates: list[list[int]] = field(default_factory=list)
    gaps: list[tuple[float, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    refused: str | None = None


def _fmt(v: float) -> str:
    return f"{v:.1f}" if abs(v - round(v, 1)) < 0.05 else f"{v:.2f}"


def analyse_positions(
    positions: Sequence[Sequence[float]],
    orientation: Sequence[float],
    tilt_tag: float | None = None,
    min_slices: int = 3,
) -> GeometryReport:
    """Check the slice positions of one orientation group.

    Parameters
    ----------
    positions:
        ImagePositionPatient of each slice (any order).
    orientation:
        The group's common ImageOrientationPatient.
    tilt_tag:
        GantryDetectorTilt where given; only used to word the tilt warning.
    min_slices:
        Fewer distinct positions than this is not a volume (refused).

    Returns
    -------
    GeometryReport
        Order, spacing, z range, measured tilt, duplicates, gaps and warnings.
    """
    pos = np.asarray(positions, dtype=float).reshape(-1, 3)
    normal = normal_of(orientation)
    z = pos @ normal
    # Ties in z are broken by the full position so that the order never depends on file order.
    order = np.lexsort((pos[:, 2], pos[:, 1], pos[:, 0], np.round(z, 3)))
    zs = z[order]
    report = GeometryReport(
        z=z, order=order, spacing=None,
        z_range=(float(zs[0]), float(zs[-1])) if len(zs) else None, tilt_deg=0.0,
    )
    # Duplicate positions: consecutive sorted slices at the same z.
    groups: list[list[int]] = []
    i = 0
    while i < len(zs):
        j = i + 1
        while j < len(zs) and abs(zs[j] - zs[i]) <= DUPLICATE_TOLERANCE_MM:
            j += 1
        if j - i > 1:
            groups.append([int(k) for k in order[i:j]])
        i = j
    report.duplicates = groups
    distinct = np.unique(np.round(zs, 2))
    if len(distinct) < min_slices:
        if len(zs) > 1 and len(distinct) == 1:
            report.refused = f"not a volume: all {len(zs)} slices at the same position " \
                f"z = {_fmt(float(zs[0]))} mm"
        else:
            report.refused = (
                f"not a volume: {len(distinct)} distinct slice position"
                f"{'s' if len(distinct) != 1 else ''} (at least {min_slices} needed)"
            )
        return report
    if groups:
        # The caller splits true duplicates into acquisitions first; what is left is refused.
        example = z[groups[0][0]]
        report.refused = (
            f"duplicate positions: {sum(len(g) for g in groups)} slices share "
            f"{len(groups)} position{'s' if len(groups) > 1 else ''} "
            f"(first at z = {_fmt(float(example))} mm); cannot build one volume"
        )
        return report
    steps = np.diff(zs)
    median = float(np.median(steps))
    report.spacing = median
    for k, step in enumerate(steps):
        if step > GAP_FACTOR * median:
            report.gaps.append((float(zs[k]), float(zs[k + 1])))
    shown = report.gaps[:3]
    for a, b in shown:
        report.warnings.append(
            f"gap of {_fmt(b - a)} mm between z = {_fmt(a)} and {_fmt(b)} mm "
            f"(expected {_fmt(median)} mm; missing slice?)"
        )
    if len(report.gaps) > len(shown):
        report.warnings.append(
            f"and {len(report.gaps) - len(shown)} more gaps up to z = {_fmt(report.gaps[-1][1])} mm"
        )
    regular = [s for s in steps if s <= GAP_FACTOR * median]
    if regular and (max(regular) - min(regular)) > UNEVEN_TOLERANCE * median:
        report.warnings.append(
            f"uneven slice spacing: steps from {_fmt(min(regular))} to {_fmt(max(regular))} mm "
            f"(median {_fmt(median)} mm)"
        )
    # Tilt: in-plane drift of the positions along the row/column directions per mm along z.
    d = direction_matrix(orientation)
    first, last = pos[order[0]], pos[order[-1]]
    dz = float((last - first) @ normal)
    if dz > 0:
        drift = float(np.hypot((last - first) @ d[0], (last - first) @ d[1]))
        report.tilt_deg = math.degrees(math.atan2(drift, dz))
    # The plane itself may be tilted against the patient axis (IOP not exactly axial).
    plane_tilt = math.degrees(math.acos(min(1.0, float(np.max(np.abs(normal))))))
    if report.tilt_deg > TILT_TOLERANCE_DEG:
        tag = "" if tilt_tag is None else f"; GantryDetectorTilt says {_fmt(tilt_tag)}°"
        report.warnings.append(
            f"gantry tilt of {_fmt(report.tilt_deg)}° measured from slice positions{tag}"
        )
    elif plane_tilt > TILT_TOLERANCE_DEG and classify_orientation(orientation) != "oblique":
        report.tilt_deg = plane_tilt
        report.warnings.append(f"slice plane tilted by {_fmt(plane_tilt)}° against the body axis")
    return report
