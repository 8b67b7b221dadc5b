"""The model's decision threshold, chosen on patients it was not trained on.

Why: the paper calls a slice a responder when its probability is > 0.5 (the softmax argmax).
A model trained towards the generator's probability of response (``--soft-target-column
p_true``) learns calibrated probabilities, which sit around the cohort's ~30 % response rate:
at 0.5 it calls almost everyone a non-responder (sensitivity 0.24 for demo model 2026.3 on its
held-out cohort). The threshold that balances sensitivity and specificity of the patient call
(the call predict() makes) is chosen on validation or calibration patients and
recorded in the model's configuration, so the app, ``evaluate`` and the register all decide
with it. The test cohort is never used to choose it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from app.training.evaluate import ScoredCohort

#: Candidate thresholds: a grid fine enough for a few hundred patients.
GRID = tuple(round(float(t), 2) for t in np.arange(0.05, 0.951, 0.01))


@dataclass(frozen=True)
class ThresholdChoice:
    """The chosen threshold and what it gave on the patients it was chosen on."""

    threshold: float
    sensitivity: float
    specificity: float
    patients: int
    chosen_on: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_threshold(scored: ScoredCohort, chosen_on: str) -> ThresholdChoice:
    """The threshold of ``scored``'s patient call (the call predict() makes, by the model's
    aggregation) with the best balanced operating point (:func:`best_balanced`)."""
    return best_balanced(np.asarray(scored.patient_labels),
                         lambda t: replace(scored, threshold=t).patient_call, chosen_on)


def best_balanced(labels: np.ndarray, call_at: Callable[[float], np.ndarray], chosen_on: str
                  ) -> ThresholdChoice:
    """The grid threshold whose patient calls (``call_at(t)``, 1 = responder) have the best
    balanced operating point: the largest min(sensitivity, specificity), then the largest
    Youden's J, then the one closest to 0.5. (Youden's J alone picked 0.19 on a calibration
    cohort — sensitivity 0.93, specificity 0.36 — an operating point no clinician would accept
    for either kind of patient.)

    Raises
    ------
    ValueError
        When the patients are all of one class (no J to maximise).
    """
    y = np.asarray(labels)
    if y.min() == y.max():
        raise ValueError("a threshold needs responders and non-responders")
    best: tuple[tuple[float, float, float], float, float, float] | None = None
    for t in GRID:
        call = call_at(t)
        sens = float(np.mean(call[y == 1] == 1))
        spec = float(np.mean(call[y == 0] == 0))
        key = (min(sens, spec), sens + spec - 1.0, -abs(t - 0.5))
        if best is None or key > best[0]:
            best = (key, t, sens, spec)
    assert best is not None
    return ThresholdChoice(best[1], best[2], best[3], int(y.size), chosen_on)
