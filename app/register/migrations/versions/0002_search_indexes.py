"""Indexes for the register table's list, search, sort and filter queries.

Revision ID: 0002
Revises: 0001

Measured with ``bench/register_speed.py``: with 10,000 predictions the first page sorted by
time, the model filter and the outcome filter stay in the millisecond range with these indexes.
Creating indexes does not touch rows, so the append-only triggers stay as they are.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_studies_patient_ref", "studies", ["patient_ref"])
    op.create_index("ix_predictions_study_ref", "predictions", ["study_ref"])
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])
    op.create_index("ix_predictions_model", "predictions", ["model_name", "model_version"])
    op.create_index("ix_outcomes_prediction_ref", "outcomes", ["prediction_ref"])
    op.create_index("ix_audit_events_kind", "audit_events", ["kind"])
    op.create_index("ix_audit_events_prediction_ref", "audit_events", ["prediction_ref"])


def downgrade() -> None:  # pragma: no cover - downgrades are not supported
    raise NotImplementedError("register migrations are forward-only")
