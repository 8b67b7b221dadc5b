"""Which case the main window has open (Qt-free data; the window owns one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.case.flow import CaseOutcome
from app.dicom.types import AssembledStudy

if TYPE_CHECKING:  # pragma: no cover - typing only; inference imports torch, scan pydicom
    from app.dicom.scan import ScanResult
    from app.inference.gradcam import CamResult
    from app.inference.result import PredictionResult


@dataclass
class CaseState:
    """The imported folder, its scan, the assembled studies, the prediction and its Grad-CAM.

    ``assembled``/``errors``/``overrides`` are keyed by study key (Study Instance UID);
    ``recorded`` is a prediction re-opened from the register without its images.
    """

    folder: Path | None = None
    scan: ScanResult | None = None
    key: str | None = None
    assembled: dict[str, AssembledStudy] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    confirmed: set[str] = field(default_factory=set)
    prediction: CaseOutcome | None = None
    cam: CamResult | None = None
    recorded: PredictionResult | None = None

    @property
    def study(self) -> AssembledStudy | None:
        return self.assembled.get(self.key) if self.key else None

    def needs_confirmation(self) -> bool:
        study = self.study
        return bool(study and study.needs_confirmation and self.key not in self.confirmed)
