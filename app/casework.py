"""The adapter between a prediction and the case register (Qt-free, torch-free).

``app.register`` must not import torch or ``app.inference`` (it stays light and is used by the
CLI's ``register`` command), and ``app.inference`` knows nothing about the register. The one
place that knows both is this module, both ways:

* :func:`prediction_record` turns an :class:`~app.dicom.types.AssembledStudy` plus a
  :class:`~app.inference.result.PredictionResult` into a
  :class:`~app.register.records.PredictionRecord` — used by the desktop app,
  ``hcc-response predict --register`` and ``hcc-response self-test`` alike (through
  :mod:`app.case.flow`), so all three record exactly the same fields;
* :func:`result_from_record` turns a record read back from the register into a
  ``PredictionResult``, so that the desktop app shows a re-opened case with the same widgets
  (and the same types) as a fresh prediction.

:mod:`app.inference.result` imports no torch, so neither does this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from app.inference.result import NON_RESPONDER, RESPONDER, PredictionResult, SliceResult
from app.register.records import PredictionRecord, study_fields

if TYPE_CHECKING:  # pragma: no cover - typing only
    from app.dicom.types import AssembledStudy


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
        decided_by=result.decided_by,
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


def result_from_record(record: PredictionRecord, case_id: int) -> PredictionResult:
    """The prediction a register record keeps, as a :class:`PredictionResult`.

    What the register does not keep (the slice indices per phase, precision, batch size,
    timings) is left empty; a warning saying that the case was re-opened without its images
    comes first.
    """
    slices = [
        SliceResult(pair_index=i, z_ref=float(s.get("z_ref", 0.0)), z_by_phase={},
                    index_by_phase={}, probability=float(s.get("probability", 0.0)),
                    label=RESPONDER if s.get("label") in (1, True, RESPONDER) else NON_RESPONDER)
        for i, s in enumerate(record.slice_results)
    ]
    warnings = [f"Re-opened from the register (case {case_id}); images not loaded.",
                *record.warnings]
    return PredictionResult(
        label=record.label, responder_votes=record.responder_votes,
        total_votes=record.total_votes,
        vote_fraction=record.responder_votes / record.total_votes if record.total_votes else 0.0,
        mean_probability=float(record.score), tie=record.tie, tie_rule=record.tie_rule,
        slices=slices, phases=tuple(record.series_uids), series_uids=dict(record.series_uids),
        model_name=record.model_name, model_version=record.model_version,
        model_sha256=record.model_sha256, weights_kind=record.weights_kind,
        device=record.device, device_reason="", device_fallback=False, precision="",
        batch_size=0, warnings=warnings, software_version=record.app_version,
        decided_by=record.decided_by)
