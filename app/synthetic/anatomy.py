"""Phantom anatomy of one synthetic patient: geometry in mm and HU per contrast phase.

Coordinates are DICOM patient coordinates (LPS): ``x`` towards the patient's left, ``y``
posterior, ``z`` towards the head. The *anatomy frame* used here has the body centre at
``x = y = 0`` and the top of the liver dome at ``z = 0``; the renderer maps table positions into
this frame with the patient's position on the table and the per-phase breath-hold shift
(:class:`PhaseGeometry`), so the phases of one study do not line up exactly.

Layout (axial view, as radiologists see it: patient's right on the image's left)::

    anterior (y < 0)
        left lobe of the liver     stomach
    right lobe of the liver   PV  aorta        spleen
        IVC              vertebral body
            right kidney     spine      left kidney  (lower levels)
    posterior (y > 0)

- the liver fills the right upper quadrant under the right dome of the diaphragm; its
  cranio-caudal span ``liver_span_mm`` is 150–200 mm, widest about a third of the way down,
  with a left lobe crossing the midline anteriorly in its upper half;
- the aorta lies anterior-left of the vertebral body, the IVC right of it and anterior;
- the portal vein runs from the confluence (behind the pancreas neck, in front of the IVC) up
  and to the right into the liver hilum, where it splits into right and left branches;
- three hepatic veins converge on the IVC just below the dome;
- spleen left-posterior, kidneys posterior beside the spine and lower (the right one lower),
  lungs above and behind the diaphragm domes.

Enhancement (HU) per phase is in :data:`HU_TABLE`; each patient varies the plain liver
density, the arterial timing (early vs late arterial: ``arterial_timing`` 0..1 interpolates
between the two arterial columns) and the strength of enhancement (``enhancement_scale``), so
that telling phases apart from the image is possible but not trivial.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: Contrast phases the renderer knows ("delayed" is written as an "other" series).
RENDER_PHASES: tuple[str, ...] = ("plain", "arterial", "portal", "delayed")

#: HU per tissue: (plain, early arterial, late arterial, portal venous, delayed ~180 s).
#: Non-enhancing tissues repeat one value. Targets from the issue: aorta ~40/280/160,
#: portal vein ~40/110/180, liver ~55/70/110; delayed aorta ~120, PV ~130, liver ~95.
HU_TABLE: dict[str, tuple[float, float, float, float, float]] = {
    "air": (-1000, -1000, -1000, -1000, -1000),
    "lung": (-860, -860, -860, -860, -860),
    "fat": (-100, -100, -100, -100, -100),
    "table": (-250, -250, -250, -250, -250),
    "muscle": (50, 55, 58, 62, 60),
    "bone_cortex": (750, 750, 750, 750, 750),
    "bone_marrow": (220, 225, 228, 232, 230),
    "csf": (10, 10, 10, 10, 10),
    "aorta": (40, 330, 250, 160, 122),
    "heart": (40, 300, 240, 165, 125),
    "ivc": (40, 70, 100, 150, 125),
    "portal": (40, 75, 145, 180, 130),
    "hepatic_vein": (40, 45, 70, 165, 125),
    "liver": (55, 62, 78, 110, 95),
    "spleen": (45, 105, 135, 120, 100),
    "kidney_cortex": (32, 180, 200, 170, 140),
    "kidney_medulla": (32, 60, 100, 160, 150),
    "pancreas": (40, 100, 120, 95, 80),
    "bowel_wall": (40, 80, 95, 100, 85),
    "bowel_content": (15, 15, 15, 15, 15),
    "gallbladder": (8, 8, 8, 8, 8),
}


def tissue_hu(table_row: tuple[float, ...], phase: str, timing: float, scale: float) -> float:
    """HU of one tissue in ``phase`` for a patient's arterial timing and enhancement strength.

    Enhancement (HU above plain) is scaled by ``scale``; the arterial value interpolates
    linearly between the early (``timing`` 0) and late (``timing`` 1) arterial columns.
    """
    plain, early, late, portal, delayed = table_row
    if phase == "plain":
        return float(plain)
    if phase == "arterial":
        target = (1.0 - timing) * early + timing * late
    elif phase == "portal":
        target = portal
    elif phase == "delayed":
        target = delayed
    else:
        raise ValueError(f"unknown phase {phase!r}")
    return float(plain + scale * (target - plain))


@dataclass(frozen=True)
class Tube:
    """A vessel segment: a capsule (cylinder with round ends) from ``p0`` to ``p1`` (mm)."""

    name: str
    tissue: str
    p0: tuple[float, float, float]
    p1: tuple[float, float, float]
    radius: float


@dataclass(frozen=True)
class Ellipsoid:
    """An axis-aligned-in-z ellipsoid rotated by ``angle`` (radians) in the axial plane."""

    name: str
    centre: tuple[float, float, float]
    semi: tuple[float, float, float]
    angle: float = 0.0


@dataclass(frozen=True)
class PhaseGeometry:
    """Where the anatomy is on the table in one phase.

    Attributes
    ----------
    shift_mm:
        (dx, dy, dz) added to anatomy-frame coordinates to get patient (table) coordinates: the
        patient's position on the table plus this phase's breath-hold difference.
    breath_hold_mm:
        The phase-specific part of ``shift_mm`` (cranio-caudal up to ±10 mm, in-plane ±3 mm).
    z_start:
        Table position (mm) of the first (most cranial) slice centre of the series.
    """

    shift_mm: tuple[float, float, float]
    breath_hold_mm: tuple[float, float, float]
    z_start: float


@dataclass
class Anatomy:
    """Per-patient geometry and contrast behaviour (everything the renderer needs but lesions).

    All lengths in mm in the anatomy frame (see the module docstring).
    """

    body_a: float
    body_b: float
    fat_mm: float
    wall_mm: float
    liver_span_mm: float
    liver_width: float
    liver_depth: float
    left_lobe: float
    cirrhosis: float
    nodularity: tuple[tuple[int, float, float], ...]
    liver_plain_hu: float
    fat_hu: float
    arterial_timing: float
    enhancement_scale: float
    portal_scale: float
    dome_table_z: float
    table_offset_xy: tuple[float, float]
    fov_mm: float
    spine_y: float
    vertebra_r: float
    aorta: Tube
    ivc: Tube
    vessels_in_liver: tuple[Tube, ...]
    vessels_outside: tuple[Tube, ...]
    main_portal: Tube
    right_portal: Tube
    spleen: Ellipsoid
    kidneys: tuple[Ellipsoid, Ellipsoid]
    gallbladder: Ellipsoid | None
    stomach: Ellipsoid
    bowel: tuple[Ellipsoid, ...]
    pancreas: Tube
    rib_phases: tuple[float, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    # --- the liver as an implicit shape -----------------------------------------------------

    def liver_z_extent(self) -> tuple[float, float]:
        """(z_low, z_high) of the liver in the anatomy frame (the dome is at 0)."""
        return (-self.liver_span_mm, 0.0)

    def liver_sections(self, z: float) -> list[tuple[float, float, float, float]]:
        """Elliptic cross-sections ``(cx, cy, ax, by)`` whose union is the liver at height ``z``.

        The right lobe's profile ``sqrt(sin(pi * t**0.6))`` (``t`` = depth below the dome over
        the span) gives a rounded dome, the widest section at ~30 % of the span and a tapering
        inferior tip that drifts laterally and posteriorly, as the right lobe does. The left lobe
        is a second ellipse anterior and across the midline in the upper half.
        """
        t = -z / self.liver_span_mm
        if t < 0.0 or t > 1.0:
            return []
        s = float(np.sqrt(max(np.sin(np.pi * t**0.6), 0.0)))
        if s <= 0.02:
            return []
        a, b = self.body_a, self.body_b
        sections = [
            (
                -0.42 * a - 0.12 * a * t,
                -0.08 * b + 0.25 * b * t,
                self.liver_width * a * s * (1.0 - 0.35 * t),
                self.liver_depth * b * s * (1.0 - 0.25 * t),
            )
        ]
        if 0.04 < t < 0.6:
            u = (t - 0.04) / 0.56
            sl = float(np.sin(np.pi * u**0.8)) * self.left_lobe
            if sl > 0.05:
                sections.append((0.02 * a + 0.1 * a * sl, -0.42 * b, 0.42 * a * sl, 0.22 * b * sl))
        return sections

    def inside_liver(self, x: np.ndarray, y: np.ndarray, z: float) -> np.ndarray:
        """Boolean mask of points ``(x, y)`` at height ``z`` inside the liver (anatomy frame).

        Cirrhotic nodularity modulates the boundary with a few angular harmonics. The liver is
        also clipped to the inside of the abdominal wall.
        """
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        inside = np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=bool)
        for cx, cy, ax, by in self.liver_sections(z):
            dx = (x - cx) / ax
            dy = (y - cy) / by
            rho2 = dx * dx + dy * dy
            if self.cirrhosis > 0.0:
                theta = np.arctan2(dy, dx)
                mod = np.zeros_like(rho2)
                for k, ph, zk in self.nodularity:
                    mod += np.cos(k * theta + ph + zk * z)
                limit = (1.0 + self.cirrhosis * mod / len(self.nodularity)) ** 2
                inside |= rho2 < limit
            else:
                inside |= rho2 < 1.0
        ia, ib = self.cavity_semi()
        inside &= (x / ia) ** 2 + (y / ib) ** 2 < 1.0
        return inside

    def cavity_semi(self) -> tuple[float, float]:
        """Semi-axes of the abdominal cavity (inside fat and muscle of the wall)."""
        t = self.fat_mm + self.wall_mm
        return self.body_a - t, self.body_b - t

    def hu(self, phase: str) -> dict[str, float]:
        """HU of every tissue in ``phase`` for this patient."""
        out: dict[str, float] = {}
        for tissue, row in HU_TABLE.items():
            scale = self.enhancement_scale * (self.portal_scale if phase in ("portal", "delayed") else 1.0)
            out[tissue] = tissue_hu(row, phase, self.arterial_timing, scale)
        delta = self.liver_plain_hu - HU_TABLE["liver"][0]
        out["liver"] += delta
        out["fat"] = self.fat_hu
        return out

    def landmarks(self) -> dict[str, list[float]]:
        """Anatomy-frame points useful to measure HU or check locators (mm, LPS)."""
        mp = self.main_portal
        mid_pv = [0.5 * (mp.p0[i] + mp.p1[i]) for i in range(3)]
        return {
            "aorta_centre_at_dome_minus_100": [self.aorta.p0[0], self.aorta.p0[1], -100.0],
            "ivc_centre_at_dome_minus_150": [self.ivc.p0[0], self.ivc.p0[1], -150.0],
            "portal_vein_mid": mid_pv,
            "portal_confluence": list(mp.p0),
            "portal_hilum": list(mp.p1),
            "liver_dome": [-0.42 * self.body_a, -0.08 * self.body_b, 0.0],
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (for ``truth.json``)."""
        d = asdict(self)
        return d


def draw_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one patient's anatomy (body habitus, organ sizes, contrast behaviour, position).

    Variation between patients is what makes the downstream range finder and phase classifier
    earn their keep: body size, liver span and shape, cirrhosis, plain liver density (steatosis
    lowers it), early vs late arterial timing, weak vs strong enhancement.
    """
    a = float(rng.uniform(140.0, 185.0))  # half width (x)
    b = float(rng.uniform(0.68, 0.8) * a)  # half depth (y)
    fat = float(rng.uniform(8.0, 35.0))
    wall = float(rng.uniform(7.0, 13.0))
    span = float(rng.uniform(150.0, 200.0))
    cirrhotic = rng.random() < 0.6
    cirrhosis = float(rng.uniform(0.025, 0.06)) if cirrhotic else 0.0
    nod = tuple(
        (int(k), float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(-0.05, 0.05)))
        for k in rng.choice(np.arange(5, 19), size=4, replace=False)
    )
    liver_plain = float(np.clip(rng.normal(56.0, 6.0), 38.0, 68.0))
    timing = float(rng.uniform(0.0, 1.0))
    scale = float(rng.uniform(0.8, 1.2))
    portal_scale = float(rng.uniform(0.9, 1.1))
    dome_z = float(rng.uniform(-180.0, -40.0))
    off = (float(rng.uniform(-12.0, 12.0)), float(rng.uniform(-20.0, 5.0)))
    fov = float(np.clip(np.ceil(2.0 * (a + 15.0) / 10.0) * 10.0, 320.0, 500.0))

    spine_y = 0.38 * b
    vr = float(rng.uniform(15.0, 19.0))
    ar = float(rng.uniform(10.0, 13.5))
    aorta_xy = (0.11 * a + 4.0, spine_y - vr - ar - 2.0)
    aorta = Tube("aorta", "aorta", (aorta_xy[0], aorta_xy[1], 80.0), (aorta_xy[0], aorta_xy[1], -400.0), ar)
    ivc_r = float(rng.uniform(10.0, 13.0))
    ivc_xy = (-0.16 * a - 6.0, spine_y - vr - ivc_r - 6.0)
    ivc = Tube("ivc", "ivc", (ivc_xy[0], ivc_xy[1], 80.0), (ivc_xy[0], ivc_xy[1], -400.0), ivc_r)

    # Portal venous system: confluence behind the pancreas neck, in front of the IVC.
    conf = (0.02 * a, ivc_xy[1] - ivc_r - 14.0, -0.52 * span)
    hilum = (-0.28 * a, -0.02 * b, -0.36 * span)
    pv_r = float(rng.uniform(6.0, 8.0))
    main_portal = Tube("portal_vein", "portal", conf, hilum, pv_r)
    rpv_end = (-0.62 * a, 0.08 * b, -0.34 * span)
    right_portal = Tube("right_portal", "portal", hilum, rpv_end, pv_r * 0.75)
    branches = (
        right_portal,
        Tube("left_portal", "portal", hilum, (0.08 * a, -0.38 * b, -0.28 * span), pv_r * 0.6),
        Tube("right_anterior_portal", "portal", rpv_end, (-0.6 * a, -0.35 * b, -0.22 * span), pv_r * 0.45),
        Tube("right_posterior_portal", "portal", rpv_end, (-0.72 * a, 0.3 * b, -0.55 * span), pv_r * 0.45),
    )
    hepatic = _hepatic_veins(a, b, span, ivc_xy)
    spleen_scale = float(rng.uniform(0.85, 1.35))  # portal hypertension enlarges it
    spleen = Ellipsoid(
        "spleen",
        (0.62 * a, 0.32 * b, -0.3 * span),
        (0.17 * a * spleen_scale, 0.33 * b * spleen_scale, 0.3 * span * spleen_scale**0.5),
        angle=float(np.deg2rad(rng.uniform(-50.0, -30.0))),
    )
    kid_semi = (float(rng.uniform(26.0, 32.0)), float(rng.uniform(22.0, 27.0)), float(rng.uniform(50.0, 60.0)))
    kidneys = (
        Ellipsoid("right_kidney", (-0.36 * a, spine_y, -0.78 * span), kid_semi, angle=float(np.deg2rad(-30.0))),
        Ellipsoid("left_kidney", (0.36 * a, spine_y, -0.68 * span), kid_semi, angle=float(np.deg2rad(30.0))),
    )
    gallbladder = None
    if rng.random() < 0.8:
        gallbladder = Ellipsoid(
            "gallbladder", (-0.25 * a, -0.5 * b, -0.62 * span), (16.0, 13.0, float(rng.uniform(30.0, 45.0)))
        )
    stomach = Ellipsoid("stomach", (0.38 * a, -0.18 * b, -0.3 * span), (0.24 * a, 0.3 * b, 0.25 * span), angle=0.5)
    bowel = tuple(
        Ellipsoid(
            f"bowel_{i}",
            (float(rng.uniform(-0.3, 0.6) * a), float(rng.uniform(-0.6, 0.1) * b), float(rng.uniform(-1.4, -0.75) * span)),
            (float(rng.uniform(12, 22)), float(rng.uniform(12, 22)), float(rng.uniform(25, 60))),
        )
        for i in range(6)
    )
    pancreas = Tube(
        "pancreas", "pancreas", (conf[0] - 25.0, conf[1] - 6.0, conf[2] - 10.0), (0.5 * a, 0.2 * b, conf[2] + 15.0), 11.0
    )
    vessels_outside = _vessels_outside(a, b, span, conf, pv_r, aorta_xy, ivc_xy, kidneys)
    ribs = tuple(float(rng.uniform(0, 2 * np.pi)) for _ in range(14))
    return Anatomy(
        body_a=a,
        body_b=b,
        fat_mm=fat,
        wall_mm=wall,
        liver_span_mm=span,
        liver_width=float(rng.uniform(0.42, 0.5)),
        liver_depth=float(rng.uniform(0.62, 0.75)),
        left_lobe=float(rng.uniform(0.6, 1.1)),
        cirrhosis=cirrhosis,
        nodularity=nod,
        liver_plain_hu=liver_plain,
        fat_hu=float(rng.uniform(-110.0, -85.0)),
        arterial_timing=timing,
        enhancement_scale=scale,
        portal_scale=portal_scale,
        dome_table_z=dome_z,
        table_offset_xy=off,
        fov_mm=fov,
        spine_y=spine_y,
        vertebra_r=vr,
        aorta=aorta,
        ivc=ivc,
        vessels_in_liver=branches + hepatic,
        vessels_outside=vessels_outside,
        main_portal=main_portal,
        right_portal=right_portal,
        spleen=spleen,
        kidneys=kidneys,
        gallbladder=gallbladder,
        stomach=stomach,
        bowel=bowel,
        pancreas=pancreas,
        rib_phases=ribs,
    )


def _hepatic_veins(a: float, b: float, span: float, ivc_xy: tuple[float, float]
                   ) -> tuple[Tube, ...]:
    """Right, middle and left hepatic veins, from their root at the IVC into the liver."""
    hv_root = (ivc_xy[0] + 4.0, ivc_xy[1] - 4.0, -0.07 * span)
    return (
        Tube("right_hepatic_vein", "hepatic_vein", hv_root, (-0.78 * a, 0.0, -0.3 * span), 5.5),
        Tube("middle_hepatic_vein", "hepatic_vein", hv_root, (-0.45 * a, -0.5 * b, -0.28 * span), 5.0),
        Tube("left_hepatic_vein", "hepatic_vein", hv_root, (0.02 * a, -0.55 * b, -0.16 * span), 4.5),
    )


def _vessels_outside(a: float, b: float, span: float, conf: tuple[float, float, float], pv_r: float,
                     aorta_xy: tuple[float, float], ivc_xy: tuple[float, float],
                     kidneys: tuple[Ellipsoid, Ellipsoid]) -> tuple[Tube, ...]:
    """Splenic vein, SMV, celiac trunk, SMA and the renal veins (no random draws)."""
    spl_vein = Tube("splenic_vein", "portal", conf, (0.52 * a, 0.28 * b, conf[2] + 20.0), pv_r * 0.6)
    smv = Tube("smv", "portal", conf, (conf[0] + 5.0, conf[1] - 5.0, conf[2] - 120.0), pv_r * 0.7)
    celiac = Tube("celiac", "aorta", (aorta_xy[0], aorta_xy[1], -0.5 * span), (aorta_xy[0] - 5.0, aorta_xy[1] - 35.0, -0.47 * span), 3.5)
    sma = Tube("sma", "aorta", (aorta_xy[0], aorta_xy[1], -0.58 * span), (aorta_xy[0] + 2.0, aorta_xy[1] - 30.0, -0.75 * span), 3.5)
    rk, lk = kidneys
    renal_r = Tube("right_renal_vein", "ivc", (rk.centre[0] + 20, rk.centre[1] - 5, rk.centre[2] + 5), (ivc_xy[0], ivc_xy[1], rk.centre[2] + 10), 5.0)
    renal_l = Tube("left_renal_vein", "ivc", (lk.centre[0] - 20, lk.centre[1] - 5, lk.centre[2]), (ivc_xy[0], ivc_xy[1], lk.centre[2] - 5), 5.0)
    return (spl_vein, smv, celiac, sma, renal_r, renal_l)


def draw_phase_geometry(
    rng: np.random.Generator, anatomy: Anatomy, phases: tuple[str, ...], top_margin_mm: float
) -> dict[str, PhaseGeometry]:
    """Per-phase position on the table and breath-hold shift.

    The plain phase is the reference position plus a small offset; each contrast phase adds a
    cranio-caudal breath-hold shift of up to ±10 mm and an in-plane shift of up to ±3 mm, and
    its table start differs by up to ±6 mm, so slices of different phases are not at identical
    table positions.
    """
    out: dict[str, PhaseGeometry] = {}
    ox, oy = anatomy.table_offset_xy
    base_start = anatomy.dome_table_z + top_margin_mm
    for phase in phases:
        if phase == "plain":
            dz = float(rng.uniform(-3.0, 3.0))
            dxy = (float(rng.uniform(-1.0, 1.0)), float(rng.uniform(-1.0, 1.0)))
        else:
            dz = float(rng.uniform(-10.0, 10.0))
            dxy = (float(rng.uniform(-3.0, 3.0)), float(rng.uniform(-3.0, 3.0)))
        start = base_start + float(rng.uniform(-6.0, 6.0))
        out[phase] = PhaseGeometry(
            shift_mm=(ox + dxy[0], oy + dxy[1], anatomy.dome_table_z + dz),
            breath_hold_mm=(dxy[0], dxy[1], dz),
            z_start=round(start, 2),
        )
    return out
