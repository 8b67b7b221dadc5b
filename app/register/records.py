"""Plain data going into and coming out of the register.

The register never sees torch or the predictor's objects: the caller (the CLI's ``predict
--register``, the UI) turns its ``PredictionResult`` + ``AssembledStudy`` into a
:class:`PredictionRecord` with a small adapter on the inference side, and the register hands back
light dataclasses (:class:`CaseRow` for the table, :class:`PredictionDetail` for one case).

A :class:`PredictionRecord` is never modified by the register, so a caller whose save failed
(full disk, read-only location) still holds it and can save it again (RELIABILITY.md 24).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app import __version__
from app.register.errors import RegisterInputError

if TYPE_CHECKING:  # the register needs the type only, not numpy at import time
    from app.dicom.types import AssembledStudy

#: RECIST 1.1 categories; a "responder" (the model's positive class) is CR or PR.
RECIST_CATEGORIES: tuple[str, ...] = ("CR", "PR", "SD", "PD")
RESPONDER_CATEGORIES: frozenset[str] = frozenset({"CR", "PR"})

#: The two labels a prediction may carry in the register (canonical spelling).
LABEL_RESPONDER = "responder"
LABEL_NON_RESPONDER = "non-responder"

# Spellings accepted from callers, normalised to the two canonical labels. The inference side
# owns the wording of its result; accepting a few obvious synonyms keeps the adapter trivial
# while the register still refuses anything ambiguous.
_LABEL_SYNONYMS: dict[str, str] = {
    "responder": LABEL_RESPONDER,
    "response": LABEL_RESPONDER,
    "positive": LABEL_RESPONDER,
    "cr/pr": LABEL_RESPONDER,
    "1": LABEL_RESPONDER,
    "non-responder": LABEL_NON_RESPONDER,
    "nonresponder": LABEL_NON_RESPONDER,
    "non-response": LABEL_NON_RESPONDER,
    "no-response": LABEL_NON_RESPONDER,
    "negative": LABEL_NON_RESPONDER,
    "sd/pd": LABEL_NON_RESPONDER,
    "0": LABEL_NON_RESPONDER,
}


def normalise_label(label: object) -> str:
    """Map a caller's label to ``"responder"`` / ``"non-responder"``.

    Raises
    ------
    RegisterInputError
        For anything that is not clearly one of the two classes.
    """
    if isinstance(label, bool):
        return LABEL_RESPONDER if label else LABEL_NON_RESPONDER
    key = str(label).strip().lower().replace("_", "-").replace(" ", "-")
    try:
        return _LABEL_SYNONYMS[key]
    except KeyError:
        raise RegisterInputError(
            f"unknown prediction label {label!r} (expected 'responder' or 'non-responder')"
        ) from None


def normalise_category(category: str) -> str:
    """Upper-case RECIST category, checked against CR/PR/SD/PD."""
    cat = str(category).strip().upper()
    if cat not in RECIST_CATEGORIES:
        raise RegisterInputError(
            f"unknown RECIST category {category!r} (expected one of {', '.join(RECIST_CATEGORIES)})"
        )
    return cat


def normalise_date(value: str | dt.date | None, what: str = "date", *,
                   strict: bool = True) -> str:
    """A calendar date as ISO ``YYYY-MM-DD``; accepts DICOM ``YYYYMMDD``, ISO or a date.

    Dates are stored as ISO text so that they sort, compare and export the same way everywhere;
    ``""`` means unknown (DICOM type 2 attributes are often empty). With ``strict=False`` (dates
    read from DICOM headers) an unparseable value is kept as it was written instead of being
    refused: a malformed header date must not stop a prediction from being recorded.
    """
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    if not text:
        return ""
    for fmt in ("%Y%m%d", "%Y-%m-%d", "%Y.%m.%d"):
        try:
            return dt.datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    if not strict:
        return text
    raise RegisterInputError(f"{what} {text!r} is not a date (expected YYYY-MM-DD or YYYYMMDD)")


def utc_now() -> dt.datetime:
    """The current time, timezone-aware UTC (the register stores UTC only)."""
    return dt.datetime.now(dt.UTC)


def timestamp_text(when: dt.datetime) -> str:
    """UTC timestamp as fixed-width ISO text, so that text order is time order in SQL."""
    if when.tzinfo is None:
        raise RegisterInputError("timestamps must be timezone-aware (UTC)")
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds")


def parse_timestamp(text: str) -> dt.datetime:
    """Inverse of :func:`timestamp_text`."""
    return dt.datetime.fromisoformat(text)


def current_os_user() -> str:
    """The login name of the person running the app ("" when the OS cannot tell)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry / no login name in containers
        return ""


def plain_json(value: Any) -> Any:
    """``value`` as JSON would return it (tuples → lists, numpy scalars → numbers).

    The register hashes what it stores; passing every JSON field through one JSON round trip
    first means that the hash computed at insert time and the one recomputed by ``verify`` see
    exactly the same structure. NaN and infinities are refused: they are not JSON.
    """
    try:
        return json.loads(json.dumps(value, allow_nan=False, default=_json_default))
    except ValueError as exc:
        raise RegisterInputError(f"value cannot be stored: {exc}") from None


def _json_default(obj: Any) -> Any:
    # numpy scalars/arrays without importing numpy (the register stays light)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, (dt.date, dt.datetime)):
        return obj.isoformat()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def finite(value: float | None, what: str) -> float | None:
    """``value`` as float, refusing NaN/inf (a NaN score must never be recorded silently)."""
    if value is None:
        return None
    f = float(value)
    if not math.isfinite(f):
        raise RegisterInputError(f"{what} is not a finite number ({value!r})")
    return f


@dataclass
class PredictionRecord:
    """Everything the register keeps about one prediction (input to ``add_prediction``).

    Plain data only. The adapter that builds it from the predictor's result lives on the
    inference side, so that the register never imports torch.

    Attributes
    ----------
    patient_id, patient_name, birth_date, sex:
        As read from DICOM; they stay in the local register (see the pseudonymised export).
        For a patient already in the register, the first values seen are kept.
    study_uid, study_date, accession, study_description:
        The study the prediction was made on (first values seen are kept, as for patients).
    model_name, model_version, model_sha256, weights_kind:
        Identity of the model: its name and version from the model card, the SHA-256 of the
        weights file, and what kind of weights (e.g. ``"bundled"``, ``"site"``, ``"random"``).
    device:
        Where it ran (``"cpu"``, ``"cuda:0"``), including a fallback that happened.
    label, score:
        The decision (``"responder"``/``"non-responder"``, synonyms accepted) and the mean
        per-slice probability of response (the score local AUCs are computed from).
    responder_votes, total_votes, tie, tie_rule:
        The vote split of the majority vote and, for a tie, the rule that decided it.
    decided_by:
        How ``score`` was made: the model's aggregation rule (``"vote"``, ``"lesion_weighted"``,
        ``"patient_head"``; see :data:`app.inference.config.AGGREGATION_RULES`), so that a case
        read back later says what its probability is. Empty when not known.
    series_uids:
        phase → Series Instance UID of the input series.
    liver_range_mm:
        phase → ``[z_min, z_max]`` of the liver range used (mm).
    slice_pairs:
        One dict per slice triplet (e.g. ``{"z_ref": .., "index": {...}, "z_mm": {...}}``).
    slice_results:
        One dict per slice: ``{"z_ref": float, "probability": float, "label": int}``.
    warnings:
        Warnings that were shown to the user with this prediction.
    overrides:
        Phase assignments the user made by hand (phase → series UID).
    run_time_s:
        Wall time of the prediction in seconds.
    source_folder:
        The folder the study was imported from.
    app_version, os_user, created_at:
        Filled automatically (this version, the OS login, now in UTC) when not given.
    """

    patient_id: str
    study_uid: str
    model_name: str
    model_version: str
    model_sha256: str
    label: str
    score: float
    responder_votes: int
    total_votes: int
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    study_date: str = ""
    accession: str = ""
    study_description: str = ""
    weights_kind: str = ""
    device: str = ""
    tie: bool = False
    tie_rule: str = ""
    decided_by: str = ""
    series_uids: dict[str, str] = field(default_factory=dict)
    liver_range_mm: dict[str, list[float]] = field(default_factory=dict)
    slice_pairs: list[dict[str, Any]] = field(default_factory=list)
    slice_results: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    run_time_s: float | None = None
    source_folder: str = ""
    app_version: str = __version__
    os_user: str = field(default_factory=current_os_user)
    created_at: dt.datetime = field(default_factory=utc_now)


@dataclass(frozen=True)
class CaseRow:
    """One line of the register table (list/search screen)."""

    id: int
    created_at: dt.datetime
    patient_id: str
    patient_name: str
    study_date: str
    label: str
    score: float
    responder_votes: int
    total_votes: int
    model_name: str
    model_version: str
    outcome: str | None
    outcome_date: str | None
    decided_by: str = ""  # the rule that made the score ("" for cases recorded before 0003)

    @property
    def vote_split(self) -> str:
        """``"17/30"``: slices voting responder / slices voted."""
        return f"{self.responder_votes}/{self.total_votes}"


@dataclass(frozen=True)
class OutcomeEntry:
    """One outcome as entered; a correction is a new entry that ``supersedes`` the old one."""

    id: int
    prediction_id: int
    category: str
    outcome_date: str
    entered_by: str
    entered_at: dt.datetime
    supersedes: int | None
    note: str

    @property
    def responder(self) -> bool:
        return self.category in RESPONDER_CATEGORIES


@dataclass(frozen=True)
class AuditEvent:
    """One row of the hash-chained audit trail."""

    id: int
    created_at: dt.datetime
    kind: str
    os_user: str
    app_version: str
    prediction_id: int | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class PredictionDetail:
    """One case with everything recorded about it.

    ``outcomes`` is the full history, oldest first; ``outcome`` the current one (the latest
    entry), None before any was entered. ``events`` are the audit events about this case.
    """

    id: int
    record: PredictionRecord
    outcomes: list[OutcomeEntry]
    events: list[AuditEvent]

    @property
    def outcome(self) -> OutcomeEntry | None:
        return self.outcomes[-1] if self.outcomes else None


@dataclass
class VerifyReport:
    """Result of :meth:`Register.verify`: database integrity and the audit chain.

    ``first_bad_event`` is the id of the first audit row whose chain link or hash does not
    match (None when the chain is whole); ``problems`` lists every finding in words;
    ``last_hash`` is the newest event's hash (the chain's head).
    """

    ok: bool
    integrity: str
    n_events: int
    n_predictions: int
    n_outcomes: int
    first_bad_event: int | None = None
    problems: list[str] = field(default_factory=list)
    #: hash of the newest audit event: note it down (or keep it with a backup) to detect later
    #: a rewrite of the chain's tail, which no check inside the file alone can rule out
    last_hash: str = ""


def study_fields(study: AssembledStudy) -> dict[str, Any]:
    """The :class:`PredictionRecord` fields that come from an assembled study.

    For the adapter that builds a record from the predictor's result::

        PredictionRecord(**study_fields(study), model_name=..., label=..., score=..., ...)

    Fills patient and study identity, the series used per phase, the liver range, the slice
    pairs, the phase overrides the user made and the study's warnings. Birth date, sex and
    accession number are not part of :class:`AssembledStudy`; pass them separately if known.
    """
    return {
        "patient_id": study.patient_id,
        "patient_name": study.patient_name,
        "study_uid": study.study_uid,
        "study_date": study.study_date,
        "study_description": study.study_description,
        "series_uids": dict(study.assignment),
        "liver_range_mm": {ph: [float(a), float(b)] for ph, (a, b)
                           in study.liver_range_mm.items()},
        "slice_pairs": [
            {"z_ref": float(p.z_ref), "index": {k: int(v) for k, v in p.index.items()},
             "z_mm": {k: float(v) for k, v in p.z_mm.items()}}
            for p in study.pairs
        ],
        "overrides": dict(study.overrides),
        "warnings": [*study.warnings, *study.confirmation_reasons],
    }


def same_person(record: PredictionRecord, name: str, birth_date: str) -> None:
    """Refuse a prediction whose patient ID is another person's in the register.

    One Patient ID used by two people (issue 14, item 6) would file the second person's case
    under the first one's name. Names are compared as people write them (case, spaces and
    trailing empty components ignored); an empty name or birth date is unknown, not different.
    """
    from app.dicom.patients import norm_person_name  # the scan's rule, so both agree

    new_name, new_birth = norm_person_name(record.patient_name or ""), str(record.birth_date or "")
    differs = []
    if new_name and norm_person_name(name) and new_name != norm_person_name(name):
        differs.append(f"name {name!r}, not {record.patient_name!r}")
    new_birth = normalise_date(new_birth, "birth date", strict=False) if new_birth else ""
    if new_birth and birth_date and new_birth != birth_date:
        differs.append(f"birth date {birth_date}, not {new_birth}")
    if differs:
        raise RegisterInputError(
            f"patient ID {record.patient_id!r} belongs to another person in the register "
            f"({'; '.join(differs)}): the case was not recorded under it")
