"""Contrast-phase classification of the axial CT series of a study.

Each series gets ``plain``, ``arterial``, ``portal`` or ``other`` (delayed, non-liver, localizer,
...) with a confidence and readable evidence, from two independent opinions:

- **tags** (:mod:`app.dicom.phase_tags`): description vocabulary in vendor, abbreviated and
  Chinese wording, contrast agent relative to the rest of the study, bolus-start delay;
- **image** (:mod:`app.dicom.landmarks`): median HU of the aorta, the portal vein and the liver
  on a few sampled slices, the principle of TotalSegmentator's phase predictor.

The two are multiplied per series (naive Bayes), then the study is solved *jointly*: every way of
giving plain, arterial and portal to distinct acquisitions is scored, adding what no single
series can know — the arterial aorta is brighter than the portal one, the plain scan is the least
dense, the phases were acquired in the order plain → arterial → portal → delayed. The best
assignment wins; its share of the total probability is the confidence. Reconstructions of one
acquisition (a 1 mm and a 5 mm recon of the arterial scan) form one group and get the same label
— the assembler chooses among them (see ``thin duplicate`` evidence).

A series is marked ``conflict=True`` (the assembler then asks the user to confirm) when tags and
image disagree, or when it was denied the phase it looks like because another series took it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from app.dicom.landmarks import Landmarks, measure_landmarks
from app.dicom.phase_tags import (
    CLASSES,
    Evidence,
    acquisition_seconds,
    format_time,
    posterior,
    tag_evidence,
)
from app.dicom.types import PhaseCall, PhaseOrOther, SeriesInfo, Volume
from app.progress import Progress, sub_progress

#: Below this confidence a phase call should be confirmed by the user even without a conflict.
CONFIRM_BELOW = 0.7
#: Number of slices :func:`sample_indices` asks the loader for (cost vs robustness).
N_SAMPLE_SLICES = 4
#: Fractions of the z range (0 = lowest/caudal, 1 = highest/cranial) that are sampled: the
#: upper-middle of a liver or abdominal scan, where liver, portal vein and aorta are all seen.
SAMPLE_RANGE = (0.35, 0.9)
#: Reconstructions whose acquisition times differ by less than this (s) are one acquisition.
SAME_ACQUISITION_S = 3.0
#: Opinions weaker than this are not counted when looking for a tag/image conflict. The image
#: alone tells portal from delayed only loosely (both are "venous", differing by 20-40 HU), so
#: a moderate image opinion against a tag is expected and is not called a conflict.
_OPINION_MIN = 0.85
#: A tag opinion needs less: one clear description is enough to stand against the image.
_TAG_OPINION_MIN = 0.6
#: Penalty (log) for leaving one of the three phases unassigned.
_LOG_MISSING = np.log(0.03)
#: Penalty (log) per pair of assigned phases acquired in the wrong order.
_LOG_WRONG_ORDER = np.log(0.15)

_PHASES: tuple[PhaseOrOther, PhaseOrOther, PhaseOrOther] = ("plain", "arterial", "portal")


# --- sampling ---------------------------------------------------------------------------------


def sample_indices(series: SeriesInfo) -> list[int]:
    """Slice indices (into ``series.instances``, sorted by z) to load for image evidence.

    Four slices spread over 35-90 % of the z range (towards the head): on a liver-protocol scan
    they all cross the liver and portal vein, on an abdomen-pelvis scan the upper ones still do,
    and the aorta is seen on every one. Four slices of each series are under a tenth of loading
    three full 5-mm volumes.
    """
    n = len(series.instances) if series.instances else int(series.n_slices)
    if n <= 0:
        return []
    if n <= N_SAMPLE_SLICES:
        return list(range(n))
    fractions = np.linspace(SAMPLE_RANGE[0], SAMPLE_RANGE[1], N_SAMPLE_SLICES)
    idx = sorted({int(round(f * (n - 1))) for f in fractions})
    return idx


# --- image opinion ----------------------------------------------------------------------------

# Class-conditional models of the landmark HU (centre, spread), from the usual liver-CT values:
# plain aorta ~40, liver ~55; late-arterial aorta 200-400 with a portal vein still far darker;
# portal-venous aorta ~150-200 with portal vein at least as dense and liver ~100+; delayed
# (3-5 min) everything converging to ~100-130. Spreads are wide and the tails heavy (Student t,
# 3 degrees of freedom) so that one odd measurement cannot dominate.
_IMAGE_MODEL: dict[str, dict[str, tuple[float, float]]] = {
    "aorta": {"plain": (42, 15), "arterial": (280, 80), "portal": (165, 35), "other": (120, 20)},
    # Aorta minus the brightest homogeneous spot at the liver hilum. The spot is biased: on a
    # plain scan it is the noise maximum of the parenchyma (so the gap is negative), after
    # contrast partial volume makes intrahepatic portal branches read lower than the main vein.
    "gap": {"plain": (-25, 20), "arterial": (150, 70), "portal": (5, 25), "other": (-5, 20)},
    "liver": {"plain": (52, 10), "arterial": (70, 12), "portal": (108, 16), "other": (90, 12)},
}


def _t_loglik(x: float, mu: float, sd: float, dof: float = 3.0) -> float:
    z = (x - mu) / sd
    return float(-0.5 * (dof + 1) * np.log1p(z * z / dof) - np.log(sd))


def image_evidence(lm: Landmarks) -> list[Evidence]:
    """Evidence from measured landmark HU.

    Each measured quantity gives one likelihood; its weight (a tempering exponent) is the
    detector's quality, so a doubtful aorta counts less. A volume without liver is "other"
    (chest, head, pelvis): the app needs liver phases.
    """
    out: list[Evidence] = []
    if lm.liver.hu is None:
        out.append(
            Evidence(
                "no liver on the sampled slices → not a liver phase",
                np.array([0.1, 0.1, 0.1, 1.0]),
                "image",
            )
        )
        return out

    def lik(feature: str, x: float, weight: float) -> np.ndarray:
        model = _IMAGE_MODEL[feature]
        ll = np.array([_t_loglik(x, *model[c]) for c in CLASSES])
        ll = weight * (ll - ll.max())
        return np.exp(ll)

    a, p, liver = lm.aorta.hu, lm.portal_vein.hu, lm.liver.hu
    w_a = float(np.clip(lm.aorta.quality + 0.3, 0.3, 1.0))
    parts = []
    if a is not None:
        e = lik("aorta", a, w_a)
        parts.append(f"aorta {a:.0f} HU")
        out.append(Evidence(f"aorta {a:.0f} HU", e, "image"))
        if p is not None:
            e2 = lik("gap", a - p, w_a)
            out.append(Evidence(f"aorta − portal vein {a - p:+.0f} HU", e2, "image"))
    if p is not None:
        parts.append(f"portal vein {p:.0f} HU")
    e3 = lik("liver", liver, float(np.clip(lm.liver.quality, 0.3, 1.0)))
    parts.append(f"liver {liver:.0f} HU")
    out.append(Evidence(f"liver {liver:.0f} HU", e3, "image"))
    return out


def _summarise(pieces: Sequence[Evidence], label: str) -> tuple[PhaseOrOther | None, float, str]:
    if not pieces:
        return None, 0.0, ""
    post = posterior(pieces)
    k = int(np.argmax(post))
    return CLASSES[k], float(post[k]), label


# --- study-level solution ---------------------------------------------------------------------


@dataclass
class _SeriesOpinion:
    series: SeriesInfo
    tag: list[Evidence]
    image: list[Evidence]
    landmarks: Landmarks | None
    eligible: bool
    reason: str = ""
    tag_post: np.ndarray = field(default_factory=lambda: np.full(4, 0.25))
    image_post: np.ndarray = field(default_factory=lambda: np.full(4, 0.25))
    combined: np.ndarray = field(default_factory=lambda: np.full(4, 0.25))


def _eligibility(series: SeriesInfo) -> str:
    """Why a series cannot be a liver phase ("" if it can)."""
    if series.modality and series.modality.upper() != "CT":
        return f"modality {series.modality}, not CT"
    if series.orientation != "axial":
        return f"{series.orientation} series, not axial"
    if series.status == "refused":
        return f"refused: {series.refused_reason or 'see warnings'}"
    kinds = {t.upper() for t in series.image_type}
    if "LOCALIZER" in kinds:
        return "localizer"
    if series.n_slices < 3 and len(series.instances) < 3:
        return f"only {max(series.n_slices, len(series.instances))} slice(s)"
    return ""


def _groups(ops: Sequence[_SeriesOpinion]) -> list[list[int]]:
    """Indices of eligible series grouped by acquisition (recons of one scan share a group).

    Two series are one acquisition when they share the frame of reference and their acquisition
    times agree within SAME_ACQUISITION_S. Without times every series is its own group.
    """
    groups: list[list[int]] = []
    keys: list[tuple[str, float] | None] = []
    for i, op in enumerate(ops):
        if not op.eligible:
            continue
        t = op.series.acquisition_time
        if t is None:
            t = op.series.content_time
        key = None if t is None else (op.series.frame_of_reference_uid, float(t))
        placed = False
        if key is not None:
            for g, k in enumerate(keys):
                if k is not None and k[0] == key[0] and abs(k[1] - key[1]) <= SAME_ACQUISITION_S:
                    groups[g].append(i)
                    placed = True
                    break
        if not placed:
            groups.append([i])
            keys.append(key)
    return groups


def _group_feature(ops: Sequence[_SeriesOpinion], group: list[int], name: str) -> float | None:
    vals = []
    for i in group:
        lm = ops[i].landmarks
        if lm is None:
            continue
        v = getattr(lm, name).hu
        if v is not None:
            vals.append(v)
    return float(np.median(vals)) if vals else None


def _group_time(ops: Sequence[_SeriesOpinion], group: list[int]) -> float | None:
    times = [acquisition_seconds(ops[i].series) for i in group]
    known = [t for t in times if t is not None]
    return min(known) if known else None


def _log_sigmoid(x: float) -> float:
    return float(-np.logaddexp(0.0, -x))


def _pair_score(
    feat: dict[str, list[float | None]],
    times: list[float | None],
    venous: list[bool],
    assign: tuple[int | None, ...],
) -> float:
    """Study-level consistency of an assignment (plain, arterial, portal) → group indices."""
    score = 0.0
    pl, ar, po = assign
    aorta, liver = feat["aorta"], feat["liver"]

    def both(
        values: list[float | None], i: int | None, j: int | None
    ) -> tuple[float, float] | None:
        if i is None or j is None:
            return None
        a, b = values[i], values[j]
        if a is None or b is None:
            return None
        return a, b

    # Arterial aorta brighter than portal aorta.
    v = both(aorta, ar, po)
    if v is not None:
        score += _log_sigmoid((v[0] - v[1]) / 20.0)
    # Plain aorta and liver darker than in any enhanced phase.
    for other in (ar, po):
        v = both(aorta, pl, other)
        if v is not None:
            score += _log_sigmoid((v[1] - v[0] - 30.0) / 15.0)
    v = both(liver, pl, po)
    if v is not None:
        score += _log_sigmoid((v[1] - v[0] - 10.0) / 8.0)
    # Acquisition order plain → arterial → portal.
    chain = [(pl, ar), (ar, po), (pl, po)]
    for i, j in chain:
        if i is None or j is None:
            continue
        ti, tj = times[i], times[j]
        if ti is not None and tj is not None and ti > tj:
            score += _LOG_WRONG_ORDER
    # A liver series left as "other" is most often the delayed phase: less dense than the
    # portal phase (contrast washing out) and acquired after it. Without this, a portal and a
    # delayed series of similar absolute HU are a coin toss.
    if po is not None:
        for d in range(len(times)):
            if d in assign or liver[d] is None or not venous[d]:
                continue
            v = both(aorta, po, d)
            if v is not None:
                score += _log_sigmoid((v[0] - v[1] + 5.0) / 12.0)
            v = both(feat["portal_vein"], po, d)
            if v is not None:
                score += _log_sigmoid((v[0] - v[1] + 5.0) / 12.0)
            tp, td = times[po], times[d]
            if tp is not None and td is not None and td < tp:
                score += _LOG_WRONG_ORDER
    return score


def _solve(
    ops: list[_SeriesOpinion], groups: list[list[int]]
) -> tuple[list[PhaseOrOther], list[float]]:
    """Best joint labelling of the acquisition groups and each group's marginal confidence."""
    n = len(groups)
    if n == 0:
        return [], []
    log_c = np.array(
        [np.mean([np.log(np.clip(ops[i].combined, 1e-9, None)) for i in g], axis=0) for g in groups]
    )
    feat = {
        name: [_group_feature(ops, g, name) for g in groups]
        for name in ("aorta", "liver", "portal_vein")
    }
    times = [_group_time(ops, g) for g in groups]
    # Groups that look venous or delayed on their own (the delayed-phase consistency terms
    # apply to these only, not to a second arterial acquisition or a plain rescan).
    p_c = np.exp(log_c)
    p_c /= p_c.sum(axis=1, keepdims=True)
    venous = [bool(p_c[g, 2] + p_c[g, 3] >= 0.5) for g in range(n)]
    choices: list[int | None] = [None, *range(n)]
    scores: list[float] = []
    assigns: list[tuple[int | None, ...]] = []
    other = CLASSES.index("other")
    base = float(log_c[:, other].sum())
    for assign in itertools.product(choices, repeat=3):
        used = [a for a in assign if a is not None]
        if len(set(used)) != len(used):
            continue
        s = base
        for k, g in enumerate(assign):
            if g is None:
                s += _LOG_MISSING
            else:
                s += float(log_c[g, k] - log_c[g, other])
        s += _pair_score(feat, times, venous, assign)
        scores.append(s)
        assigns.append(assign)
    sc = np.array(scores)
    prob = np.exp(sc - sc.max())
    prob /= prob.sum()
    best = assigns[int(np.argmax(sc))]
    labels: list[PhaseOrOther] = ["other"] * n
    for k, g in enumerate(best):
        if g is not None:
            labels[g] = _PHASES[k]
    conf = []
    for g in range(n):
        lab = labels[g]
        if lab == "other":
            p = sum(pr for pr, a in zip(prob, assigns, strict=True) if g not in a)
        else:
            k = _PHASES.index(lab)
            p = sum(pr for pr, a in zip(prob, assigns, strict=True) if a[k] == g)
        conf.append(float(p))
    return labels, conf


# --- public API -------------------------------------------------------------------------------


def _opinion(
    series: SeriesInfo, study: Sequence[SeriesInfo], volume: Volume | None
) -> _SeriesOpinion:
    reason = _eligibility(series)
    if reason:
        return _SeriesOpinion(series, [], [], None, False, reason)
    tags = tag_evidence(series, study)
    lm = None
    img: list[Evidence] = []
    if volume is not None and volume.n_slices > 0:
        lm = measure_landmarks(volume)
        img = image_evidence(lm)
    op = _SeriesOpinion(series, tags, img, lm, True)
    op.tag_post = posterior(tags)
    op.image_post = posterior(img)
    op.combined = posterior([*tags, *img])
    return op


def classify_study(
    series: Sequence[SeriesInfo],
    volumes: Mapping[str, Volume] | None = None,
    progress: Progress | None = None,
) -> dict[str, PhaseCall]:
    """Classify every series of one study, jointly.

    Parameters
    ----------
    series:
        All series of one study (any orientation; non-axial, non-CT, refused and localizer
        series are called "other" with the reason).
    volumes:
        Series uid → a :class:`Volume` holding the slices chosen by :func:`sample_indices`
        (or any slices). Series without a volume are classified from tags only.
    progress:
        Progress/cancel object; checked between series.

    Returns
    -------
    dict
        Series uid → :class:`PhaseCall`. Series of one acquisition (thin and thick recons) get
        the same phase. ``conflict`` marks calls the user should confirm.
    """
    volumes = volumes or {}
    prog = sub_progress(progress, 0.0, 1.0)
    ops: list[_SeriesOpinion] = []
    for k, s in enumerate(series):
        prog.check()
        prog.update(k / max(len(series), 1), f"phase of series {s.series_number or s.uid}")
        ops.append(_opinion(s, series, volumes.get(s.uid)))
    groups = _groups(ops)
    labels, confs = _solve(ops, groups)
    # A phase nobody got: every liver series left as "other" may be it (a portal phase whose
    # liver could not be measured, say), so each of them is sent to the user.
    missing = [p for p in _PHASES if p not in labels]
    prog.update(1.0, "phases classified")

    group_of: dict[int, int] = {i: g for g, members in enumerate(groups) for i in members}
    times = [_group_time(ops, g) for g in groups]
    order = sorted(range(len(groups)), key=lambda g: (times[g] is None, times[g] or 0.0))
    calls: dict[str, PhaseCall] = {}
    for i, op in enumerate(ops):
        s = op.series
        if not op.eligible:
            calls[s.uid] = PhaseCall(
                phase="other", confidence=1.0, evidence=[f"{op.reason} → other"]
            )
            continue
        g = group_of[i]
        phase = labels[g]
        conf = confs[g]
        evidence = [e.text for e in op.tag]
        tag_phase, tag_conf, _ = _summarise(op.tag, "tags")
        img_phase, img_conf, _ = _summarise(op.image, "image")
        if op.landmarks is not None:
            lm = op.landmarks
            parts = []
            for name, value in (
                ("aorta", lm.aorta.hu),
                ("portal vein", lm.portal_vein.hu),
                ("liver", lm.liver.hu),
            ):
                if value is not None:
                    parts.append(f"{name} {value:.0f} HU")
            if img_phase is not None:
                evidence.append(", ".join(parts) + f" → {img_phase} ({img_conf:.2f})")
        if times[g] is not None and sum(t is not None for t in times) >= 2:
            rank = [gg for gg in order if times[gg] is not None].index(g) + 1
            n_known = sum(t is not None for t in times)
            evidence.append(
                f"acquisition {rank} of {n_known} in the study ({format_time(times[g])})"
            )
        siblings = [ops[j].series for j in groups[g] if j != i]
        for sib in siblings:
            evidence.append(
                f"same acquisition as series {sib.series_number if sib.series_number is not None else sib.uid}"
                f" ('{sib.description}', {sib.slice_thickness or '?'} mm): same phase"
            )
        conflict = False
        if (
            tag_phase is not None
            and img_phase is not None
            and tag_conf >= _TAG_OPINION_MIN
            and img_conf >= _OPINION_MIN
            and tag_phase != img_phase
        ):
            conflict = True
            evidence.append(f"conflict: tags say {tag_phase}, image says {img_phase}")
        own = CLASSES[int(np.argmax(op.combined))]
        if own != phase and float(op.combined.max()) >= _OPINION_MIN:
            conflict = True
            evidence.append(
                f"conflict: looks {own} ({float(op.combined.max()):.2f}) but called {phase} for the study to be consistent"
            )
        if not op.tag and not op.image:
            evidence.append("no tag or image evidence")
            conf = min(conf, 0.3)
        if phase == "other" and missing:
            evidence.append(
                f"no series of this study was called {' or '.join(missing)}: this one may be it"
            )
            conf = min(conf, 0.5)
        if conf < CONFIRM_BELOW:
            evidence.append(f"low confidence {conf:.2f}: please confirm")
        evidence.append(f"→ {phase} ({conf:.2f})")
        calls[s.uid] = PhaseCall(
            phase=phase,
            confidence=float(conf),
            evidence=evidence,
            tag_phase=tag_phase,
            tag_confidence=tag_conf,
            image_phase=img_phase,
            image_confidence=img_conf,
            conflict=conflict,
            measurements=op.landmarks.as_dict() if op.landmarks is not None else {},
        )
    return calls


def classify_series(
    series: SeriesInfo,
    study_series: Sequence[SeriesInfo],
    volume: Volume | None = None,
) -> PhaseCall:
    """Classify one series in the context of its study (relative timing, agent in other series).

    The other series contribute their tags only (no images), so this is the cheap call for a
    single series; :func:`classify_study` is the better one when the whole study is at hand.
    """
    study = list(study_series)
    if all(s.uid != series.uid for s in study):
        study.append(series)
    vols = {series.uid: volume} if volume is not None else None
    return classify_study(study, vols)[series.uid]


def needs_confirmation(call: PhaseCall) -> bool:
    """True when the user should confirm this call (conflict or confidence below CONFIRM_BELOW)."""
    return call.conflict or call.confidence < CONFIRM_BELOW
