"""The case register: SQLite via SQLAlchemy 2, audit trail, outcomes, local performance,
export and backup. No Qt, no torch."""
