"""Record how a prediction's score was made (the model's aggregation rule).

Revision ID: 0003
Revises: 0002

A model with a patient head gives a patient-level probability rather than the mean over the
slices; a case read back from the register (re-opened, exported) has to say which. Rows written
before keep ``""`` ("not recorded"), and their record hashes stay valid: a hash covers the new
column only where it holds something else (``app.register.rows.LATER_COLUMNS``). Adding a
column does not touch rows, so the append-only triggers stay as they are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("predictions",
                  sa.Column("decided_by", sa.String(), nullable=False, server_default=""))


def downgrade() -> None:  # pragma: no cover - downgrades are not supported
    raise NotImplementedError("register migrations are forward-only")
