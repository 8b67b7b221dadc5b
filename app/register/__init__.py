"""The case register: SQLite via SQLAlchemy 2, audit trail, outcomes, local performance,
export and backup. No Qt, no torch.

Public API::

    from app.register import open_register, PredictionRecord

    with open_register(path_or_None) as reg:
        case_id = reg.add_prediction(PredictionRecord(...))
        reg.list_cases(search="", model=None, outcome="any", sort="created_at")
        reg.get_prediction(case_id); reg.record_outcome(case_id, "PR", "2026-01-31")
        reg.verify(); reg.performance(); reg.export_csv(dest, pseudonymise=True)
        reg.backup(dest); reg.log_event("override", {...}, prediction_id=case_id)
"""

from app.register.errors import (
    NotARegisterError,
    RegisterBusyError,
    RegisterDamagedError,
    RegisterError,
    RegisterFullError,
    RegisterInputError,
    RegisterNewerSchemaError,
    RegisterReadOnlyError,
)
from app.register.performance import PAPER_REFERENCE, PerformanceRow, ReferenceFigures
from app.register.records import (
    LABEL_NON_RESPONDER,
    LABEL_RESPONDER,
    RECIST_CATEGORIES,
    AuditEvent,
    CaseRow,
    OutcomeEntry,
    PredictionDetail,
    PredictionRecord,
    VerifyReport,
    study_fields,
)
from app.register.register import (
    OUTCOME_FILTERS,
    SORT_KEYS,
    ExportSummary,
    Register,
    open_register,
)

__all__ = [
    "LABEL_NON_RESPONDER",
    "LABEL_RESPONDER",
    "OUTCOME_FILTERS",
    "PAPER_REFERENCE",
    "RECIST_CATEGORIES",
    "SORT_KEYS",
    "AuditEvent",
    "CaseRow",
    "ExportSummary",
    "NotARegisterError",
    "OutcomeEntry",
    "PerformanceRow",
    "PredictionDetail",
    "PredictionRecord",
    "ReferenceFigures",
    "Register",
    "RegisterBusyError",
    "RegisterDamagedError",
    "RegisterError",
    "RegisterFullError",
    "RegisterInputError",
    "RegisterNewerSchemaError",
    "RegisterReadOnlyError",
    "VerifyReport",
    "open_register",
    "study_fields",
]
