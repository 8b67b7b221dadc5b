"""The register's rows: exactly as stored (for content hashes, at insert time and in ``verify``)
and as the records and events the register reports.

Content hashes are taken over the stored text of a row (JSON columns as their stored text), so
the write that records a row and the check that verifies it later see the same bytes and no JSON
decoding is needed to check a row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from app import __version__
from app.register.errors import RegisterInputError
from app.register.models import AuditEventRow, Patient, Prediction, PredictionSlices, Study
from app.register.records import (
    AuditEvent,
    PredictionRecord,
    finite,
    normalise_label,
    parse_timestamp,
    plain_json,
    timestamp_text,
)


def orm_session(conn: Connection) -> Session:
    """An ORM session on ``conn`` that joins (never commits) the connection's transaction.

    A fresh session per use: its identity map cannot serve stale objects, so every hash is
    computed from what is in the database right now.
    """
    return Session(bind=conn, join_transaction_mode="rollback_only", autoflush=False)


def raw_rows(conn: Connection, table: str, row_id: int | None = None
              ) -> Iterator[dict[str, Any]]:
    """Rows of ``table`` exactly as stored (JSON columns as their stored text), by id.

    Content hashes are taken over these, at insert time (reading the new row back) and in
    ``verify``, so both see the same bytes and no JSON decoding is needed to check a row.
    """
    if table not in ("patients", "studies", "predictions", "outcomes"):
        raise ValueError(table)  # pragma: no cover - internal use only
    sql = f"SELECT * FROM {table}" + (" WHERE id = ?" if row_id is not None else "")
    result = conn.exec_driver_sql(sql + " ORDER BY id",
                                  (row_id,) if row_id is not None else ())
    keys = list(result.keys())
    for row in result:
        yield dict(zip(keys, row, strict=True))


def raw_predictions(conn: Connection, row_id: int | None = None
                     ) -> Iterator[dict[str, Any]]:
    """Prediction rows as stored, each with its per-slice detail merged in (None if missing)."""
    sql = ("SELECT p.*, s.slice_pairs AS slice_pairs, s.slice_results AS slice_results "
           "FROM predictions p LEFT JOIN prediction_slices s ON s.prediction_ref = p.id"
           + (" WHERE p.id = ?" if row_id is not None else "") + " ORDER BY p.id")
    result = conn.exec_driver_sql(sql, (row_id,) if row_id is not None else ())
    keys = list(result.keys())
    for row in result:
        yield dict(zip(keys, row, strict=True))


#: Columns added to ``predictions`` after the first registers were written, with the value
#: that rows written before them hold. A record hash covers such a column only where it holds
#: something else: records hashed before the column existed still verify, and a value set at
#: insert — or set or cleared afterwards by hand — is covered like any other.
LATER_COLUMNS: dict[str, Any] = {"decided_by": ""}


def _without_unset_later_columns(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` less the :data:`LATER_COLUMNS` that hold the value of the rows written before."""
    return {k: v for k, v in row.items() if not (k in LATER_COLUMNS and v == LATER_COLUMNS[k])}


def content_of(p: dict[str, Any], study: dict[str, Any], patient: dict[str, Any]
                ) -> dict[str, Any]:
    """What a prediction's record hash covers: its row and slices, its study and patient."""
    return {"prediction": _without_unset_later_columns(p), "study": study, "patient": patient}


def prediction_content(conn: Connection, prediction_id: int) -> dict[str, Any]:
    """Everything recorded about one prediction, as stored (what its record hash covers)."""
    (p,) = raw_predictions(conn, prediction_id)
    (study,) = raw_rows(conn, "studies", p["study_ref"])
    (patient,) = raw_rows(conn, "patients", study["patient_ref"])
    return content_of(p, study, patient)


def outcome_content(conn: Connection, outcome_id: int) -> dict[str, Any]:
    """An outcome row as stored (what its record hash covers)."""
    (o,) = raw_rows(conn, "outcomes", outcome_id)
    return o


def record_from_rows(p: Prediction, s: Study, pt: Patient,
                      sl: PredictionSlices | None) -> PredictionRecord:
    """The record a prediction's rows hold (what ``get_prediction`` returns)."""
    return PredictionRecord(
        patient_id=pt.patient_id, patient_name=pt.patient_name, birth_date=pt.birth_date,
        sex=pt.sex, study_uid=s.study_uid, study_date=s.study_date, accession=s.accession,
        study_description=s.description, model_name=p.model_name,
        model_version=p.model_version, model_sha256=p.model_sha256,
        weights_kind=p.weights_kind, device=p.device, label=p.label, score=p.score,
        responder_votes=p.responder_votes, total_votes=p.total_votes, tie=bool(p.tie),
        tie_rule=p.tie_rule, decided_by=p.decided_by, series_uids=p.series_uids,
        liver_range_mm=p.liver_range_mm,
        slice_pairs=sl.slice_pairs if sl else [], slice_results=sl.slice_results if sl else [],
        warnings=p.warnings,
        overrides=p.overrides, run_time_s=p.run_time_s, source_folder=p.source_folder,
        app_version=p.app_version, os_user=p.os_user, created_at=parse_timestamp(p.created_at),
    )


def event_from_row(r: AuditEventRow) -> AuditEvent:
    """An audit event as the register reports it."""
    return AuditEvent(r.id, parse_timestamp(r.created_at), r.kind, r.os_user, r.app_version,
                      r.prediction_ref, json.loads(r.payload), r.prev_hash, r.hash)


def prediction_values(record: PredictionRecord) -> dict[str, Any]:
    """Validated column values of the ``predictions`` row for ``record`` (no ids).

    A column of :data:`LATER_COLUMNS` is left out when it holds its old value, so that a row
    without it is one every schema since 0001 accepts.
    """
    score = finite(record.score, "score")
    try:
        r_votes, t_votes = int(record.responder_votes), int(record.total_votes)
    except (TypeError, ValueError):
        raise RegisterInputError("vote counts must be whole numbers") from None
    if t_votes < 1 or not 0 <= r_votes <= t_votes:
        raise RegisterInputError(
            f"impossible vote split {record.responder_votes}/{record.total_votes}")
    if score is None or not 0.0 <= score <= 1.0:
        raise RegisterInputError(f"score {record.score!r} is not a probability in [0, 1]")
    for what in ("model_name", "model_version", "model_sha256"):
        if not str(getattr(record, what) or "").strip():
            raise RegisterInputError(f"a prediction needs its {what.replace('_', ' ')}")
    return _without_unset_later_columns({
        "created_at": timestamp_text(record.created_at),
        "os_user": record.os_user or "",
        "app_version": record.app_version or __version__,
        "model_name": record.model_name,
        "model_version": str(record.model_version),
        "model_sha256": record.model_sha256,
        "weights_kind": record.weights_kind or "",
        "device": record.device or "",
        "label": normalise_label(record.label),
        "score": score,
        "responder_votes": r_votes,
        "total_votes": t_votes,
        "tie": bool(record.tie),
        "tie_rule": record.tie_rule or "",
        "run_time_s": finite(record.run_time_s, "run time"),
        "source_folder": str(record.source_folder or ""),
        "series_uids": plain_json(dict(record.series_uids)),
        "liver_range_mm": plain_json(dict(record.liver_range_mm)),
        "warnings": [str(w) for w in record.warnings],
        "overrides": plain_json(dict(record.overrides)),
        "decided_by": str(record.decided_by or ""),
    })
