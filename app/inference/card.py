"""What a model card says about the model's evidence, in words a clinician reads (issue 17).

The result panel shows a label that looks like a clinical answer. Next to it the reader must
see how good the model proved on patients it was not trained on: the card's held-out
(``metrics["test"]``) patient-level AUC against its stated target. Rules, decided here once
for the panel, the model-description dialog and the PDF:

- **No held-out figures** → "not validated": how often the label is right is unknown.
- **Target**: ``metrics["target"]["patient_auc"]`` (or a number) when the card states one;
  otherwise, for a synthetic model whose card gives the cohort's Bayes-optimal AUC, the
  project's target of 90 % of it (``resources/models/README.md``); otherwise no target.
- **Below target** when the AUC is below the target, or when its 95 % confidence interval
  reaches down to 0.5 (the model cannot be told apart from chance), with or without a target.

Plain dict reading only (no torch): the card arrives as ``ModelDescription`` or a dict.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: Share of the Bayes-optimal AUC a synthetic demonstration model must reach (the project's
#: stated target, resources/models/README.md).
BAYES_TARGET_RATIO = 0.9
#: An AUC of 0.5 is a coin toss.
CHANCE_AUC = 0.5


def card_dict(description: Any) -> dict[str, Any]:
    """A model description (dataclass, dict or object with ``to_dict``) as a plain dict."""
    if description is None:
        return {}
    if isinstance(description, dict):
        return dict(description)
    if dataclasses.is_dataclass(description) and not isinstance(description, type):
        return dataclasses.asdict(description)
    to_dict = getattr(description, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
        if isinstance(result, dict):
            return result
    return {k: v for k, v in vars(description).items() if not k.startswith("_")}


@dataclass(frozen=True)
class HeldOutEvidence:
    """The card's held-out performance against its target.

    Attributes
    ----------
    auc, ci_low, ci_high, patients:
        Patient-level AUC on the held-out cohort with its 95 % CI and size (None when absent).
    target:
        The AUC the model should reach (None when the card states none and none can be derived).
    target_source:
        Where the target comes from ("stated in the model card", "90 % of the Bayes-optimal
        AUC 0.84 of the synthetic test cohort").
    """

    auc: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    patients: int | None = None
    target: float | None = None
    target_source: str = ""

    @property
    def validated(self) -> bool:
        """True when the card has a held-out AUC."""
        return self.auc is not None

    @property
    def chance_in_ci(self) -> bool:
        """True when the 95 % CI reaches 0.5: not distinguishable from chance."""
        return self.ci_low is not None and self.ci_low <= CHANCE_AUC

    @property
    def meets_target(self) -> bool:
        """True only for a held-out AUC at or above its target and clear of chance."""
        if self.auc is None or self.chance_in_ci:
            return False
        return self.target is None or self.auc >= self.target

    def headline(self) -> str:
        """One short line for next to the label."""
        if not self.validated:
            return "Not validated: no results on held-out patients"
        if self.meets_target:
            return "Validated on held-out patients"
        return "Below its target on held-out patients — do not rely on this label"

    def sentence(self) -> str:
        """What the figures mean, for a clinician (one or two sentences)."""
        if self.auc is None:
            return (
                "The model's description reports no results on patients it was not trained "
                "on, so how often this label is right is unknown."
            )
        ci = (
            f" (95 % CI {self.ci_low:.2f}–{self.ci_high:.2f})"
            if self.ci_low is not None and self.ci_high is not None
            else ""
        )
        n = f" on {self.patients} held-out patients" if self.patients else " on held-out patients"
        text = (
            f"AUC {self.auc:.2f}{ci}{n}: it ranks a responder above a non-responder in "
            f"{self.auc * 100:.0f} of 100 pairs (50 would be a coin toss)"
        )
        if self.target is not None:
            text += f"; its target is ≥ {self.target:.2f} ({self.target_source})"
        text += "."
        if self.chance_in_ci:
            text += " The result cannot be told apart from chance."
        elif not self.meets_target:
            text += " It does not reach its target."
        return text


def held_out_evidence(description: Any) -> HeldOutEvidence:
    """Read the held-out AUC and target from a model card (see the module's rules)."""
    metrics = card_dict(description).get("metrics") or {}
    if not isinstance(metrics, dict):
        return HeldOutEvidence(auc=None)
    test_doc = metrics.get("test")
    test: dict[str, Any] = test_doc if isinstance(test_doc, dict) else {}
    auc_doc = test.get("patient_auc")
    auc: float | None
    ci_low = ci_high = None
    if isinstance(auc_doc, dict):
        auc = _num(auc_doc.get("auc"))
        ci_low, ci_high = _num(auc_doc.get("ci_low")), _num(auc_doc.get("ci_high"))
    else:
        auc = _num(auc_doc)
    patients = test.get("patients")
    target, source = _target(metrics, test)
    return HeldOutEvidence(
        auc=auc,
        ci_low=ci_low,
        ci_high=ci_high,
        patients=int(patients) if isinstance(patients, (int, float)) else None,
        target=target,
        target_source=source,
    )


def training_summary(description: Any) -> str:
    """"240 patients (72 responders); synthetic phantoms" from the card's training data.

    Only the cohort's size and its responders are meaningful to a reader; internal counters
    (e.g. how many studies needed a phase confirmation) and file paths are left to the
    description's JSON tab.
    """
    doc = card_dict(description)
    data = doc.get("training_data") or {}
    if not isinstance(data, dict):
        return str(data)
    cohort_doc = data.get("cohort")
    cohort: dict[str, Any] = cohort_doc if isinstance(cohort_doc, dict) else data
    patients, responders = cohort.get("patients"), cohort.get("responders")
    parts: list[str] = []
    if isinstance(patients, int):
        text = f"{patients} patients"
        if isinstance(responders, int):
            text += f" ({responders} responders)"
        parts.append(text)
    kind = str(doc.get("weights_kind") or "")
    if "synthetic" in kind or "phantom" in kind:
        parts.append("synthetic phantoms, not patients")
    source = data.get("source")
    if isinstance(source, str) and source:
        parts.append(source)
    return "; ".join(parts)


def _target(metrics: dict[str, Any], test: dict[str, Any]) -> tuple[float | None, str]:
    stated = metrics.get("target")
    if isinstance(stated, dict):
        stated = stated.get("patient_auc")
    if _num(stated) is not None:
        return _num(stated), "stated in the model card"
    bayes = test.get("bayes_optimal")
    bayes_auc = _num(bayes.get("auc")) if isinstance(bayes, dict) else _num(bayes)
    if bayes_auc is not None:
        return (
            round(BAYES_TARGET_RATIO * bayes_auc, 2),
            f"{BAYES_TARGET_RATIO * 100:.0f} % of the best possible AUC {bayes_auc:.2f} on "
            "that synthetic cohort",
        )
    return None, ""


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


__all__ = ["HeldOutEvidence", "card_dict", "held_out_evidence", "training_summary"]
