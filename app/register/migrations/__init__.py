"""Alembic migrations of the register, shipped inside the package and run programmatically.

``versions/`` holds one module per schema revision (``0001`` is the first schema). No
``alembic.ini`` and no ``env.py`` are needed at run time: :mod:`app.register.db` builds the
Alembic configuration in code and runs the upgrade inside one SQLite transaction, so a failed
or interrupted upgrade leaves the register at its old revision (SQLite DDL is transactional).

Writing a new revision: add ``versions/NNNN_what.py`` by hand with ``revision``,
``down_revision`` and ``upgrade()`` (use ``op.batch_alter_table`` for SQLite table changes, and
drop/re-create the append-only triggers around any table rebuild). Downgrades are not supported:
an older app refuses a newer register instead (RELIABILITY.md 21).

Frozen builds: PyInstaller must ship this folder's ``.py`` files as data (Alembic finds
revisions by listing ``versions/``), e.g. ``collect_data_files("app.register.migrations",
include_py_files=True)``.
"""

from pathlib import Path

MIGRATIONS_DIR: Path = Path(__file__).resolve().parent
