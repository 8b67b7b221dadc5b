"""Latent tumour features and the synthetic outcome model.

Each synthetic patient has tumour features drawn at random (:func:`draw_features`); every one of
them is visible in the images the renderer produces (size and number of lesions, enhancement,
necrosis, heterogeneity, capsule, iodised oil, portal-vein tumour thrombus). The probability of
response (RECIST 1.1 CR/PR) is a logistic function of these features; the label and the RECIST
category are then drawn from that probability, so that no image model can exceed the
Bayes-optimal AUC of ``p_true``.

The model (made up for the phantom; plausible in direction, not a clinical claim)::

    logit(p) = B0
             + 0.045 * (arterial_enhancement_hu - 45)   # hypervascular tumours respond more
             + 0.030 * (washout_hu - 20)                # typical washout: more
             - 0.025 * (largest_diameter_mm - 55)       # bigger tumour burden: less
             - 0.45  * min(n_lesions - 1, 4)            # multifocal: less
             - 3.5   * (necrosis_fraction - 0.15)       # pre-existing necrosis: less
             - 2.0   * (heterogeneity - 0.45)           # heterogeneous: less
             + 0.5   * capsule                          # encapsulated: more
             + 0.9   * tace_oil                         # compact oil after prior TACE: more
             - 1.6   * pvtt                             # portal-vein tumour thrombus: less

with ``B0 = -0.70``. These coefficients give, on 1,000 sampled patients, a prevalence of about
0.28 (the paper's 27–28 %) and an AUC of ``p_true`` against the drawn label of about 0.85
(between 0.80 and 0.90): a learnable but not trivial signal. ``tests/test_synthetic.py`` and
``bench/demo_data_stats.py`` check both numbers.

RECIST category given the label: a responder is CR with probability 0.12, else PR; a
non-responder is PD with probability 0.15 + 0.30 * (1 - p_true) ** 2, else SD (stable disease is
the commoner non-response under lenvatinib plus an ICI).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Intercept and coefficients of the logistic outcome model (see the module docstring).
INTERCEPT: float = -0.70
COEFFICIENTS: dict[str, float] = {
    "arterial_enhancement_hu": 0.045,
    "washout_hu": 0.030,
    "largest_diameter_mm": -0.025,
    "extra_lesions": -0.45,
    "necrosis_fraction": -3.5,
    "heterogeneity": -2.0,
    "capsule": 0.5,
    "tace_oil": 0.9,
    "pvtt": -1.6,
}
#: Centring constants subtracted before the coefficients apply (so B0 sets the base rate).
CENTRES: dict[str, float] = {
    "arterial_enhancement_hu": 45.0,
    "washout_hu": 20.0,
    "largest_diameter_mm": 55.0,
    "extra_lesions": 0.0,
    "necrosis_fraction": 0.15,
    "heterogeneity": 0.45,
    "capsule": 0.0,
    "tace_oil": 0.0,
    "pvtt": 0.0,
}

RECIST_RESPONDER = ("CR", "PR")
RECIST_NON_RESPONDER = ("SD", "PD")


@dataclass(frozen=True)
class LatentFeatures:
    """Image-visible tumour features of one synthetic patient.

    Attributes
    ----------
    largest_diameter_mm:
        Diameter of the largest (target) lesion.
    n_lesions:
        Number of intrahepatic lesions (1 = single, more = multifocal).
    necrosis_fraction:
        Fraction of the largest lesion's diameter taken by its non-enhancing core.
    arterial_enhancement_hu:
        Arterial-phase HU of viable tumour above the liver (negative: hypo-enhancing).
    washout_hu:
        Portal-phase HU of the liver above viable tumour (positive: washout).
    heterogeneity:
        0..1, amplitude of internal mosaic texture.
    capsule:
        Enhancing rim in the portal phase.
    tace_oil:
        Iodised-oil deposits from prior TACE in the largest lesion.
    pvtt:
        Portal-vein tumour thrombus (enhancing filling defect of the portal vein).
    """

    largest_diameter_mm: float
    n_lesions: int
    necrosis_fraction: float
    arterial_enhancement_hu: float
    washout_hu: float
    heterogeneity: float
    capsule: bool
    tace_oil: bool
    pvtt: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Outcome:
    """The drawn outcome: true probability, binary label and RECIST category."""

    p_true: float
    responder: int
    recist: str


def draw_features(rng: np.random.Generator) -> LatentFeatures:
    """Draw one patient's latent tumour features.

    The marginal distributions loosely follow unresectable HCC cohorts: a median target lesion
    of ~5.5 cm, about half multifocal, a quarter with PVTT (more often with big tumours),
    a third after prior TACE. The draw order is fixed, so a seed always gives the same patient.
    """
    diameter = float(np.clip(rng.lognormal(np.log(55.0), 0.45), 15.0, 140.0))
    multifocal = rng.random() < 0.5
    n_lesions = int(1 + (1 + min(rng.poisson(1.0), 5) if multifocal else 0))
    necrosis = float(np.clip(rng.beta(1.3, 5.0) * (0.6 + diameter / 80.0), 0.0, 0.7))
    aphe = float(np.clip(rng.normal(45.0, 25.0), -10.0, 110.0))
    washout = float(np.clip(rng.normal(20.0, 14.0), -10.0, 60.0))
    heterogeneity = float(np.clip(rng.beta(2.0, 2.5), 0.0, 1.0))
    capsule = bool(rng.random() < 0.5)
    tace_oil = bool(rng.random() < 0.3)
    pvtt = bool(rng.random() < 0.12 + 0.25 * min(diameter / 100.0, 1.0))
    return LatentFeatures(
        largest_diameter_mm=diameter,
        n_lesions=n_lesions,
        necrosis_fraction=necrosis,
        arterial_enhancement_hu=aphe,
        washout_hu=washout,
        heterogeneity=heterogeneity,
        capsule=capsule,
        tace_oil=tace_oil,
        pvtt=pvtt,
    )


def _covariates(f: LatentFeatures) -> dict[str, float]:
    return {
        "arterial_enhancement_hu": f.arterial_enhancement_hu,
        "washout_hu": f.washout_hu,
        "largest_diameter_mm": f.largest_diameter_mm,
        "extra_lesions": float(min(f.n_lesions - 1, 4)),
        "necrosis_fraction": f.necrosis_fraction,
        "heterogeneity": f.heterogeneity,
        "capsule": float(f.capsule),
        "tace_oil": float(f.tace_oil),
        "pvtt": float(f.pvtt),
    }


def linear_predictor(features: LatentFeatures) -> float:
    """The logit of the response probability (see the module docstring for the formula)."""
    cov = _covariates(features)
    return INTERCEPT + sum(COEFFICIENTS[k] * (cov[k] - CENTRES[k]) for k in COEFFICIENTS)


def response_probability(features: LatentFeatures) -> float:
    """True probability of response (CR/PR) for these features."""
    return float(1.0 / (1.0 + np.exp(-linear_predictor(features))))


def draw_outcome(p_true: float, rng: np.random.Generator) -> Outcome:
    """Draw the label (Bernoulli ``p_true``) and a RECIST category consistent with it."""
    responder = int(rng.random() < p_true)
    if responder:
        recist = "CR" if rng.random() < 0.12 else "PR"
    else:
        p_pd = 0.15 + 0.30 * (1.0 - p_true) ** 2
        recist = "PD" if rng.random() < p_pd else "SD"
    return Outcome(p_true=float(p_true), responder=responder, recist=recist)


def model_description() -> dict[str, Any]:
    """The outcome model as data, written into every ``truth.json``."""
    return {
        "form": "p = 1 / (1 + exp(-(intercept + sum(coef[k] * (x[k] - centre[k])))))",
        "intercept": INTERCEPT,
        "coefficients": dict(COEFFICIENTS),
        "centres": dict(CENTRES),
        "notes": "extra_lesions = min(n_lesions - 1, 4); booleans are 0/1",
    }


def rank_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the Mann–Whitney rank statistic (ties count one half).

    A small local helper so the generator does not depend on the evaluation package.
    """
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels).astype(bool)
    n_pos = int(labels.sum())
    n_neg = int(labels.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both classes")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, dtype=float)
    sorted_scores = scores[order]
    # Average ranks over ties so that equal scores contribute 1/2.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
