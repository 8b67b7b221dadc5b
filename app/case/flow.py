"""Predict, explain and record one assembled study — the steps every door runs the same way.

``hcc-response predict`` runs them one after the other in the foreground; the desktop app runs
:func:`predict_and_record` in a worker and the Grad-CAM job afterwards; ``self-test`` runs each
as one checked step. The model comes from a :class:`~app.case.model.ModelHolder` whose lock is
held while the network runs.

Recording follows RELIABILITY.md 24 and 28: a failed register write never loses the
prediction (the outcome keeps the record, to be saved again), and cancellation is checked up to
the write and never after it, so a cancelled prediction leaves no record and a recorded one is
always shown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.case.imports import importing
from app.case.model import ModelChoice, ModelHolder
from app.errors import Cancelled, HCCError, InputError
from app.progress import NULL_PROGRESS, Progress, sub_progress

if TYPE_CHECKING:  # pragma: no cover - typing only; the inference layer imports torch
    from app.dicom.scan import ScanResult
    from app.dicom.types import AssembledStudy
    from app.inference.gradcam import CamResult
    from app.inference.result import PredictionResult
    from app.inference.weights import LoadedModel
    from app.register import Register
    from app.register.records import PredictionRecord

log = logging.getLogger(__name__)


@dataclass
class CaseOutcome:
    """A prediction and what became of its register record.

    ``record`` is built even without a register, so that it can be saved later;
    ``record_error`` says why it was not written (no register, read-only, full disk, locked).
    """

    study: AssembledStudy
    result: PredictionResult
    model: LoadedModel
    record: PredictionRecord | None = None
    record_id: int | None = None
    record_error: str | None = None
    elapsed_s: float = 0.0

    @property
    def warnings(self) -> list[str]:
        """Everything said with the result: the study's and the images' warnings (a gap, lossy
        compression...) and the model's own, as recorded; the PDF report and the DICOM SR
        carry this list, not only the model's."""
        return list(self.record.warnings) if self.record is not None else list(self.result.warnings)


def shown_warnings(scan: ScanResult | None, study: AssembledStudy) -> list[str]:
    """What the user is told before the result: the assembly's warnings, the chosen series'
    own warnings (gaps, tilt, file warnings) and the files the scan rejected, with reasons.

    A slice rejected for a hostile header (RescaleSlope NaN, issue 14) leaves a gap in its
    series; the prediction may go on without it, but never without saying so. The command line
    and the desktop app show (and record) the same list; without a scan (a study assembled
    elsewhere) only the assembly's warnings are known.
    """
    out = list(study.warnings)
    if scan is None:
        return out
    for phase, uid in study.assignment.items():
        series = scan.find_series(uid)
        if series is not None:
            number = "?" if series.series_number is None else series.series_number
            out += [f"{phase} series #{number}: {w}" for w in series.warnings]
    rejected = [f for f in scan.files if f.status == "rejected"]
    if rejected:
        listed = "; ".join(f"{f.path.name}: {f.reason}" for f in rejected[:3])
        more = f"; and {len(rejected) - 3} more" if len(rejected) > 3 else ""
        out.append(f"{len(rejected)} file{'s' if len(rejected) > 1 else ''} in the folder "
                   f"rejected: {listed}{more}")
    return list(dict.fromkeys(out))


def predict_study(study: AssembledStudy, holder: ModelHolder, choice: ModelChoice,
                  progress: Progress = NULL_PROGRESS) -> tuple[LoadedModel, PredictionResult]:
    """Load (or reuse) the chosen model (15 % of the progress), then predict (the rest)."""
    with importing(progress):
        from app.inference.predictor import predict

    model = holder.get(choice, sub_progress(progress, 0.0, 0.15))
    progress.check()
    with holder.lock:
        result = predict(study, model, sub_progress(progress, 0.15, 1.0))
    return model, result


def make_record(study: AssembledStudy, result: PredictionResult, *,
                overrides: Mapping[str, str] | None = None, warnings_shown: Sequence[str] = (),
                source_folder: str = "") -> PredictionRecord:
    """The register record of a prediction (:func:`app.casework.prediction_record`)."""
    with importing():
        from app.casework import prediction_record

    return prediction_record(study, result, overrides=overrides,
                             warnings_shown=list(warnings_shown), source_folder=source_folder)


def predict_and_record(study: AssembledStudy, holder: ModelHolder, choice: ModelChoice,
                       register: Register | None, progress: Progress = NULL_PROGRESS, *,
                       source_folder: str, warnings_shown: Sequence[str] = (),
                       display_pending: bool = False) -> CaseOutcome:
    """Predict (95 % of the progress), then record in ``register``; a failed write is kept
    in the outcome (``record_error``), never raised.

    ``display_pending``: the caller shows the result after this returns and then marks it shown
    (:mod:`app.register.display`); a kill in between leaves the case listed as never shown.
    """
    t0 = time.monotonic()
    model, result = predict_study(study, holder, choice, sub_progress(progress, 0.0, 0.95))
    progress.check()
    outcome = CaseOutcome(study=study, result=result, model=model)
    try:
        outcome.record = make_record(study, result, overrides=study.overrides,
                                     warnings_shown=warnings_shown, source_folder=source_folder)
        progress.check()  # last point where cancelling leaves nothing behind
        if register is None:
            outcome.record_error = "no register is open"
        else:
            progress.update(0.97, "recording in the register")
            outcome.record_id = register.add_prediction(outcome.record,
                                                        display_pending=display_pending)
    except Cancelled:
        raise
    except HCCError as exc:
        log.warning("register write failed: %s", exc.message)
        outcome.record_error = exc.message
    outcome.elapsed_s = time.monotonic() - t0
    progress.update(1.0, "prediction done")
    return outcome


def explain_study(study: AssembledStudy, holder: ModelHolder, model: LoadedModel,
                  progress: Progress = NULL_PROGRESS) -> CamResult:
    """Grad-CAM of every slice triplet, normalised once over the study."""
    with importing(progress):
        from app.inference.gradcam import gradcam_study

    with holder.lock:
        return gradcam_study(model, study, progress)


def export_explanations(study: AssembledStudy, cams: CamResult, folder: Path) -> list[Path]:
    """Write the Grad-CAM overlays as PNG files; an unwritable folder is the user's input error."""
    from app.inference.gradcam import export_overlays

    try:
        return [Path(p) for p in export_overlays(study, cams, folder)]
    except OSError as exc:
        raise InputError(f"cannot write the Grad-CAM images to {folder}: {exc}") from exc
