"""SQLAlchemy 2 models of the register (the schema at the head migration).

The tables are created and changed only by the Alembic migrations in
:mod:`app.register.migrations`; these classes describe the result so that queries are typed.
A test compares them with the migrated schema, so the two cannot drift apart.

Patients, studies, predictions, outcomes and audit events are append-only: SQLite triggers
(created by the migrations) refuse UPDATE and DELETE on them. A correction is a new row (an
outcome that ``supersedes`` the earlier one), never an edit. Only ``meta`` is mutable.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Tables whose rows can never be updated or deleted (enforced by triggers).
APPEND_ONLY_TABLES: tuple[str, ...] = ("patients", "studies", "predictions",
                                       "prediction_slices", "outcomes", "audit_events")


class Base(DeclarativeBase):
    """Declarative base; ``Base.metadata`` is what the schema test compares migrations with."""


class Meta(Base):
    """Key/value facts about this register (its id, the pseudonymisation secret)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String, nullable=False, unique=True)
    patient_name: Mapped[str] = mapped_column(String, nullable=False, default="")
    birth_date: Mapped[str] = mapped_column(String, nullable=False, default="")
    sex: Mapped[str] = mapped_column(String, nullable=False, default="")
    created_at: Mapped[str] = mapped_column(String, nullable=False)


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_ref: Mapped[int] = mapped_column(ForeignKey("patients.id"), nullable=False,
                                             index=True)
    study_uid: Mapped[str] = mapped_column(String, nullable=False, unique=True)
    study_date: Mapped[str] = mapped_column(String, nullable=False, default="")
    accession: Mapped[str] = mapped_column(String, nullable=False, default="")
    description: Mapped[str] = mapped_column(String, nullable=False, default="")
    created_at: Mapped[str] = mapped_column(String, nullable=False)


class Prediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (
        CheckConstraint("label IN ('responder', 'non-responder')", name="ck_predictions_label"),
        CheckConstraint("responder_votes >= 0 AND responder_votes <= total_votes",
                        name="ck_predictions_votes"),
        # the register table filters by model (name, version): one composite index serves both
        Index("ix_predictions_model", "model_name", "model_version"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_ref: Mapped[int] = mapped_column(ForeignKey("studies.id"), nullable=False, index=True)
    created_at: Mapped[str] = mapped_column(String, nullable=False, index=True)
    os_user: Mapped[str] = mapped_column(String, nullable=False, default="")
    app_version: Mapped[str] = mapped_column(String, nullable=False)
    model_name: Mapped[str] = mapped_column(String, nullable=False)
    model_version: Mapped[str] = mapped_column(String, nullable=False)
    model_sha256: Mapped[str] = mapped_column(String, nullable=False)
    weights_kind: Mapped[str] = mapped_column(String, nullable=False, default="")
    device: Mapped[str] = mapped_column(String, nullable=False, default="")
    label: Mapped[str] = mapped_column(String, nullable=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    responder_votes: Mapped[int] = mapped_column(Integer, nullable=False)
    total_votes: Mapped[int] = mapped_column(Integer, nullable=False)
    tie: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    tie_rule: Mapped[str] = mapped_column(String, nullable=False, default="")
    #: how ``score`` was made (the model's aggregation rule, e.g. ``patient_head``); "" for
    #: predictions recorded before schema 0003. Server default only, so that the code writes
    #: rows the older schemas accept when there is nothing to say (see rows.LATER_COLUMNS).
    decided_by: Mapped[str] = mapped_column(String, nullable=False, server_default="")
    run_time_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    source_folder: Mapped[str] = mapped_column(Text, nullable=False, default="")
    series_uids: Mapped[Any] = mapped_column(JSON, nullable=False)
    liver_range_mm: Mapped[Any] = mapped_column(JSON, nullable=False)
    warnings: Mapped[Any] = mapped_column(JSON, nullable=False)
    overrides: Mapped[Any] = mapped_column(JSON, nullable=False)


class PredictionSlices(Base):
    """The per-slice detail of one prediction (pairs, probabilities, votes), 1:1.

    Kept apart from ``predictions`` on purpose: it is most of a prediction's bytes (kilobytes
    for 30 slices), and the register table's scans, sorts and counts then read a narrow table
    (``bench/register_speed.py``: with the detail inline, a sort over 10,000 cases could take
    a second; apart, milliseconds).
    """

    __tablename__ = "prediction_slices"

    prediction_ref: Mapped[int] = mapped_column(ForeignKey("predictions.id"), primary_key=True)
    slice_pairs: Mapped[Any] = mapped_column(JSON, nullable=False)
    slice_results: Mapped[Any] = mapped_column(JSON, nullable=False)


class Outcome(Base):
    __tablename__ = "outcomes"
    __table_args__ = (
        CheckConstraint("category IN ('CR', 'PR', 'SD', 'PD')", name="ck_outcomes_category"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prediction_ref: Mapped[int] = mapped_column(ForeignKey("predictions.id"), nullable=False,
                                                index=True)
    category: Mapped[str] = mapped_column(String, nullable=False)
    outcome_date: Mapped[str] = mapped_column(String, nullable=False, default="")
    entered_by: Mapped[str] = mapped_column(String, nullable=False, default="")
    entered_at: Mapped[str] = mapped_column(String, nullable=False)
    supersedes_ref: Mapped[int | None] = mapped_column(ForeignKey("outcomes.id"), nullable=True)
    note: Mapped[str] = mapped_column(Text, nullable=False, default="")


class AuditEventRow(Base):
    """One link of the audit chain: ``hash = SHA-256(prev_hash + canonical JSON of the event)``."""

    __tablename__ = "audit_events"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[str] = mapped_column(String, nullable=False)
    kind: Mapped[str] = mapped_column(String, nullable=False, index=True)
    os_user: Mapped[str] = mapped_column(String, nullable=False, default="")
    app_version: Mapped[str] = mapped_column(String, nullable=False)
    prediction_ref: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
