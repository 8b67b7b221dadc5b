"""Options of the synthetic study generator, validated once into a frozen dataclass.

Every option of ``hcc-response demo-data`` maps onto one field here, so that the CLI, the
first-start demo (:mod:`app.synthetic.demo`) and the tests build studies the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.synthetic.errors import SyntheticInputError

Convention = Literal["random", "siemens", "ge", "philips", "canon", "united", "chinese"]
TransferSyntaxChoice = Literal["explicit", "rle", "jpeg2000"]

#: Vendor/wording conventions that can be asked for; "random" draws one per patient.
CONVENTIONS: tuple[str, ...] = ("random", "siemens", "ge", "philips", "canon", "united", "chinese")
#: Transfer syntaxes the writer can produce (explicit VR little endian is the uncompressed one).
TRANSFER_SYNTAXES: tuple[str, ...] = ("explicit", "rle", "jpeg2000")

#: Matrix sizes outside this range are refused: below 32 px no organ is recognisable, above
#: 1024 px the files are larger than any clinical CT reconstruction.
MATRIX_RANGE: tuple[int, int] = (32, 1024)
#: Slice spacing range in mm (1 mm thin up to 10 mm thick reconstructions).
SLICE_MM_RANGE: tuple[float, float] = (0.5, 10.0)


@dataclass(frozen=True)
class StudyOptions:
    """How each synthetic study is rendered and written.

    Attributes
    ----------
    matrix:
        Rows = columns of the axial images (512 in the clinic; 64–128 for tests).
    slice_mm:
        Slice thickness and spacing of the main axial series (the paper's 5 mm).
    z_coverage_mm:
        Cranio-caudal coverage of the axial series; ``n_slices = round(coverage / slice_mm)``.
        250 mm covers lung bases to kidneys (50 slices at 5 mm).
    convention:
        Vendor and wording of descriptions/tags, or ``"random"`` (drawn per patient).
    blank_descriptions:
        Write empty SeriesDescription/ProtocolName (phase must then come from the images).
    blank_contrast_tags:
        Leave out ContrastBolusAgent/Route/Volume/StartTime.
    thin_recon:
        Add a thin (1 mm, or 1.25 mm for GE) reconstruction of each phase.
    coronal:
        Add a coronal reformat of the portal phase (``DERIVED\\SECONDARY\\REFORMATTED``).
    localizer:
        Add a scout image (``ImageType ORIGINAL\\PRIMARY\\LOCALIZER``).
    dose_report:
        Add a dose report as a Secondary Capture image (not a CT image).
    delayed_phase:
        Add a fourth, delayed/equilibrium series (~180 s after the bolus); its phase truth is
        ``"other"``.
    transfer_syntax:
        ``"explicit"`` (uncompressed), ``"rle"`` or ``"jpeg2000"`` (both lossless).
    shuffle_names:
        Random (seeded) extension-less file names instead of ``IM00001.dcm``.
    flat:
        All files of a patient in one folder instead of one folder per series.
    noise:
        Add scanner noise and blur (off only for tests that measure exact HU).
    label_maps:
        Also write the renderer's ground truth per axial series, ``labels/<SeriesUID>.npz``
        beside ``truth.json`` (:mod:`app.synthetic.labelmaps`). Off by default, so that a demo
        study is pure DICOM.
    """

    matrix: int = 512
    slice_mm: float = 5.0
    z_coverage_mm: float = 250.0
    convention: Convention = "random"
    blank_descriptions: bool = False
    blank_contrast_tags: bool = False
    thin_recon: bool = False
    coronal: bool = False
    localizer: bool = False
    dose_report: bool = False
    delayed_phase: bool = False
    transfer_syntax: TransferSyntaxChoice = "explicit"
    shuffle_names: bool = False
    flat: bool = False
    noise: bool = True
    label_maps: bool = False

    def __post_init__(self) -> None:
        lo, hi = MATRIX_RANGE
        if not lo <= int(self.matrix) <= hi:
            raise SyntheticInputError(f"matrix {self.matrix} px is outside {lo}..{hi}")
        slo, shi = SLICE_MM_RANGE
        if not slo <= float(self.slice_mm) <= shi:
            raise SyntheticInputError(f"slice thickness {self.slice_mm} mm is outside {slo}..{shi}")
        if not 40.0 <= float(self.z_coverage_mm) <= 600.0:
            raise SyntheticInputError(f"z coverage {self.z_coverage_mm} mm is outside 40..600")
        if self.convention not in CONVENTIONS:
            raise SyntheticInputError(
                f"unknown convention {self.convention!r} (choose from {', '.join(CONVENTIONS)})"
            )
        if self.transfer_syntax not in TRANSFER_SYNTAXES:
            raise SyntheticInputError(
                f"unknown transfer syntax {self.transfer_syntax!r} "
                f"(choose from {', '.join(TRANSFER_SYNTAXES)})"
            )

    @property
    def n_slices(self) -> int:
        """Number of slices of each main axial series."""
        return max(2, int(round(self.z_coverage_mm / self.slice_mm)))
