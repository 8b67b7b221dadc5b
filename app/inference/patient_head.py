"""The patient-level head: one logistic regression on measures of the patient's tumour.

Why (docs/learning.md, "the model's own masks"): a lesion-head network segments the tumour well,
but it measures the tumour's enhancement on its stride-4 feature grid, where the cells of a
small lesion mix tumour and liver and dilute the contrast that carries the response signal.
Measured once more at the input resolution under the network's own (upsampled, hard) masks, and
pooled over the patient's slices, the same quantities rank patients almost as well as the
phantoms' true masks do. This module turns a study's per-slice outputs into those patient
features and applies a regression fitted after training on patients the network did not train
on (``hcc-response fit-patient-head``); its parameters live in the model's configuration, so
the model file carries them and nothing here needs torch.

Per slice the network reports (:data:`measure_names`): the mean window intensity of the lesion
and of the liver in each phase under its hard masks, the lesion area (input pixels), the
lesion's necrotic share, the spread of intensity inside the viable tumour and the mean intensity
of its rim in each phase, and the number of separate lesions. Per patient (:func:`feature_names`):

* ``slice_score`` — the mean slice logit weighted by the lesion area the network sees (the
  ``lesion_weighted`` score, on the logit scale);
* ``contrast_<phase>`` — lesion minus liver intensity, weighted by each slice's lesion area;
* ``log_total_area`` / ``log_largest_area`` — log(1 + lesion pixels) over all slices / in the
  largest slice;
* ``necrotic_share`` — area-weighted necrotic share;
* ``tumour_slices`` — slices whose lesion area is at least a quarter of the largest;
* ``lesion_<phase>`` — lesion intensity, area-weighted;
* ``spread_<phase>`` — the intensity's standard deviation inside the viable tumour,
  area-weighted (a heterogeneous, mosaic tumour responds less);
* ``rim_<phase>`` — the lesion's one-pixel rim minus the whole lesion, area-weighted (an
  enhancing capsule responds more);
* ``lesion_count`` — the most separate lesions seen in one slice (multifocal: less).

The first eleven are those of the first heads (model 2026.4); the rest were added after
(docs/learning.md, "Heads that see more of the tumour") and come after them, so an older head
still finds its columns by name.

Areas are in input pixels of the model's crop and slice counts depend on the slice spacing:
a site whose scanner differs from the training data refits the head on its own cohort.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Below this total lesion area (input pixels over the slices) per-slice weights are uniform.
MIN_WEIGHT_PIXELS = 4.0
#: A slice counts as a tumour slice when its lesion area is at least this share of the largest.
TUMOUR_SLICE_SHARE = 0.25
#: Probabilities are clipped to this distance from 0 and 1 before their logit is taken.
_P_CLIP = 1e-6


class PatientHeadError(ValueError):
    """A patient head that does not fit the model or the outputs it is given."""


def measure_names(phases: Sequence[str]) -> tuple[str, ...]:
    """Columns of the per-slice measures a lesion-head network reports, in order."""
    return (tuple(f"lesion_intensity_{p}" for p in phases) + tuple(f"liver_intensity_{p}" for p in phases)
            + ("lesion_pixels", "necrotic_share")
            + tuple(f"viable_spread_{p}" for p in phases) + tuple(f"rim_intensity_{p}" for p in phases)
            + ("lesion_components",))


def n_measures(n_phases: int) -> int:
    """How many per-slice measures a lesion-head network with ``n_phases`` phases reports."""
    return 4 * n_phases + 3


def _first_features(phases: Sequence[str]) -> tuple[str, ...]:
    """The features of the first patient heads (model 2026.4), in their order; later features
    come after them."""
    return (("slice_score",) + tuple(f"contrast_{p}" for p in phases)
            + ("log_total_area", "log_largest_area", "necrotic_share", "tumour_slices")
            + tuple(f"lesion_{p}" for p in phases))


def feature_names(phases: Sequence[str]) -> tuple[str, ...]:
    """Every patient feature :func:`patient_features` computes, in order."""
    return (_first_features(phases) + tuple(f"spread_{p}" for p in phases)
            + tuple(f"rim_{p}" for p in phases) + ("lesion_count",))


#: Named feature sets (``fit-patient-head --features``). ``measures``, the default: everything
#: but the network's own score — fitted on the patients the network trained on, that score is
#: optimistic there and the regression trusts it too much (0.014–0.025 AUC lost on fresh patients),
#: and fitted fairly on fresh patients it added nothing to the measures (docs/learning.md, "Heads
#: that see more of the tumour"). ``all``: every feature. ``first``: the eleven of model 2026.4.
FEATURE_SETS: tuple[str, ...] = ("measures", "all", "first")


def named_features(name: str, phases: Sequence[str]) -> tuple[str, ...]:
    """The features of the set ``name`` (:data:`FEATURE_SETS`) for ``phases``."""
    if name == "all":
        return feature_names(phases)
    if name == "measures":
        return tuple(f for f in feature_names(phases) if f != "slice_score")
    if name == "first":
        return _first_features(phases)
    raise PatientHeadError(f"unknown feature set {name!r}; expected one of {', '.join(FEATURE_SETS)}")


def _weights(values: np.ndarray) -> np.ndarray:
    total = float(values.sum())
    if total >= MIN_WEIGHT_PIXELS:
        return values / total
    return np.full(values.shape, 1.0 / max(values.size, 1))


def patient_features(probabilities: Sequence[float], lesion_areas: Sequence[float],
                     measures: np.ndarray | Sequence[Sequence[float]], phases: Sequence[str]) -> np.ndarray:
    """The patient's features (:func:`feature_names` order) from one study's slice outputs.

    ``probabilities`` and ``lesion_areas`` are the slices' responder probabilities and the
    lesion areas the network sees on its feature grid (the ``lesion_weighted`` weights);
    ``measures`` ``[slices, len(measure_names(phases))]`` are the input-resolution measures.
    """
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _P_CLIP, 1.0 - _P_CLIP)
    grid_area = np.maximum(np.asarray(lesion_areas, dtype=np.float64), 0.0)
    m = np.asarray(measures, dtype=np.float64)
    n_ph = len(phases)
    if p.ndim != 1 or p.size == 0:
        raise PatientHeadError("a patient needs at least one slice")
    if grid_area.shape != p.shape or m.shape != (p.size, n_measures(n_ph)):
        raise PatientHeadError(
            f"slice outputs do not match: {p.size} probabilities, {grid_area.size} areas, "
            f"measures {list(m.shape)} (expected [{p.size}, {n_measures(n_ph)}])")
    lesion, liver = m[:, :n_ph], m[:, n_ph:2 * n_ph]
    area = np.maximum(m[:, 2 * n_ph], 0.0)
    necrosis = m[:, 2 * n_ph + 1]
    spread = m[:, 2 * n_ph + 2:3 * n_ph + 2]
    rim = m[:, 3 * n_ph + 2:4 * n_ph + 2]
    components = m[:, 4 * n_ph + 2]
    w_score = _weights(grid_area)
    w = _weights(area)
    largest = float(area.max())
    tumour_slices = float((area >= TUMOUR_SLICE_SHARE * largest).sum()) if largest > 0 else 0.0
    logits = np.log(p / (1.0 - p))
    return np.concatenate([
        [float(logits @ w_score)],
        w @ (lesion - liver),
        [math.log1p(float(area.sum())), math.log1p(largest), float(w @ necrosis), tumour_slices],
        w @ lesion,
        w @ spread,
        w @ (rim - lesion),
        [float(components.max())],
    ])


@dataclass(frozen=True)
class PatientHead:
    """A fitted logistic regression on patient features, and its decision threshold.

    ``features`` names the columns used (a subset of :func:`feature_names`, chosen when it was
    fitted); ``mean``/``scale`` standardise them; ``probability = sigmoid(z · weights + bias)``;
    the patient is called a responder when the probability is > ``threshold``. ``fitted_on``
    says on which patients (for the model card and the record).
    """

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float
    fitted_on: str = ""

    def __post_init__(self) -> None:
        for name in ("features", "mean", "scale", "weights"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        n = len(self.features)
        if n == 0 or len(set(self.features)) != n:
            raise PatientHeadError("a patient head needs distinct feature names")
        if not len(self.mean) == len(self.scale) == len(self.weights) == n:
            raise PatientHeadError(f"patient head: {n} features but {len(self.mean)} means, "
                                   f"{len(self.scale)} scales, {len(self.weights)} weights")
        numbers = (*self.mean, *self.scale, *self.weights, self.bias)
        if not all(math.isfinite(float(v)) for v in numbers) or min(self.scale) <= 0:
            raise PatientHeadError("patient head parameters must be finite, with positive scales")
        if not 0.0 < float(self.threshold) < 1.0:
            raise PatientHeadError(f"patient head threshold must be between 0 and 1, got {self.threshold}")

    def check_phases(self, phases: Sequence[str]) -> None:
        """Refuse a head whose features this software does not compute for ``phases`` (a file
        from another version or a head fitted for other phases would score other numbers)."""
        unknown = [f for f in self.features if f not in feature_names(phases)]
        if unknown:
            raise PatientHeadError(f"patient head uses feature(s) not computed for phases "
                                   f"{list(phases)}: {', '.join(unknown)}")

    def probability(self, features: np.ndarray, phases: Sequence[str]) -> float:
        """Responder probability for one patient's full feature vector (:func:`feature_names`)."""
        names = feature_names(phases)
        x = np.asarray(features, dtype=np.float64)[[names.index(f) for f in self.features]]
        z = float(((x - np.asarray(self.mean)) / np.asarray(self.scale)) @ np.asarray(self.weights) + self.bias)
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": [float(v) for v in self.mean],
                "scale": [float(v) for v in self.scale], "weights": [float(v) for v in self.weights],
                "bias": float(self.bias), "threshold": float(self.threshold), "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, d: Any) -> PatientHead:
        if not isinstance(d, dict):
            raise PatientHeadError("the patient head must be a JSON object")
        known = {"features", "mean", "scale", "weights", "bias", "threshold", "fitted_on"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise PatientHeadError(f"unknown patient head key(s): {', '.join(unknown)}")
        try:
            return cls(tuple(str(f) for f in d["features"]), tuple(float(v) for v in d["mean"]),
                       tuple(float(v) for v in d["scale"]), tuple(float(v) for v in d["weights"]),
                       float(d["bias"]), float(d["threshold"]), str(d.get("fitted_on", "")))
        except PatientHeadError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise PatientHeadError(f"invalid patient head: {exc}") from exc
