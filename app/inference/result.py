"""What a prediction is, without the network: slice results, the vote, the patient's result.

These types are read by everyone downstream of the predictor — the desktop app's panels, the
PDF report, the register adapter (:mod:`app.casework`), evaluation — and none of those needs
torch to read them. Keeping them apart from :mod:`app.inference.predictor` (which imports torch)
lets the UI and the report be type-checked against the real fields, and lets a light process
(the register CLI, a test) handle results without loading the network's libraries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from app import __version__
from app.inference.config import CLASSES, probability_words
from app.inference.patient_head import PatientHead, patient_features

NON_RESPONDER, RESPONDER = CLASSES
TIE_RULE = ("tied vote: decided by the mean responder probability over all slices "
            "(responder only when > 0.5)")


@dataclass
class SliceResult:
    """One slice triplet's prediction.

    ``z_ref`` is the level the triplet was paired at; ``z_by_phase`` / ``index_by_phase`` the
    table position and slice index of each phase's slice; ``probability`` the responder
    probability. For a lesion-head model ``lesion_area`` is the tumour area it saw (input
    pixels) and ``votes`` whether the slice took part in the ``lesion_weighted`` vote.
    """

    pair_index: int
    z_ref: float
    z_by_phase: dict[str, float]
    index_by_phase: dict[str, int]
    probability: float
    label: str
    lesion_area: float | None = None
    votes: bool = True


@dataclass
class PredictionResult:
    """A patient's prediction with everything needed to audit it.

    Attributes
    ----------
    label:
        ``"responder"`` or ``"non-responder"`` (majority vote; :data:`TIE_RULE` on a tie).
    responder_votes, total_votes, vote_fraction:
        The vote split (``vote_fraction`` = responder votes / total votes).
    mean_probability:
        Mean responder probability over the slices (the score for ROC analysis).
    tie, tie_rule:
        Whether the vote was tied, and the rule applied (always stated, for the record).
    slices:
        Per-slice results in the order of ``study.pairs``.
    phases:
        Phases the model read.
    series_uids:
        phase → Series Instance UID of the series used.
    model_name, model_version, model_sha256, weights_kind:
        The model's identity and what its weights are.
    device, device_reason, device_fallback:
        Where it ran and why (a GPU failure that moved it to the CPU is recorded here).
    precision:
        ``fp32`` / ``fp16`` / ``bf16`` as actually used.
    batch_size:
        The batch size in use at the end (smaller than requested after GPU out-of-memory).
    timings:
        Seconds: ``preprocess``, ``forward``, ``total``.
    warnings:
        For the user: untrained weights, a tied vote, a study that needs confirmation, the CPU
        fallback.
    software_version:
        Version of HCC Response that made the prediction.
    decided_by:
        The rule that made ``label`` and ``mean_probability``: ``vote``, ``lesion_weighted`` or
        ``patient_head`` (see :func:`aggregate`); empty when not known (a result read back from
        the register, which does not store it).
    """

    label: str
    responder_votes: int
    total_votes: int
    vote_fraction: float
    mean_probability: float
    tie: bool
    tie_rule: str
    slices: list[SliceResult]
    phases: tuple[str, ...]
    series_uids: dict[str, str]
    model_name: str
    model_version: str
    model_sha256: str
    weights_kind: str
    device: str
    device_reason: str
    device_fallback: bool
    precision: str
    batch_size: int
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    software_version: str = __version__
    decided_by: str = ""

    @property
    def probability_text(self) -> str:
        """``"Probability of response 0.62 (mean over the slices)"``: the score and how it was
        made, in the words of the result panel and the case report."""
        how = probability_words(self.decided_by)
        return f"Probability of response {self.mean_probability:.2f}" + (f" ({how})" if how else "")

    def key_slice(self) -> int | None:
        """Index (into the study's pairs) of the key image: the slice with the highest responder
        probability among the slices that voted; None without slices.

        A lesion-head model lets only the slices in which it sees tumour vote and draws heat maps
        on those alone: the highest probability over *all* slices often fell on a tumour-free
        slice next to the tumour, shown with "not used by the model" and no heat map (the demo
        study with model 2026.6). With no voting slice (cannot happen for a finished vote) every
        slice is a candidate."""
        slices = self.slices
        candidates = [i for i, s in enumerate(slices) if s.votes] or list(range(len(slices)))
        return max(candidates, key=lambda i: slices[i].probability) if candidates else None

    @property
    def slice_labels(self) -> list[int]:
        """1 for responder, 0 for non-responder, per slice (the vote strip)."""
        return [int(s.label == RESPONDER) for s in self.slices]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (for ``--json`` output and the register)."""
        d = asdict(self)
        d["phases"] = list(self.phases)
        return d


@dataclass(frozen=True)
class Vote:
    """The outcome of the majority vote over slice probabilities."""

    label: str
    responder_votes: int
    total_votes: int
    mean_probability: float
    tie: bool

    @property
    def vote_fraction(self) -> float:
        return self.responder_votes / self.total_votes if self.total_votes else 0.0


def slice_label(probability: float, threshold: float = 0.5) -> str:
    """Responder when the responder probability is > ``threshold`` (the model's; 0.5 is the
    paper's argmax)."""
    return RESPONDER if probability > threshold else NON_RESPONDER


def majority_vote(probabilities: list[float], threshold: float = 0.5) -> Vote:
    """The paper's B-voting over slice probabilities, with this project's tie rule.

    Parameters
    ----------
    probabilities:
        Responder probability of each slice triplet.

    Returns
    -------
    Vote
        Majority of the slice labels; on an exact tie, responder only when the mean responder
        probability is > 0.5 (:data:`TIE_RULE`).
    """
    if not probabilities:
        raise ValueError("no slices to vote on")
    votes = sum(1 for p in probabilities if slice_label(p, threshold) == RESPONDER)
    total = len(probabilities)
    mean = float(sum(probabilities) / total)
    if 2 * votes > total:
        return Vote(RESPONDER, votes, total, mean, False)
    if 2 * votes < total:
        return Vote(NON_RESPONDER, votes, total, mean, False)
    return Vote(slice_label(mean, threshold), votes, total, mean, True)


#: A slice votes under ``lesion_weighted`` aggregation when the lesion area seen in it is at
#: least this share of the largest lesion area seen in any slice of the study.
LESION_VOTE_SHARE = 0.25
#: Below this total lesion area (input pixels over all slices) the model saw no tumour at all:
#: the lesion-weighted rule has nothing to weigh, the paper's vote over all slices is used and
#: the result says so.
MIN_LESION_PIXELS = 4.0


@dataclass(frozen=True)
class Aggregate:
    """A patient's vote and which slices took part in it."""

    vote: Vote
    voting: tuple[bool, ...]
    rule: str
    note: str = ""


def aggregate(probabilities: list[float], lesion_areas: list[float] | None = None,
              aggregation: str = "vote", threshold: float = 0.5, *,
              measures: np.ndarray | None = None, patient_head: PatientHead | None = None,
              phases: tuple[str, ...] = ()) -> Aggregate:
    """Slice results → the patient's result, by the model's aggregation rule.

    ``vote`` is :func:`majority_vote` over all slices (the paper). ``lesion_weighted`` (for
    lesion-head models): the slices whose lesion area is at least :data:`LESION_VOTE_SHARE` of
    the largest vote by majority with the usual tie rule, and the patient's probability is the
    mean over all slices weighted by lesion area — a slice without tumour says nothing about
    the tumour's response, so it should neither vote nor dilute the score. When the model saw
    no tumour anywhere the paper's vote is used and ``note`` says why.

    ``patient_head`` (with the slices' input-resolution ``measures`` and the model's
    ``phases``): the slices vote as for ``lesion_weighted`` — the split shown beside the
    result — but the probability and the call are the patient head's
    (:class:`~app.inference.patient_head.PatientHead`), never tied.
    """
    if aggregation == "patient_head":
        return _patient_head(probabilities, lesion_areas, threshold, measures, patient_head, phases)
    if aggregation == "vote" or lesion_areas is None:
        return Aggregate(majority_vote(probabilities, threshold), tuple(True for _ in probabilities), "vote")
    if aggregation != "lesion_weighted":
        raise ValueError(f"unknown aggregation {aggregation!r}")
    if len(lesion_areas) != len(probabilities):
        raise ValueError("one lesion area per slice is needed")
    areas = [max(0.0, float(a)) for a in lesion_areas]
    total = sum(areas)
    if not total >= MIN_LESION_PIXELS:
        return Aggregate(majority_vote(probabilities, threshold), tuple(True for _ in probabilities), "vote",
                         "the model saw no tumour in any slice; the vote of all slices is used")
    top = max(areas)
    voting = tuple(a >= LESION_VOTE_SHARE * top for a in areas)
    chosen = [p for p, v in zip(probabilities, voting, strict=True) if v]
    vote = majority_vote(chosen, threshold)
    weighted = float(sum(p * a for p, a in zip(probabilities, areas, strict=True)) / total)
    label = slice_label(weighted, threshold) if vote.tie else vote.label
    return Aggregate(Vote(label, vote.responder_votes, vote.total_votes, weighted, vote.tie), voting,
                     "lesion_weighted")


def _patient_head(probabilities: list[float], lesion_areas: list[float] | None, threshold: float,
                  measures: np.ndarray | None, head: PatientHead | None, phases: tuple[str, ...]) -> Aggregate:
    if lesion_areas is None or measures is None or head is None or not phases:
        raise ValueError("the patient head needs lesion areas, measures, the fitted head and the phases")
    slices = aggregate(probabilities, lesion_areas, "lesion_weighted", threshold)
    p = head.probability(patient_features(probabilities, lesion_areas, measures, phases), phases)
    label = RESPONDER if p > head.threshold else NON_RESPONDER
    note = ("the model saw no tumour in any slice: the patient-level probability measures no tumour "
            "and should not be relied on") if slices.note else ""
    vote = slices.vote
    return Aggregate(Vote(label, vote.responder_votes, vote.total_votes, p, False), slices.voting,
                     "patient_head", note)
