"""Whether a recorded prediction was ever shown to the user (issue 14, item 9).

The app records a prediction in its worker and shows it on the GUI thread a moment later
(RELIABILITY.md 28: a recorded prediction is always shown). A kill between the two leaves a
case in the register that nobody saw; that is acceptable, but it must not pass unnoticed. So:

* the app records with ``display_pending=True`` — the prediction's own audit event (written in
  the same transaction as the row) says that it still has to be shown;
* once the result is on screen, :func:`mark_shown` appends a ``shown`` event;
* :func:`unshown_predictions` lists the cases recorded for display and never shown: the
  register tab and ``hcc-response register list`` point at them on the next start. Opening such
  a case in the app shows it, which marks it.

The register is append-only (its triggers forbid UPDATE), so the state is kept as audit events
rather than a column: no migration, and the events are in the hash chain like every other.
Predictions recorded without ``display_pending`` (older registers, the command line, which
prints its result at once) are never listed.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sqlalchemy import select

from app.register.models import AuditEventRow

if TYPE_CHECKING:  # pragma: no cover - typing only
    from app.register import Register

#: Key and value in a prediction event's payload for "recorded, to be shown".
DISPLAY_KEY = "display"
DISPLAY_PENDING = "pending"
#: The audit event kind written when the result has been shown.
SHOWN_EVENT = "shown"


def mark_shown(register: Register, prediction_id: int, where: str = "app") -> bool:
    """Record that ``prediction_id`` has been shown; False when it was marked already."""
    if register.events(prediction_id=prediction_id, kind=SHOWN_EVENT, limit=1):
        return False
    register.log_event(SHOWN_EVENT, {"where": where}, prediction_id=prediction_id)
    return True


def unshown_predictions(register: Register) -> list[int]:
    """Case ids recorded to be shown and never shown, oldest first."""
    pending: list[int] = []
    shown: set[int] = set()
    stmt = (select(AuditEventRow.kind, AuditEventRow.prediction_ref, AuditEventRow.payload)
            .where(AuditEventRow.kind.in_(("prediction", SHOWN_EVENT)))
            .order_by(AuditEventRow.id))
    with register._read("the audit trail") as conn:  # noqa: SLF001 - typed errors
        for kind, ref, payload in conn.execute(stmt):
            if ref is None:
                continue
            if kind == SHOWN_EVENT:
                shown.add(int(ref))
            elif DISPLAY_PENDING in payload and _pending(payload):
                pending.append(int(ref))
    return [pid for pid in pending if pid not in shown]


def _pending(payload: str) -> bool:
    try:
        return json.loads(payload).get(DISPLAY_KEY) == DISPLAY_PENDING
    except (ValueError, AttributeError):
        return False


def unshown_text(ids: list[int]) -> str:
    """One sentence for the user about the cases never shown ("" when there are none)."""
    if not ids:
        return ""
    listed = ", ".join(str(i) for i in ids[:10]) + (" …" if len(ids) > 10 else "")
    return (f"{len(ids)} prediction{'s were' if len(ids) > 1 else ' was'} recorded but never shown "
            f"(the app ended before showing {'them' if len(ids) > 1 else 'it'}): case {listed}. "
            "Open a case to review it.")
