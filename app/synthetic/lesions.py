"""HCC lesions of a synthetic patient: placement in the liver and their look in each phase.

A lesion is a lobulated sphere (radius modulated by three direction harmonics) with, from the
outside in: an optional capsule (2–3 mm rim that enhances late), viable tumour (arterial
hyperenhancement, portal washout, mosaic texture scaled by ``heterogeneity``) and a
non-enhancing necrotic core. Iodised oil from prior TACE is a few very bright (600–2000 HU)
blobs in and at the edge of the target lesion, identical in every phase. A portal-vein tumour
thrombus (PVTT) replaces the blood of the right and main portal vein by enhancing tumour and
widens the vein.

The first lesion is the target (largest) lesion; satellites are smaller and share the
enhancement pattern, without necrosis or oil.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from app.synthetic.anatomy import Anatomy
from app.synthetic.outcome import LatentFeatures


@dataclass(frozen=True)
class Blob:
    """A soft spherical blob: centre (mm, anatomy frame), radius (mm), amplitude (HU or HU/1)."""

    centre: tuple[float, float, float]
    radius: float
    amplitude: float


@dataclass(frozen=True)
class Lesion:
    """One HCC lesion in the anatomy frame.

    Attributes
    ----------
    centre:
        Centre (mm).
    diameter_mm:
        Nominal diameter (before lobulation, which changes the radius by up to ~±10 %).
    necrosis_fraction:
        Diameter of the non-enhancing core over the lesion's diameter.
    arterial_enhancement_hu, washout_hu:
        As in :class:`app.synthetic.outcome.LatentFeatures`.
    heterogeneity:
        0..1; the mosaic texture's amplitude is ``35 HU * heterogeneity`` in the arterial phase.
    capsule_mm:
        Rim thickness (0 = no capsule).
    lobulation:
        (direction x, y, z, frequency, phase, amplitude) per harmonic.
    texture:
        Mosaic blobs (amplitudes in units of the texture amplitude, ±1).
    oil:
        Iodised-oil deposits (amplitudes in HU, absolute).
    """

    centre: tuple[float, float, float]
    diameter_mm: float
    necrosis_fraction: float
    arterial_enhancement_hu: float
    washout_hu: float
    heterogeneity: float
    capsule_mm: float
    lobulation: tuple[tuple[float, float, float, float, float, float], ...]
    texture: tuple[Blob, ...]
    oil: tuple[Blob, ...]

    @property
    def radius(self) -> float:
        return 0.5 * self.diameter_mm

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Thrombus:
    """Portal-vein tumour thrombus along the right and main portal vein.

    ``fraction`` of the main portal vein (from the hilum towards the confluence) is filled.
    """

    fraction: float
    widen: float


def tumour_hu(liver_hu: float, phase: str, lesion_aphe: float, lesion_washout: float) -> float:
    """HU of viable tumour in ``phase`` given the patient's liver HU in that phase.

    Plain: 12 HU below liver (HCC is mildly hypodense); arterial: liver + APHE; portal: liver
    − washout; delayed: liver − 1.1 × washout.
    """
    if phase == "plain":
        return liver_hu - 12.0
    if phase == "arterial":
        return liver_hu + lesion_aphe
    if phase == "portal":
        return liver_hu - lesion_washout
    return liver_hu - 1.1 * lesion_washout


#: Texture amplitude per phase relative to the arterial one (mosaic shows most when enhancing).
TEXTURE_WEIGHT: dict[str, float] = {"plain": 0.3, "arterial": 1.0, "portal": 0.6, "delayed": 0.5}
#: Necrotic core HU (fluid/debris, non-enhancing).
NECROSIS_HU: float = 18.0
#: Capsule HU above liver in the portal and delayed phases.
CAPSULE_ENHANCEMENT_HU: float = 28.0


def _lobulation(rng: np.random.Generator) -> tuple[tuple[float, float, float, float, float, float], ...]:
    out = []
    for _ in range(3):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        out.append((float(d[0]), float(d[1]), float(d[2]), float(rng.uniform(2.0, 5.0)),
                    float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0.02, 0.05))))
    return tuple(out)


def _vec3(v: np.ndarray) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))


def _random_direction(rng: np.random.Generator) -> np.ndarray:
    d = rng.normal(size=3)
    return d / np.linalg.norm(d)


def _fits(anatomy: Anatomy, centre: np.ndarray, r: float, need: float) -> bool:
    """True when the centre and ``need`` × r away along the six axis directions lie in the liver."""
    pts = [centre] + [centre + need * r * np.array(v) for v in
                      ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))]
    for p in pts:
        if not bool(anatomy.inside_liver(np.array([p[0]]), np.array([p[1]]), float(p[2]))[0]):
            return False
    return True


def _place(anatomy: Anatomy, r: float, rng: np.random.Generator, avoid: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Draw a lesion centre inside the liver (rejection sampling with shrinking demands)."""
    a, b, span = anatomy.body_a, anatomy.body_b, anatomy.liver_span_mm
    for need in (0.7, 0.5, 0.3, 0.0):
        for _ in range(150):
            c = np.array([rng.uniform(-0.9 * a, 0.3 * a), rng.uniform(-0.7 * b, 0.5 * b),
                          rng.uniform(-0.9 * span, -0.08 * span)])
            if any(np.linalg.norm(c - q) < 0.8 * (r + rq) for q, rq in avoid):
                continue
            if _fits(anatomy, c, r, need):
                return c
    # Fall back to the centre of the right lobe at its widest level (always inside the liver).
    cx, cy, _, _ = anatomy.liver_sections(-0.32 * span)[0]
    return np.array([cx, cy, -0.32 * span])


def draw_lesions(features: LatentFeatures, anatomy: Anatomy, rng: np.random.Generator) -> list[Lesion]:
    """Place the target lesion and satellites with the patient's latent features."""
    lesions: list[Lesion] = []
    placed: list[tuple[np.ndarray, float]] = []
    for i in range(features.n_lesions):
        if i == 0:
            diameter = features.largest_diameter_mm
        else:
            diameter = float(min(rng.uniform(10.0, 35.0), 0.8 * features.largest_diameter_mm))
        r = 0.5 * diameter
        c = _place(anatomy, r, rng, placed)
        placed.append((c, r))
        necrosis = features.necrosis_fraction if i == 0 else 0.0
        texture = tuple(
            Blob(_vec3(c + _random_direction(rng) * r * rng.uniform(0.0, 0.8)),
                 float(r * rng.uniform(0.2, 0.4)), float(rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0)))
            for _ in range(7 if diameter > 25 else 3)
        )
        oil: tuple[Blob, ...] = ()
        if i == 0 and features.tace_oil:
            oil = tuple(
                Blob(_vec3(c + _random_direction(rng) * r * rng.uniform(0.1, 0.95)),
                     float(rng.uniform(2.5, max(3.0, min(9.0, 0.15 * r)))), float(rng.uniform(600.0, 2000.0)))
                for _ in range(int(rng.integers(2, 7)))
            )
        lesions.append(
            Lesion(
                centre=(float(c[0]), float(c[1]), float(c[2])),
                diameter_mm=float(diameter),
                necrosis_fraction=float(necrosis),
                arterial_enhancement_hu=features.arterial_enhancement_hu * (1.0 if i == 0 else rng.uniform(0.8, 1.1)),
                washout_hu=features.washout_hu,
                heterogeneity=features.heterogeneity * (1.0 if i == 0 else 0.5),
                capsule_mm=float(rng.uniform(2.0, 3.0)) if features.capsule else 0.0,
                lobulation=_lobulation(rng),
                texture=texture,
                oil=oil,
            )
        )
    return lesions


def draw_thrombus(features: LatentFeatures, rng: np.random.Generator) -> Thrombus | None:
    """The portal-vein tumour thrombus, if the patient has one."""
    if not features.pvtt:
        return None
    return Thrombus(fraction=float(rng.uniform(0.4, 0.9)), widen=float(rng.uniform(1.2, 1.45)))
