"""Data passed between the DICOM layer and everything above it.

These are the contracts: the scanner produces series records, :func:`app.dicom.volume.load_volume`
produces :class:`Volume`, phase classification produces :class:`PhaseCall`, study assembly
produces :class:`AssembledStudy`, which the predictor, the training cache, the UI and the CLI
consume. Plain dataclasses and numpy arrays only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

Phase = Literal["plain", "arterial", "portal"]
PhaseOrOther = Literal["plain", "arterial", "portal", "other"]


@dataclass
class Volume:
    """One series as a stack of HU slices with its geometry.

    Slices are sorted by position along the slice normal (ascending), never by InstanceNumber;
    each slice was rescaled with its own slope/intercept.

    Attributes
    ----------
    hu:
        float32 array ``(n_slices, rows, cols)`` in Hounsfield units (row-major: ``[z, y, x]``).
    z_positions:
        Position of each slice along the slice normal in mm (``ImagePositionPatient · normal``),
        ascending; for axial LPS data this is the table position, increasing towards the head.
    origin:
        ``ImagePositionPatient`` of the first slice (mm, LPS).
    pixel_spacing:
        ``(row_spacing, column_spacing)`` in mm.
    slice_spacing:
        Median distance between neighbouring slices (mm), derived from positions.
    direction:
        3×3 array whose rows are the row direction, the column direction and the slice normal.
    sop_instance_uids:
        SOP Instance UID of each slice in the order of ``hu``.
    series_uid:
        Series Instance UID (of the split series where one was split).
    slice_thickness:
        Nominal SliceThickness (mm) where given, else ``slice_spacing``.
    """

    hu: np.ndarray
    z_positions: np.ndarray
    origin: tuple[float, float, float]
    pixel_spacing: tuple[float, float]
    slice_spacing: float
    direction: np.ndarray
    sop_instance_uids: list[str]
    series_uid: str
    slice_thickness: float | None = None

    @property
    def n_slices(self) -> int:
        return int(self.hu.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)  # type: ignore[return-value]

    def index_of_z(self, z_mm: float) -> int:
        """Index of the slice nearest to table position ``z_mm``."""
        return int(np.argmin(np.abs(self.z_positions - z_mm)))


Orientation = Literal["axial", "coronal", "sagittal", "oblique"]
SeriesStatus = Literal["ok", "warnings", "refused"]


@dataclass
class InstanceRef:
    """One image (slice) of a series as found by the header-only scan.

    ``z`` is the position along the series' slice normal (``ImagePositionPatient · normal``);
    ``frame`` is the frame index for enhanced multi-frame objects (None for single-frame files).
    """

    path: Path
    sop_instance_uid: str
    position: tuple[float, float, float]
    z: float
    instance_number: int | None = None
    frame: int | None = None


@dataclass
class SeriesInfo:
    """A series (or one part of a split series) as found by the scan: tags, geometry, status.

    Produced by :mod:`app.dicom.scan` from headers only; phase classification reads its tags and
    fills ``phase_call``. ``uid`` is unique within a scan: the Series Instance UID, with a suffix
    (``"<uid>#2"``) for the parts of a series that was split by orientation, acquisition or
    position duplicates; ``series_instance_uid`` keeps the DICOM value.
    Times are seconds since midnight (float) parsed from DICOM TM values; None when absent.
    """

    uid: str
    series_instance_uid: str
    series_number: int | None
    description: str
    modality: str
    orientation: Orientation
    image_type: list[str]
    n_slices: int
    rows: int
    columns: int
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    slice_spacing: float | None
    z_range: tuple[float, float] | None
    frame_of_reference_uid: str
    patient_id: str
    patient_name: str
    study_uid: str
    study_date: str
    study_description: str
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
    transfer_syntax: str = ""
    status: SeriesStatus = "ok"
    warnings: list[str] = field(default_factory=list)
    refused_reason: str | None = None
    instances: list[InstanceRef] = field(default_factory=list)
    phase_call: PhaseCall | None = None
    #: ImageOrientationPatient shared by the series' slices (row then column direction cosines).
    image_orientation: tuple[float, float, float, float, float, float] | None = None
    #: Gantry tilt measured from the slice positions (degrees); 0 for an untilted series.
    tilt_deg: float = 0.0
    #: Table positions (mm) of the gaps found in the positions: (z below, z above) pairs.
    gaps: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class PhaseCall:
    """The contrast phase assigned to one series, with the reasons.

    ``evidence`` is human-readable ("description 'ART 5.0 B30f' → arterial",
    "aorta 265 HU, portal vein 118 HU → arterial"). ``tag_phase`` / ``image_phase`` keep the two
    independent opinions so that a conflict can be shown.
    """

    phase: PhaseOrOther
    confidence: float
    evidence: list[str] = field(default_factory=list)
    tag_phase: PhaseOrOther | None = None
    tag_confidence: float = 0.0
    image_phase: PhaseOrOther | None = None
    image_confidence: float = 0.0
    conflict: bool = False
    measurements: dict[str, float] = field(default_factory=dict)


@dataclass
class SlicePair:
    """Slices of the assigned phases at one table level (one model input triplet).

    ``index[phase]`` is the slice index into that phase's :class:`Volume`; ``z_mm[phase]`` its
    table position; ``z_ref`` the reference level the pair was matched at.
    """

    z_ref: float
    index: dict[str, int]
    z_mm: dict[str, float]


@dataclass
class AssembledStudy:
    """One patient's study ready for the model: one series per phase, checked and paired.

    Attributes
    ----------
    assignment:
        phase → Series Instance UID of the chosen series.
    volumes:
        phase → loaded :class:`Volume` of the chosen series.
    liver_range_mm:
        phase → (z_min, z_max) of the slices covering the liver in that phase.
    pairs:
        The slice triplets used for prediction, ordered by ``z_ref`` ascending.
    unpaired:
        phase → table positions of liver slices left without a partner.
    needs_confirmation:
        True when evidence conflicted or the choice was ambiguous; ``confirmation_reasons`` say
        why. A prediction on such a study requires the user's confirmation (or an override).
    identical_phases:
        The confirmation reasons that an override does not settle: two phases hold the same
        images (one acquisition assigned twice, :func:`app.dicom.assembly.identical_phases`).
        Confirmation is required for these even when the user chose the series by hand.
    overrides:
        phase → series UID for assignments the user set by hand.
    phase_calls:
        series UID → :class:`PhaseCall` for every candidate series of the study.
    alternatives:
        phase → other series UIDs that could serve for that phase.
    view_only_reason:
        Why this study is shown for viewing only (empty when it can be predicted): the
        assembly's error, e.g. "no plain (non-contrast) and arterial series found". A
        view-only study has the volumes that could be loaded and no ``pairs``.
    """

    patient_id: str
    patient_name: str
    study_uid: str
    study_date: str
    study_description: str
    assignment: dict[str, str]
    volumes: dict[str, Volume]
    liver_range_mm: dict[str, tuple[float, float]]
    pairs: list[SlicePair]
    unpaired: dict[str, list[float]] = field(default_factory=dict)
    needs_confirmation: bool = False
    confirmation_reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    overrides: dict[str, str] = field(default_factory=dict)
    phase_calls: dict[str, PhaseCall] = field(default_factory=dict)
    alternatives: dict[str, list[str]] = field(default_factory=dict)
    view_only_reason: str = ""
    identical_phases: list[str] = field(default_factory=list)

    @property
    def predictable(self) -> bool:
        """True when the three phases are assembled and paired (not a view-only study)."""
        return bool(self.pairs) and not self.view_only_reason

    @property
    def phases(self) -> tuple[str, ...]:
        """Assigned phases in canonical order (plain, arterial, portal)."""
        from app import PHASES

        return tuple(p for p in PHASES if p in self.assignment)
