"""First schema of the register: patients, studies, predictions, outcomes, the audit chain.

Revision ID: 0001
Revises: (none)

Append-only tables get ``BEFORE UPDATE`` / ``BEFORE DELETE`` triggers that abort, so that even
a bug or a careless SQL session cannot edit history through SQLite (a determined person can
drop the triggers with raw SQL; the hash chain checked by ``verify`` catches that).
``meta`` receives the register's random id and the secret for pseudonymised exports.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY = ("patients", "studies", "predictions", "prediction_slices", "outcomes",
               "audit_events")


def upgrade() -> None:
    meta = op.create_table(
        "meta",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("patient_id", sa.String(), nullable=False, unique=True),
        sa.Column("patient_name", sa.String(), nullable=False),
        sa.Column("birth_date", sa.String(), nullable=False),
        sa.Column("sex", sa.String(), nullable=False),
        sa.Column("created_at", sa.String(), nullable=False),
    )
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("patient_ref", sa.Integer(), sa.ForeignKey("patients.id"), nullable=False),
        sa.Column("study_uid", sa.String(), nullable=False, unique=True),
        sa.Column("study_date", sa.String(), nullable=False),
        sa.Column("accession", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("created_at", sa.String(), nullable=False),
    )
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_ref", sa.Integer(), sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("created_at", sa.String(), nullable=False),
        sa.Column("os_user", sa.String(), nullable=False),
        sa.Column("app_version", sa.String(), nullable=False),
        sa.Column("model_name", sa.String(), nullable=False),
        sa.Column("model_version", sa.String(), nullable=False),
        sa.Column("model_sha256", sa.String(), nullable=False),
        sa.Column("weights_kind", sa.String(), nullable=False),
        sa.Column("device", sa.String(), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("responder_votes", sa.Integer(), nullable=False),
        sa.Column("total_votes", sa.Integer(), nullable=False),
        sa.Column("tie", sa.Boolean(), nullable=False),
        sa.Column("tie_rule", sa.String(), nullable=False),
        sa.Column("run_time_s", sa.Float(), nullable=True),
        sa.Column("source_folder", sa.Text(), nullable=False),
        sa.Column("series_uids", sa.JSON(), nullable=False),
        sa.Column("liver_range_mm", sa.JSON(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("overrides", sa.JSON(), nullable=False),
        sa.CheckConstraint("label IN ('responder', 'non-responder')", name="ck_predictions_label"),
        sa.CheckConstraint("responder_votes >= 0 AND responder_votes <= total_votes",
                           name="ck_predictions_votes"),
        sqlite_autoincrement=True,
    )
    # the bulky per-slice detail lives apart, so that the table's scans read a narrow table
    op.create_table(
        "prediction_slices",
        sa.Column("prediction_ref", sa.Integer(), sa.ForeignKey("predictions.id"),
                  primary_key=True),
        sa.Column("slice_pairs", sa.JSON(), nullable=False),
        sa.Column("slice_results", sa.JSON(), nullable=False),
    )
    op.create_table(
        "outcomes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("prediction_ref", sa.Integer(), sa.ForeignKey("predictions.id"),
                  nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("outcome_date", sa.String(), nullable=False),
        sa.Column("entered_by", sa.String(), nullable=False),
        sa.Column("entered_at", sa.String(), nullable=False),
        sa.Column("supersedes_ref", sa.Integer(), sa.ForeignKey("outcomes.id"), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.CheckConstraint("category IN ('CR', 'PR', 'SD', 'PD')", name="ck_outcomes_category"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("created_at", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("os_user", sa.String(), nullable=False),
        sa.Column("app_version", sa.String(), nullable=False),
        sa.Column("prediction_ref", sa.Integer(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sqlite_autoincrement=True,
    )
    for table in APPEND_ONLY:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {action} refused'); END"
            )
    now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
    op.bulk_insert(meta, [
        {"key": "register_id", "value": str(uuid.uuid4())},
        # HMAC key of the pseudonymised export; never exported itself
        {"key": "pseudonym_key", "value": secrets.token_hex(32)},
        {"key": "created_at", "value": now},
    ])


def downgrade() -> None:  # pragma: no cover - downgrades are not supported (see package doc)
    raise NotImplementedError("register migrations are forward-only")
