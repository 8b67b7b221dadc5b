"""Schema revisions of the register (one module per revision; Alembic skips this file)."""
