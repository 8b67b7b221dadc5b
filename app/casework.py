"""The adapter between a prediction and the case register (Qt-free).

``app.register`` must not import torch or ``app.inference`` (it stays light and is used by the
CLI's ``register`` command), and ``app.inference`` knows nothing about the register. The one
place that knows both — turning an :class:`~app.dicom.types.AssembledStudy` plus a
:class:`~app.inference.predictor.PredictionResult` into a
:class:`~app.register.records.PredictionRecord` — is this module, used by the desktop app,
``hcc-response predict --register`` and ``hcc-response self-test`` alike, so all three record
exactly the same fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from app.register.records import PredictionRecord, study_fields

if TYPE_CHECKING:  # pragma: no cover - typing only; importing inference pulls in torch
    from app.dicom.types import AssembledStudy
    from app.inference.predictor import PredictionResult


def prediction_record(
    study: AssembledStudy,
    result: PredictionResult,
    *,
    overrides: Mapping[str, str] | None = None,
    warnings_shown: Sequence[str] = (),
    source_folder: str = "",
) -> PredictionRecord:
    """Everything the register keeps about one prediction.

    Parameters
    ----------
    study
        The assembled study the prediction ran on (series per phase, liver range, pairs).
    result
        The predictor's result (label, votes, per-slice probabilities, model identity, device).
    overrides
        Phase overrides the user made (phase → series UID); the study's own record of
        overrides is used when not given.
    warnings_shown
        Warnings the user saw with the result (the UI's banner, the CLI's stderr); the
        predictor's own warnings are always added, without duplicates.
    source_folder
        The folder the study was imported from, so that the case can be reopened.
    """
    fields: dict[str, Any] = study_fields(study)
    if overrides is not None:
        fields["overrides"] = dict(overrides)
    warnings: list[str] = []
    for text in [*fields.pop("warnings"), *warnings_shown, *result.warnings]:
        if text and text not in warnings:
            warnings.append(text)
    return PredictionRecord(
        **fields,
        model_name=result.model_name,
        model_version=result.model_version,
        model_sha256=result.model_sha256,
        weights_kind=result.weights_kind,
        device=result.device,
        label=result.label,
        score=float(result.mean_probability),
        responder_votes=int(result.responder_votes),
        total_votes=int(result.total_votes),
        tie=bool(result.tie),
        tie_rule=result.tie_rule if result.tie else "",
        slice_results=[
            {
                "z_ref": float(s.z_ref),
                "probability": float(s.probability),
                "label": 1 if s.label == "responder" else 0,
            }
            for s in result.slices
        ],
        warnings=warnings,
        run_time_s=float(result.timings.get("total", 0.0)) or None,
        source_folder=source_folder,
    )
