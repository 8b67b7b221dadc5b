"""Render HU slices of a synthetic patient from analytic shapes.

Every structure is an analytic shape in mm (ellipses, ellipsoids, capsules, the implicit liver),
evaluated at the pixel centres of one axial slice inside the shape's bounding box only, so any
matrix and slice position works and a 512² slice costs a few milliseconds. A label image is
painted alongside the HU image so that lesions and intrahepatic vessels stay inside the liver
and the number of visible liver pixels per slice is known exactly (``truth.json``'s liver
range comes from it).

Noise model: the clean slice is blurred (Gaussian, ``blur_mm``) and correlated Gaussian noise of
standard deviation ``noise_hu`` is added (white noise blurred with 0.7 px and rescaled), then
values are clipped to the CT range −1024..3071 HU.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from app.progress import NULL_PROGRESS, Progress
from app.synthetic.anatomy import Anatomy, Ellipsoid, PhaseGeometry, Tube
from app.synthetic.lesions import (
    CAPSULE_ENHANCEMENT_HU,
    NECROSIS_HU,
    TEXTURE_WEIGHT,
    Lesion,
    Thrombus,
    tumour_hu,
)

# Labels of the label image (uint8). Capsule, necrosis, iodised oil and tumour thrombus are tumour with
# their own label (the label maps of :mod:`app.synthetic.labelmaps` tell them apart); the aorta
# has its own label for the same reason. Painting decisions only ever test ``_LIVERISH`` and
# ``L_LIVER``, so the finer labels change no HU value.
(L_AIR, L_BODY, L_LIVER, L_LIVER_VESSEL, L_LESION, L_ORGAN, L_VESSEL, L_BONE,
 L_NECROSIS, L_OIL, L_THROMBUS, L_AORTA, L_CAPSULE) = range(13)
_LIVERISH = (L_LIVER, L_LIVER_VESSEL, L_LESION, L_NECROSIS, L_OIL, L_THROMBUS, L_CAPSULE)

HU_MIN, HU_MAX = -1024.0, 3071.0

#: A rasterised shape: the bounding box (row slice, column slice) and the mask inside it.
Shape = tuple[tuple[slice, slice], np.ndarray] | None


@dataclass(frozen=True)
class Grid:
    """Pixel-centre coordinates (mm, patient LPS) of an axial image.

    ``xs[j]`` is the x of column ``j`` (column 0 = patient's right), ``ys[i]`` the y of row ``i``
    (row 0 = anterior).
    """

    xs: np.ndarray
    ys: np.ndarray

    @property
    def spacing(self) -> float:
        return float(self.xs[1] - self.xs[0])

    @classmethod
    def square(cls, fov_mm: float, matrix: int, centre: tuple[float, float] = (0.0, 0.0)) -> Grid:
        """A ``matrix`` × ``matrix`` grid covering ``fov_mm`` centred on ``centre``."""
        d = fov_mm / matrix
        base = -0.5 * fov_mm + (np.arange(matrix, dtype=np.float64) + 0.5) * d
        return cls(xs=(base + centre[0]).astype(np.float32), ys=(base + centre[1]).astype(np.float32))


class _Canvas:
    """HU and label images of one slice plus bounding-box helpers (anatomy-frame coordinates)."""

    def __init__(self, xs: np.ndarray, ys: np.ndarray, fill: float) -> None:
        self.xs = xs
        self.ys = ys
        self.d = float(xs[1] - xs[0])
        self.img = np.full((ys.size, xs.size), fill, dtype=np.float32)
        self.lab = np.zeros((ys.size, xs.size), dtype=np.uint8)

    def box(self, x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice] | None:
        j0 = max(0, int(np.floor((x0 - self.xs[0]) / self.d)))
        j1 = min(self.xs.size, int(np.ceil((x1 - self.xs[0]) / self.d)) + 1)
        i0 = max(0, int(np.floor((y0 - self.ys[0]) / self.d)))
        i1 = min(self.ys.size, int(np.ceil((y1 - self.ys[0]) / self.d)) + 1)
        if j0 >= j1 or i0 >= i1:
            return None
        return slice(i0, i1), slice(j0, j1)

    def coords(self, sl: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        return self.xs[sl[1]][None, :], self.ys[sl[0]][:, None]

    def ellipse(self, cx: float, cy: float, a: float, b: float, angle: float = 0.0) -> Shape:
        """(box, mask) of an ellipse, or None when it misses the image."""
        if a <= 0 or b <= 0:
            return None
        r = max(a, b) if angle else None
        sl = self.box(cx - (r or a), cx + (r or a), cy - (r or b), cy + (r or b))
        if sl is None:
            return None
        x, y = self.coords(sl)
        dx, dy = x - cx, y - cy
        if angle:
            c, s = np.cos(angle), np.sin(angle)
            dx, dy = c * dx + s * dy, -s * dx + c * dy
        return sl, (dx / a) ** 2 + (dy / b) ** 2 < 1.0

    def ellipsoid(self, e: Ellipsoid, z: float, scale: float = 1.0) -> Shape:
        f = 1.0 - ((z - e.centre[2]) / (e.semi[2] * scale)) ** 2
        if f <= 0.0:
            return None
        k = np.sqrt(f) * scale
        return self.ellipse(e.centre[0], e.centre[1], e.semi[0] * k, e.semi[1] * k, e.angle)

    def tube(self, t: Tube, z: float, radius: float | None = None, t_range: tuple[float, float] = (0.0, 1.0)) -> Shape:
        """(box, mask) of the capsule ``t`` cut by the plane at height ``z``."""
        r = t.radius if radius is None else radius
        p0 = np.asarray(t.p0, dtype=np.float64)
        p1 = np.asarray(t.p1, dtype=np.float64)
        dvec = p1 - p0
        lo, hi = t_range
        if abs(dvec[2]) < 1e-9:
            if abs(z - p0[2]) > r:
                return None
        else:
            ta = (z - r - p0[2]) / dvec[2]
            tb = (z + r - p0[2]) / dvec[2]
            lo, hi = max(lo, min(ta, tb)), min(hi, max(ta, tb))
            if lo > hi:
                return None
        pa, pb = p0 + lo * dvec, p0 + hi * dvec
        sl = self.box(min(pa[0], pb[0]) - r, max(pa[0], pb[0]) + r, min(pa[1], pb[1]) - r, max(pa[1], pb[1]) + r)
        if sl is None:
            return None
        x, y = self.coords(sl)
        wx, wy, wz = x - p0[0], y - p0[1], z - p0[2]
        dd = float(dvec @ dvec)
        tt = np.clip((wx * dvec[0] + wy * dvec[1] + wz * dvec[2]) / dd, t_range[0], t_range[1])
        ex, ey, ez = wx - tt * dvec[0], wy - tt * dvec[1], wz - tt * dvec[2]
        return sl, ex * ex + ey * ey + ez * ez < r * r

    def paint(self, shape: Shape, value: float, label: int, only: tuple[int, ...] | None = None,
              clip: np.ndarray | None = None) -> None:
        """Set HU and label inside ``shape`` (optionally only over given labels / a clip mask)."""
        if shape is None:
            return
        sl, mask = shape
        if only is not None:
            mask = mask & np.isin(self.lab[sl], only)
        if clip is not None:
            mask = mask & clip[sl]
        self.img[sl][mask] = value
        self.lab[sl][mask] = label


def render_clean_slice(
    anatomy: Anatomy,
    lesions: list[Lesion],
    thrombus: Thrombus | None,
    phase: str,
    geometry: PhaseGeometry,
    grid: Grid,
    z_table: float,
) -> tuple[np.ndarray, int]:
    """Noise-free HU image of one axial slice and its number of visible liver pixels.

    See :func:`render_clean_slice_labelled` for the parameters.
    """
    img, _labels, liver_pixels = render_clean_slice_labelled(anatomy, lesions, thrombus, phase, geometry, grid, z_table)
    return img, liver_pixels


def render_clean_slice_labelled(
    anatomy: Anatomy,
    lesions: list[Lesion],
    thrombus: Thrombus | None,
    phase: str,
    geometry: PhaseGeometry,
    grid: Grid,
    z_table: float,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Noise-free HU image of one axial slice, its label image (``L_*``, uint8, same pixels)
    and its number of visible liver pixels.

    The label image is painted anyway (it keeps lesions and vessels inside the liver), so
    returning it costs nothing.

    Parameters
    ----------
    phase:
        ``plain``, ``arterial``, ``portal`` or ``delayed``.
    geometry:
        The phase's table position and breath-hold shift.
    z_table:
        Table position (mm) of the slice centre.
    """
    sx, sy, sz = geometry.shift_mm
    z = float(z_table - sz)
    cv = _Canvas(grid.xs - np.float32(sx), grid.ys - np.float32(sy), -1000.0)
    hu = anatomy.hu(phase)
    cavity_mask = _paint_body(cv, anatomy, hu, grid, sy)
    _paint_chest(cv, anatomy, hu, z)
    _paint_liver(cv, anatomy, lesions, thrombus, hu, z, phase, cavity_mask)
    _paint_organs(cv, anatomy, hu, z, cavity_mask)
    _paint_portal_and_great_vessels(cv, anatomy, lesions, thrombus, hu, z, phase)
    _paint_skeleton(cv, anatomy, z, hu, cavity_mask)
    liver_pixels = int(np.isin(cv.lab, _LIVERISH).sum())
    return cv.img, cv.lab, liver_pixels



def _paint_body(cv: _Canvas, anatomy: Anatomy, hu: dict[str, float], grid: Grid, sy: float) -> np.ndarray:
    """The patient table and the body wall; returns the abdominal cavity (organs are clipped to it)."""
    a, b = anatomy.body_a, anatomy.body_b
    # Patient table: fixed in table coordinates (it does not breathe with the patient).
    ty = anatomy.table_offset_xy[1] + b + 4.0 - sy
    half_w = 0.42 * float(grid.xs[-1] - grid.xs[0])
    top = cv.box(-half_w, half_w, ty, ty + 10.0)
    if top is not None:
        cv.paint((top, np.ones(cv.img[top].shape, dtype=bool)), hu["table"], L_AIR)

    # Body wall: subcutaneous fat, muscle, abdominal cavity (visceral fat).
    cv.paint(cv.ellipse(0.0, 0.0, a, b), hu["fat"], L_BODY)
    ma, mb = a - anatomy.fat_mm, b - anatomy.fat_mm
    cv.paint(cv.ellipse(0.0, 0.0, ma, mb), hu["muscle"], L_BODY)
    ia, ib = anatomy.cavity_semi()
    cav = cv.ellipse(0.0, 0.0, ia, ib)
    cv.paint(cav, hu["fat"], L_BODY)
    cavity_mask = np.zeros(cv.img.shape, dtype=bool)
    if cav is not None:
        cavity_mask[cav[0]] = cav[1]

    return cavity_mask


def _paint_chest(cv: _Canvas, anatomy: Anatomy, hu: dict[str, float], z: float) -> None:
    """Lungs above and behind the diaphragm domes; the heart on the central tendon."""
    a, b, span = anatomy.body_a, anatomy.body_b, anatomy.liver_span_mm
    ia, ib = anatomy.cavity_semi()
    # Lungs above and behind the diaphragm domes; heart on the central tendon.
    if z > -0.42 * span:
        g = float(np.clip(max(-z + 15.0, 0.0) / (0.42 * span + 15.0), 0.0, 1.0))
        lung = cv.ellipse(0.0, 0.0, ia - 2.0, ib - 2.0)
        if lung is not None:
            sl, m = lung
            x, y = cv.coords(sl)
            if g > 0:
                m = m & (((x + 0.05 * a) / (g * 0.98 * ia)) ** 2 + ((y + 0.3 * b) / (g * 1.05 * ib)) ** 2 > 1.0)
            m = m & (((x - 0.05 * a) / (0.2 * a)) ** 2 + ((y + 0.1 * b) / (0.8 * b)) ** 2 > 1.0)
            cv.paint((sl, m), hu["lung"], L_BODY)
        if z > -0.03 * span:
            hg = float(np.clip((z + 0.03 * span + 5.0) / 45.0, 0.0, 1.0)) ** 0.5
            cv.paint(cv.ellipse(0.12 * a, -0.3 * b, 0.3 * a * hg, 0.36 * b * hg, 0.4), hu["heart"], L_ORGAN)



def _paint_liver(cv: _Canvas, anatomy: Anatomy, lesions: list[Lesion], thrombus: Thrombus | None,
                 hu: dict[str, float], z: float, phase: str, cavity_mask: np.ndarray) -> None:
    """The liver, its vessels and its lesions (the gallbladder beside it)."""
    # Liver and what lies inside it.
    secs = anatomy.liver_sections(z)
    if secs:
        margin = 1.0 + 2.0 * anatomy.cirrhosis
        x0 = min(cx - ax * margin for cx, _, ax, _ in secs)
        x1 = max(cx + ax * margin for cx, _, ax, _ in secs)
        y0 = min(cy - by * margin for _, cy, _, by in secs)
        y1 = max(cy + by * margin for _, cy, _, by in secs)
        box = cv.box(x0, x1, y0, y1)
        if box is not None:
            sl = box
            x, y = cv.coords(sl)
            m = anatomy.inside_liver(x, y, z)
            if anatomy.cirrhosis > 0.0:
                # Cirrhotic parenchyma: a faint mottled texture (regenerative nodules and fibrosis),
                # a few HU of 3-D waves with 8–24 mm wavelengths, derived from the nodularity.
                tex = np.zeros(m.shape, dtype=np.float32)
                for k, ph, zk in anatomy.nodularity:
                    w = 2.0 * np.pi / (6.0 + k)
                    tex += np.cos(w * (np.cos(ph) * x + np.sin(ph) * y) + (w * 0.7 + zk) * z + k)
                value = hu["liver"] + (120.0 * anatomy.cirrhosis / len(anatomy.nodularity)) * tex
                cv.img[sl][m] = value[m]
                cv.lab[sl][m] = L_LIVER
            else:
                cv.paint((sl, m), hu["liver"], L_LIVER)
    if anatomy.gallbladder is not None:
        cv.paint(cv.ellipsoid(anatomy.gallbladder, z), hu["gallbladder"], L_ORGAN, clip=cavity_mask)
    for t in anatomy.vessels_in_liver:
        r = t.radius * (thrombus.widen if thrombus is not None and t.name == "right_portal" else 1.0)
        cv.paint(cv.tube(t, z, radius=r), hu[t.tissue], L_LIVER_VESSEL, only=(L_LIVER,))
    liver_hu = hu["liver"]
    for les in lesions:
        _paint_lesion(cv, les, z, phase, liver_hu)



def _paint_organs(cv: _Canvas, anatomy: Anatomy, hu: dict[str, float], z: float, cavity_mask: np.ndarray) -> None:
    """Stomach, bowel, spleen, kidneys, pancreas and the vessels outside the liver."""
    # Organs outside the liver.
    st = anatomy.stomach
    cv.paint(cv.ellipsoid(st, z), hu["bowel_wall"], L_ORGAN, clip=cavity_mask)
    inner = cv.ellipsoid(Ellipsoid(st.name, st.centre, (st.semi[0] - 5, st.semi[1] - 5, st.semi[2] - 5), st.angle), z)
    if inner is not None:
        sl, m = inner
        x, y = cv.coords(sl)
        gas = m & (y < st.centre[1] - 0.35 * st.semi[1])
        cv.paint((sl, m & ~gas), hu["bowel_content"], L_ORGAN, clip=cavity_mask)
        cv.paint((sl, gas), hu["air"], L_ORGAN, clip=cavity_mask)
    for i, bw in enumerate(anatomy.bowel):
        cv.paint(cv.ellipsoid(bw, z), hu["bowel_wall"], L_ORGAN, clip=cavity_mask)
        inner_b = Ellipsoid(bw.name, bw.centre, (bw.semi[0] - 3, bw.semi[1] - 3, bw.semi[2] - 3))
        cv.paint(cv.ellipsoid(inner_b, z), hu["air"] if i % 3 == 0 else hu["bowel_content"], L_ORGAN, clip=cavity_mask)
    cv.paint(cv.ellipsoid(anatomy.spleen, z), hu["spleen"], L_ORGAN, clip=cavity_mask)
    for kid in anatomy.kidneys:
        cv.paint(cv.ellipsoid(kid, z), hu["kidney_cortex"], L_ORGAN, clip=cavity_mask)
        med = Ellipsoid(kid.name, kid.centre, (kid.semi[0] * 0.68, kid.semi[1] * 0.68, kid.semi[2] * 0.8), kid.angle)
        cv.paint(cv.ellipsoid(med, z), hu["kidney_medulla"], L_ORGAN, clip=cavity_mask)
        side = -1.0 if kid.centre[0] > 0 else 1.0  # sinus fat on the medial side
        sinus = Ellipsoid(kid.name, (kid.centre[0] + side * 0.45 * kid.semi[0], kid.centre[1], kid.centre[2]),
                          (kid.semi[0] * 0.35, kid.semi[1] * 0.35, kid.semi[2] * 0.45), kid.angle)
        cv.paint(cv.ellipsoid(sinus, z), hu["fat"], L_ORGAN, clip=cavity_mask)
    cv.paint(cv.tube(anatomy.pancreas, z), hu["pancreas"], L_ORGAN, clip=cavity_mask)
    for t in anatomy.vessels_outside:
        cv.paint(cv.tube(t, z), hu[t.tissue], L_VESSEL)


def _paint_portal_and_great_vessels(cv: _Canvas, anatomy: Anatomy, lesions: list[Lesion],
                                    thrombus: Thrombus | None, hu: dict[str, float], z: float, phase: str) -> None:
    """The main portal vein (with tumour thrombus), the IVC and the aorta."""
    liver_hu = hu["liver"]
    mp = anatomy.main_portal
    cv.paint(cv.tube(mp, z, radius=mp.radius * (thrombus.widen if thrombus else 1.0)), hu["portal"], L_VESSEL)
    if thrombus is not None:
        # Tumour fills the right portal vein and the hepatic end of the main portal vein.
        # Tumour thrombus enhances like the tumour, a little less (it is thinner and partly bland).
        target = lesions[0] if lesions else None
        aphe = 0.7 * target.arterial_enhancement_hu if target else 30.0
        washout = target.washout_hu if target else 10.0
        tt = tumour_hu(liver_hu, phase, aphe, washout)
        cv.paint(cv.tube(mp, z, radius=mp.radius * thrombus.widen * 0.9, t_range=(1.0 - thrombus.fraction, 1.0)), tt, L_THROMBUS)
        cv.paint(cv.tube(anatomy.right_portal, z, radius=anatomy.right_portal.radius * thrombus.widen * 0.9), tt, L_THROMBUS)
    cv.paint(cv.tube(anatomy.ivc, z), hu["ivc"], L_VESSEL)
    cv.paint(cv.tube(anatomy.aorta, z), hu["aorta"], L_AORTA)



def _paint_lesion(cv: _Canvas, les: Lesion, z: float, phase: str, liver_hu: float) -> None:
    r = les.radius
    dz = z - les.centre[2]
    reach = 1.15 * r
    if abs(dz) >= reach:
        return
    rr = float(np.sqrt(reach * reach - dz * dz))
    sl = cv.box(les.centre[0] - rr, les.centre[0] + rr, les.centre[1] - rr, les.centre[1] + rr)
    if sl is None:
        return
    x, y = cv.coords(sl)
    dx, dy = x - les.centre[0], y - les.centre[1]
    dist = np.sqrt(dx * dx + dy * dy + dz * dz) + 1e-6
    lob = np.ones_like(dist)
    for ux, uy, uz, freq, ph, amp in les.lobulation:
        lob += amp * np.cos(freq * np.pi * (ux * dx + uy * dy + uz * dz) / dist + ph)
    rho = dist / (r * lob)
    inside = (rho < 1.0) & np.isin(cv.lab[sl], _LIVERISH)
    if not inside.any():
        return
    value = np.full(dist.shape, tumour_hu(liver_hu, phase, les.arterial_enhancement_hu, les.washout_hu), dtype=np.float32)
    label = np.full(dist.shape, L_LESION, dtype=np.uint8)
    if les.heterogeneity > 0:
        tex = np.zeros_like(dist)
        for bl in les.texture:
            d2 = (x - bl.centre[0]) ** 2 + (y - bl.centre[1]) ** 2 + (z - bl.centre[2]) ** 2
            tex += bl.amplitude * np.exp(-d2 / (2.0 * bl.radius * bl.radius))
        value += (35.0 * les.heterogeneity * TEXTURE_WEIGHT[phase]) * tex
    if les.capsule_mm > 0:
        rim = rho > 1.0 - les.capsule_mm / r
        cap = {"plain": liver_hu - 8.0, "arterial": liver_hu - 5.0}.get(phase, liver_hu + CAPSULE_ENHANCEMENT_HU)
        value[rim] = cap
        label[rim] = L_CAPSULE
    if les.necrosis_fraction > 0:
        core = rho < les.necrosis_fraction
        value[core] = NECROSIS_HU
        label[core] = L_NECROSIS
    for bl in les.oil:
        d2 = (x - bl.centre[0]) ** 2 + (y - bl.centre[1]) ** 2 + (z - bl.centre[2]) ** 2
        blob = d2 < bl.radius * bl.radius
        value[blob] = bl.amplitude
        label[blob] = L_OIL
    cv.img[sl][inside] = value[inside]
    cv.lab[sl][inside] = label[inside]


def _paint_skeleton(cv: _Canvas, anatomy: Anatomy, z: float, hu: dict[str, float], cavity: np.ndarray) -> None:
    """Spine, paraspinal and psoas muscles, ribs."""
    a, b, span = anatomy.body_a, anatomy.body_b, anatomy.liver_span_mm
    sy, vr = anatomy.spine_y, anatomy.vertebra_r
    # Paraspinal muscles, then the posterior arch and canal, then the vertebral body.
    for side in (-1.0, 1.0):
        cv.paint(cv.ellipse(side * (vr + 8.0), sy + vr + 20.0, 0.13 * a, 20.0), hu["muscle"], L_BODY)
    if z < -0.55 * span:
        pr = min(8.0 + 0.3 * (-z - 0.55 * span), 24.0)
        for side in (-1.0, 1.0):
            cv.paint(cv.ellipse(side * (vr + pr * 0.8), sy - 4.0, pr, pr * 0.9), hu["muscle"], L_BODY)
    disc = (z % 30.0) < 5.0
    cv.paint(cv.ellipse(0.0, sy + vr + 10.0, 15.0, 12.0), hu["bone_cortex"], L_BONE)
    cv.paint(cv.ellipse(0.0, sy + vr + 30.0, 4.0, 14.0), hu["bone_cortex"], L_BONE)
    if not disc:
        for side in (-1.0, 1.0):
            cv.paint(cv.ellipse(side * (vr + 8.0), sy + vr + 6.0, 13.0, 4.0), hu["bone_cortex"], L_BONE)
    cv.paint(cv.ellipse(0.0, sy + vr + 10.0, 8.0, 7.0), hu["csf"], L_BONE)
    if disc:
        cv.paint(cv.ellipse(0.0, sy, vr, vr * 0.9), 80.0, L_BONE)
    else:
        cv.paint(cv.ellipse(0.0, sy, vr, vr * 0.9), hu["bone_cortex"], L_BONE)
        cv.paint(cv.ellipse(0.0, sy, vr - 2.5, vr * 0.9 - 2.5), hu["bone_marrow"], L_BONE)
    # Ribs in the body wall down to the costal margin; they are oblique, so a rib appears in a
    # slice only part of the time (phase per rib).
    if z > -0.8 * span:
        ra = a - anatomy.fat_mm - 0.5 * anatomy.wall_mm
        rb = b - anatomy.fat_mm - 0.5 * anatomy.wall_mm
        n = len(anatomy.rib_phases)
        for k, ph in enumerate(anatomy.rib_phases):
            side = -1.0 if k % 2 == 0 else 1.0
            ang = np.deg2rad(-70.0 + 150.0 * (k // 2) / max(n // 2 - 1, 1))  # from anterior to posterior
            if np.sin(2 * np.pi * z / 45.0 + ph) < 0.2:
                continue
            cx = side * ra * np.cos(ang)
            cy = rb * np.sin(ang)
            cv.paint(cv.ellipse(float(cx), float(cy), 7.0, 5.0, float(ang)), hu["bone_cortex"], L_BONE)
            cv.paint(cv.ellipse(float(cx), float(cy), 4.5, 2.5, float(ang)), hu["bone_marrow"], L_BONE)


def add_noise_and_blur(
    clean: np.ndarray, pixel_mm: float, noise_hu: float, blur_mm: float, rng: np.random.Generator | None
) -> np.ndarray:
    """Blur the clean slice and add correlated Gaussian noise of standard deviation ``noise_hu``.

    The noise's correlation length is fixed in pixels (0.7 px) like a scanner's reconstruction
    kernel; its amplitude is rescaled so that its standard deviation is ``noise_hu``.
    """
    out = clean
    sigma_px = blur_mm / pixel_mm
    if sigma_px > 0.2:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma_px, borderType=cv2.BORDER_REPLICATE)
    if rng is not None and noise_hu > 0:
        white = rng.standard_normal(out.shape, dtype=np.float32)
        corr: np.ndarray = cv2.GaussianBlur(white, (0, 0), sigmaX=0.7, borderType=cv2.BORDER_REFLECT)
        # Standard deviation of white noise blurred by a 2-D Gaussian of sigma s: 1/(2 sqrt(pi) s).
        corr *= float(noise_hu * 2.0 * np.sqrt(np.pi) * 0.7)
        corr += out
        out = corr
    elif out is clean:
        out = clean.copy()
    return np.clip(out, HU_MIN, HU_MAX, out=out)


@dataclass
class RenderedSeries:
    """HU slices of one series (float32 ``[n, rows, cols]``) and liver pixels per slice."""

    hu: np.ndarray
    z_positions: np.ndarray
    liver_pixels: np.ndarray


def render_series(
    anatomy: Anatomy,
    lesions: list[Lesion],
    thrombus: Thrombus | None,
    phase: str,
    geometry: PhaseGeometry,
    grid: Grid,
    z_positions: np.ndarray,
    noise_hu: float,
    blur_mm: float,
    rng: np.random.Generator | None,
    progress: Progress = NULL_PROGRESS,
) -> RenderedSeries:
    """Render every slice of one axial series (with noise and blur when ``rng`` is given)."""
    n = len(z_positions)
    vol = np.empty((n, grid.ys.size, grid.xs.size), dtype=np.float32)
    liver = np.zeros(n, dtype=np.int64)
    for k, zt in enumerate(z_positions):
        progress.check()
        clean, liver[k] = render_clean_slice(anatomy, lesions, thrombus, phase, geometry, grid, float(zt))
        vol[k] = add_noise_and_blur(clean, grid.spacing, noise_hu, blur_mm, rng)
        progress.update((k + 1) / n)
    return RenderedSeries(hu=vol, z_positions=np.asarray(z_positions, dtype=np.float64), liver_pixels=liver)
