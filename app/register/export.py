"""CSV export of the register, plain or pseudonymised (RELIABILITY.md 26).

Pseudonymised export (decided here):

* Patient ID → ``patient_key`` = HMAC-SHA256(key, patient ID), first 16 bytes as hex; the study
  UID likewise → ``study_key``. The key is the register's own random secret (kept in the
  register, never exported) unless the caller supplies one, e.g. a key shared by several sites
  so that their exports link. Only someone holding the key can re-link a row to a patient.
* Names, birth dates, accession numbers, study descriptions, source folders, OS user names and
  warning texts (which can quote series descriptions) are left out; the number of warnings stays.
* Dates are *shifted*, not dropped: every date and timestamp of one patient moves by the same
  keyed offset of −365…+365 days (never 0), so intervals within a patient (study to outcome,
  prediction to outcome) stay true while calendar dates no longer identify anyone.

Text cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``)
are prefixed with an apostrophe; DICOM names and IDs are untrusted input.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from app.register.models import Outcome, Patient, Prediction, Study

PLAIN_COLUMNS: tuple[str, ...] = (
    "prediction_id", "created_at", "patient_id", "patient_name", "birth_date", "sex",
    "study_uid", "study_date", "accession", "study_description", "model_name", "model_version",
    "model_sha256", "weights_kind", "device", "app_version", "os_user", "label", "score",
    "decided_by", "responder_votes", "total_votes", "tie", "tie_rule", "run_time_s", "warnings",
    "overrides", "source_folder", "outcome", "outcome_date", "outcome_entered_by",
    "outcome_corrections",
)

PSEUDONYMISED_COLUMNS: tuple[str, ...] = (
    "prediction_id", "created_at", "patient_key", "sex", "study_key", "study_date",
    "model_name", "model_version", "model_sha256", "weights_kind", "device", "app_version",
    "label", "score", "decided_by", "responder_votes", "total_votes", "tie", "tie_rule",
    "run_time_s", "n_warnings", "outcome", "outcome_date", "outcome_corrections",
)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def keyed_hash(key: bytes, value: str) -> str:
    """HMAC-SHA256 of ``value`` under ``key``, truncated to 128 bits (32 hex digits)."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def date_shift_days(key: bytes, patient_id: str) -> int:
    """The patient's keyed date offset in days: −365…−1 or 1…365 (never 0)."""
    digest = hmac.new(key, b"date-shift\x00" + patient_id.encode("utf-8"), hashlib.sha256)
    k = int.from_bytes(digest.digest()[:4], "big") % 730  # 0..729
    return k - 365 if k < 365 else k - 364  # -365..-1, 1..365


def shift_date(text: str, days: int) -> str:
    """Shift an ISO date (``YYYY-MM-DD``) by ``days``; "" stays "" (unknown stays unknown).

    A date that is not ISO (kept as written from a malformed DICOM header) cannot be shifted
    and is dropped: passing it through would leak the real date.
    """
    if not text:
        return ""
    try:
        return (dt.date.fromisoformat(text) + dt.timedelta(days=days)).isoformat()
    except ValueError:
        return ""


def shift_timestamp(text: str, days: int) -> str:
    """Shift an ISO timestamp by ``days`` (the time of day is kept)."""
    if not text:
        return ""
    return (dt.datetime.fromisoformat(text) + dt.timedelta(days=days)).isoformat(
        timespec="seconds")


def safe_cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas in text cells; numbers pass unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def pseudonymise_row(row: dict[str, Any], key: bytes) -> dict[str, Any]:
    """The pseudonymised version of one plain export row (see the module docstring)."""
    days = date_shift_days(key, row["patient_id"])
    out = {c: row.get(c) for c in PSEUDONYMISED_COLUMNS if c in row}
    out["patient_key"] = keyed_hash(key, "patient\x00" + row["patient_id"])
    out["study_key"] = keyed_hash(key, "study\x00" + row["study_uid"])
    out["created_at"] = shift_timestamp(row["created_at"], days)
    out["study_date"] = shift_date(row["study_date"], days)
    out["outcome_date"] = shift_date(row["outcome_date"] or "", days)
    out["n_warnings"] = row["n_warnings"]
    return {c: out.get(c) for c in PSEUDONYMISED_COLUMNS}


def case_rows(conn: Connection) -> list[dict[str, Any]]:
    """Every case as a plain export row (its current outcome and the number of corrections),
    by case id; the per-slice JSON (most of a row's bytes) is not exported."""
    latest = (select(func.max(Outcome.id)).where(Outcome.prediction_ref == Prediction.id)
              .correlate(Prediction).scalar_subquery())
    n_outcomes = (select(func.count(Outcome.id))
                  .where(Outcome.prediction_ref == Prediction.id)
                  .correlate(Prediction).scalar_subquery())
    # explicit columns: the per-slice JSON (most of a row's bytes) is not exported
    stmt = (select(Prediction.id, Prediction.created_at, Patient.patient_id,
                   Patient.patient_name, Patient.birth_date, Patient.sex, Study.study_uid,
                   Study.study_date, Study.accession, Study.description,
                   Prediction.model_name, Prediction.model_version, Prediction.model_sha256,
                   Prediction.weights_kind, Prediction.device, Prediction.app_version,
                   Prediction.os_user, Prediction.label, Prediction.score, Prediction.decided_by,
                   Prediction.responder_votes, Prediction.total_votes, Prediction.tie,
                   Prediction.tie_rule, Prediction.run_time_s, Prediction.warnings,
                   Prediction.overrides, Prediction.source_folder,
                   Outcome.category, Outcome.outcome_date, Outcome.entered_by,
                   n_outcomes.label("n_outcomes"))
            .join(Study, Study.id == Prediction.study_ref)
            .join(Patient, Patient.id == Study.patient_ref)
            .outerjoin(Outcome, Outcome.id == latest).order_by(Prediction.id))
    return [{
        "prediction_id": r.id, "created_at": r.created_at,
        "patient_id": r.patient_id, "patient_name": r.patient_name,
        "birth_date": r.birth_date, "sex": r.sex, "study_uid": r.study_uid,
        "study_date": r.study_date, "accession": r.accession,
        "study_description": r.description, "model_name": r.model_name,
        "model_version": r.model_version, "model_sha256": r.model_sha256,
        "weights_kind": r.weights_kind, "device": r.device,
        "app_version": r.app_version, "os_user": r.os_user, "label": r.label,
        "score": r.score, "decided_by": r.decided_by, "responder_votes": r.responder_votes,
        "total_votes": r.total_votes, "tie": int(bool(r.tie)), "tie_rule": r.tie_rule,
        "run_time_s": r.run_time_s, "warnings": "; ".join(r.warnings),
        "n_warnings": len(r.warnings),
        "overrides": json.dumps(r.overrides, sort_keys=True) if r.overrides else "",
        "source_folder": r.source_folder,
        "outcome": r.category or "", "outcome_date": r.outcome_date or "",
        "outcome_entered_by": r.entered_by or "",
        "outcome_corrections": max(int(r.n_outcomes) - 1, 0),
    } for r in conn.execute(stmt).all()]


def write_csv(path: Path, rows: Iterable[dict[str, Any]], key: bytes | None) -> int:
    """Write ``rows`` to the CSV file ``path`` (pseudonymised with ``key`` when one is given;
    every cell made safe for spreadsheets); returns the number of rows. A failed write removes
    the partial file."""
    columns = PSEUDONYMISED_COLUMNS if key is not None else PLAIN_COLUMNS
    n = 0
    try:
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                out = pseudonymise_row(row, key) if key is not None else row
                writer.writerow({c: safe_cell(out.get(c)) for c in columns})
                n += 1
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return n
