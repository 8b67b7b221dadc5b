"""Contrast-phase evidence from DICOM tags: series description, contrast agent, bolus timing.

Everything here reads :class:`app.dicom.types.SeriesInfo` fields only (no pixels), so it is
cheap and runs during the header scan. Each piece of evidence is an :class:`Evidence`: a
human-readable sentence plus a *likelihood* over the four classes (plain, arterial, portal,
other). :mod:`app.dicom.phase` multiplies the likelihoods of independent pieces of evidence
(naive Bayes with a flat prior) and combines them with the image evidence.

Why likelihoods and not rules: tags in the wild are incomplete, copied between series, or in a
local language; a soft score lets a strong description outweigh a weak "no contrast agent tag",
and lets the image overrule a single doubtful tag while still reporting the disagreement.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.dicom.types import PhaseOrOther, SeriesInfo

#: Class order of every likelihood vector in this package.
CLASSES: tuple[PhaseOrOther, PhaseOrOther, PhaseOrOther, PhaseOrOther] = (
    "plain",
    "arterial",
    "portal",
    "other",
)


@dataclass
class Evidence:
    """One observation for or against each phase.

    Attributes
    ----------
    text:
        What a user reads ("description 'ART 5.0 B30f' → arterial").
    likelihood:
        Relative likelihood of the observation under plain, arterial, portal, other (any
        positive scale; only ratios matter).
    source:
        ``"tag"`` or ``"image"`` (``"study"`` for evidence from the other series of the study).
    """

    text: str
    likelihood: np.ndarray
    source: str = "tag"


def _lik(plain: float, arterial: float, portal: float, other: float) -> np.ndarray:
    return np.array([plain, arterial, portal, other], dtype=np.float64)


def posterior(evidence: Sequence[Evidence]) -> np.ndarray:
    """Normalised product of the likelihoods of ``evidence`` (flat prior over the 4 classes).

    Computed in log space so that many confident pieces cannot underflow.
    """
    log_p = np.zeros(len(CLASSES))
    for ev in evidence:
        log_p += np.log(np.clip(ev.likelihood, 1e-6, None))
    log_p -= log_p.max()
    p = np.exp(log_p)
    return p / p.sum()


# --- description vocabulary -------------------------------------------------------------------

# Strength of a description match: strong terms name the phase unambiguously ("ARTERIAL",
# "门脉期"); weak ones are short abbreviations with other common meanings ("AP" is also
# antero-posterior, "PRE" any pre-something, "VEN" may be any venous phase).
_STRONG = 0.95
_MEDIUM = 0.85
_WEAK = 0.7

# (pattern, phase, strength). Latin patterns are matched on word boundaries, where a "word"
# is a run of letters: "ART" must not match inside "PARTIAL" or "ARTEFACT", "PV" not inside
# "SPV", but digits and punctuation count as boundaries so that "ART5.0" or "ABD_PV_5mm" match.
# Order matters: negated contrast terms ("NON-CONTRAST", "W/O") are matched and removed first so
# that their "CONTRAST" does not read as contrast present, longer phrases before their parts.
_LATIN_TERMS: list[tuple[str, PhaseOrOther | None, float]] = [
    # plain / unenhanced
    (r"NON[\s\-_]*CONTRAST(?:ED)?", "plain", _STRONG),
    (r"NON[\s\-_]*CON", "plain", _STRONG),
    (r"NON[\s\-_]*ENHANCED", "plain", _STRONG),
    (r"UN[\s\-_]*ENHANCED", "plain", _STRONG),
    (
        r"W(?:ITH)?[\s]*/?[\s]*O(?:UT)?[\s\-_]+(?:IV[\s\-_]+)?(?:CONTRAST|CON|KM|CM)",
        "plain",
        _STRONG,
    ),
    (r"WITHOUT[\s\-_]+(?:IV[\s\-_]+)?(?:CONTRAST|CON)", "plain", _STRONG),
    (r"NO[\s\-_]+(?:IV[\s\-_]+)?CONTRAST", "plain", _STRONG),
    (r"PRE[\s\-_]*CONTRAST", "plain", _STRONG),
    (r"PRE[\s\-_]*KM", "plain", _STRONG),
    (r"OHNE[\s\-_]+KM", "plain", _STRONG),
    (r"SIN[\s\-_]+CONTRASTE", "plain", _STRONG),
    (r"SANS[\s\-_]+(?:INJECTION|CONTRASTE|IV)", "plain", _STRONG),
    (r"NATIVE?", "plain", _STRONG),
    (r"PLAIN", "plain", _STRONG),
    (r"NECT|NCCT|UECT", "plain", _STRONG),
    (r"NC", "plain", _MEDIUM),
    (r"C-(?![A-Z0-9])", "plain", _MEDIUM),
    (r"SIMPLE", "plain", _MEDIUM),  # Canon's rendering of 単純 ("simple" = unenhanced)
    (r"PRE", "plain", _WEAK),
    (r"BLANK", "plain", _WEAK),
    # delayed / equilibrium → other (not one of the model's three phases)
    (r"DELAY(?:ED)?", "other", _STRONG),
    (r"EQUILIBRIUM", "other", _STRONG),
    (r"LATE[\s\-_]*PHASE", "other", _STRONG),
    (r"SP(?:AE|Ä)T(?:PHASE)?", "other", _STRONG),
    (r"TARDIVE?|TARDIF|TARDIA", "other", _STRONG),
    (r"EXCRETORY|UROGRAPHIC|NEPHROGRAPHIC", "other", _STRONG),
    (r"DEL|DLY|EQ", "other", _MEDIUM),
    (r"DP", "other", _WEAK),  # United Imaging "Delay Phase"
    (r"\d+\s*MIN", "other", _WEAK),
    # portal venous (before the bare arterial/venous words it contains)
    (r"PORT(?:AL)?[\s\-_]*VEN(?:OUS|ÖS|OES|OSA|EUX)?", "portal", _STRONG),
    (r"PORTO[\s\-_]*VEN(?:OUS|ÖS|OES|OSA|EUX)?", "portal", _STRONG),
    (r"PORTAL", "portal", _STRONG),
    (r"PVP|PVENOUS|PVEN", "portal", _STRONG),
    (r"PV", "portal", _MEDIUM),
    (r"VENOUS|VEN(?:Ö|OE)S|VENOSA|VENEUX|VEINEUX", "portal", _MEDIUM),
    (r"VP|VEN", "portal", _WEAK),
    # arterial
    (r"(?:LATE|EARLY|HEPATIC)[\s\-_]*ART(?:ERIAL)?", "arterial", _STRONG),
    (r"ARTERI(?:AL|ELL|ELLE|EL|ALE|A)", "arterial", _STRONG),
    (r"ART", "arterial", _MEDIUM),
    (r"HAP|LAP|EAP", "arterial", _MEDIUM),
    (r"AP", "arterial", _WEAK),
    (r"CTA|ANGIO", "arterial", _WEAK),
    # contrast given, phase unknown (None): evidence against plain only
    (r"C\+", None, _MEDIUM),
    (r"CE|CECT", None, _WEAK),
    (r"(?:WITH|MIT|POST)[\s\-_]*(?:IV[\s\-_]+)?(?:CONTRAST|KM|CM)", None, _MEDIUM),
    (r"CONTRAST|KM|ENHANCED|POST", None, _WEAK),
]

# Chinese (simplified and traditional) and Japanese wording: no spaces between words, so these
# are plain substring matches, longest first ("门静脉期" before "静脉期" before "静脉").
_CJK_TERMS: list[tuple[str, PhaseOrOther | None, float]] = [
    ("非增强", "plain", _STRONG),
    ("平扫", "plain", _STRONG),
    ("平掃", "plain", _STRONG),
    ("单纯", "plain", _STRONG),
    ("単純", "plain", _STRONG),
    ("延迟期", "other", _STRONG),
    ("延遲期", "other", _STRONG),
    ("平衡期", "other", _STRONG),
    ("平衡相", "other", _STRONG),
    ("延迟", "other", _STRONG),
    ("延遲", "other", _STRONG),
    ("门静脉期", "portal", _STRONG),
    ("門靜脈期", "portal", _STRONG),
    ("门脉期", "portal", _STRONG),
    ("門脈期", "portal", _STRONG),
    ("門脈相", "portal", _STRONG),
    ("门静脉", "portal", _STRONG),
    ("門靜脈", "portal", _STRONG),
    ("门脉", "portal", _STRONG),
    ("門脈", "portal", _STRONG),
    ("实质期", "portal", _MEDIUM),
    ("實質期", "portal", _MEDIUM),
    ("静脉期", "portal", _MEDIUM),
    ("靜脈期", "portal", _MEDIUM),
    ("静脈相", "portal", _MEDIUM),
    ("动脉期", "arterial", _STRONG),
    ("動脈期", "arterial", _STRONG),
    ("動脈相", "arterial", _STRONG),
    ("动脉", "arterial", _STRONG),
    ("動脈", "arterial", _STRONG),
    ("静脉", "portal", _WEAK),
    ("靜脈", "portal", _WEAK),
    ("增强", None, _MEDIUM),
    ("增強", None, _MEDIUM),
    ("造影", None, _MEDIUM),
]

# Not preceded / followed by a letter (any script): word boundaries for Latin abbreviations that
# still let digits and punctuation touch the term.
_WORD_PATTERNS = [
    (re.compile(r"(?<![^\W\d_])(?:" + pat + r")(?![^\W\d_])"), phase, strength)
    for pat, phase, strength in _LATIN_TERMS
]


@dataclass
class DescriptionMatch:
    """A vocabulary term found in a description."""

    term: str
    phase: PhaseOrOther | None
    strength: float


def match_description(text: str) -> list[DescriptionMatch]:
    """Find phase vocabulary in a series (or protocol) description.

    Parameters
    ----------
    text:
        Free text such as ``"Arterial 5.0 I30f"``, ``"ABD NATIVE 5.0 B30f"``, ``"门脉期 5mm"``.

    Returns
    -------
    list of DescriptionMatch
        Every non-overlapping term found, in vocabulary order. Case-insensitive; Latin terms only
        on word boundaries (so "PARTIAL" contains no "ART"); each matched span is blanked before
        later terms are tried, so "NON-CONTRAST" is not also read as "CONTRAST".
    """
    work = text.upper()
    found: list[DescriptionMatch] = []
    for term, phase, strength in _CJK_TERMS:
        if term in work:
            found.append(DescriptionMatch(term, phase, strength))
            work = work.replace(term, " ")
    for pattern, phase, strength in _WORD_PATTERNS:
        for m in list(pattern.finditer(work)):
            found.append(DescriptionMatch(m.group(0).strip(), phase, strength))
        work = pattern.sub(" ", work)
    return found


def description_evidence(description: str, label: str = "description") -> Evidence | None:
    """Turn a description into one piece of evidence, or None when it names no phase.

    Several terms naming the same phase reinforce each other; terms naming different phases
    ("AP/PV") give a split likelihood, so that the image decides and a conflict can be shown.
    A contrast-only term ("C+", "增强") says "not plain" without naming a phase.
    """
    matches = match_description(description)
    if not matches:
        return None
    lik = np.ones(len(CLASSES))
    named: list[str] = []
    for m in matches:
        if m.phase is None:
            # Contrast given: plain becomes unlikely, the other three stay equal.
            lik *= _lik(1.0 - m.strength, 1.0, 1.0, 1.0)
        else:
            rest = (1.0 - m.strength) / 3.0
            vec = np.full(len(CLASSES), rest)
            vec[CLASSES.index(m.phase)] = m.strength
            lik *= vec
        named.append(m.term)
    lik /= lik.sum()
    best = CLASSES[int(np.argmax(lik))]
    phases = {m.phase for m in matches if m.phase is not None}
    if len(phases) > 1:
        verdict = "ambiguous (" + ", ".join(sorted(phases)) + ")"
    elif phases:
        verdict = "other (delayed/equilibrium)" if best == "other" else best
    else:
        verdict = "contrast-enhanced"
    terms = ", ".join(dict.fromkeys(named))
    return Evidence(f"{label} '{description.strip()}' [{terms}] → {verdict}", lik, "tag")


# --- contrast agent and timing ----------------------------------------------------------------

_NO_AGENT = {"", "NONE", "NO", "N/A", "NA", "0", "-", "NIL", "KEIN", "KEINE", "无", "無"}


def agent_given(series: SeriesInfo) -> bool | None:
    """True if the contrast agent tag names an agent, False if it says none, None if absent.

    An absent or blank tag is *unknown*, not "no contrast": many archives drop it.
    """
    if series.contrast_agent is None:
        return None
    value = series.contrast_agent.strip().upper()
    if value in _NO_AGENT:
        return False if value else None
    return True


def contrast_evidence(series: SeriesInfo, study: Sequence[SeriesInfo]) -> Evidence | None:
    """Evidence from Contrast/Bolus Agent (and Route), read relative to the rest of the study.

    - agent named, while an earlier series of the study has none → contrast given here (strong);
    - agent named in every series of the study → probably copied by the scanner into the plain
      scan too, so only weak evidence against plain;
    - agent absent here but named in other series → likely the plain scan;
    - absent everywhere → no evidence (absence is not proof of a plain scan).
    """
    given = agent_given(series)
    others = [agent_given(s) for s in study if s.uid != series.uid]
    name = (series.contrast_agent or "").strip()
    route = (series.contrast_route or "").strip()
    route_txt = f", route {route}" if route else ""
    if given is True:
        if others and all(o is True for o in others) and len(others) >= 2:
            return Evidence(
                f"contrast agent '{name}'{route_txt} (named in every series of the study, "
                "so weak evidence)",
                _lik(0.35, 1.0, 1.0, 1.0),
            )
        return Evidence(
            f"contrast agent '{name}'{route_txt} present → not plain", _lik(0.08, 1, 1, 1)
        )
    if given is False:
        return Evidence(
            f"contrast agent tag says none ('{name}') → plain", _lik(1.0, 0.1, 0.1, 0.15)
        )
    if any(o is True for o in others):
        return Evidence(
            "no contrast agent tag while other series of the study name one → probably plain",
            _lik(1.0, 0.3, 0.3, 0.35),
        )
    return None


def bolus_delay(series: SeriesInfo) -> float | None:
    """Seconds from Contrast/Bolus Start Time to the acquisition (None when either is missing).

    Uses AcquisitionTime, else ContentTime, else SeriesTime (the series time of a reconstruction
    can be minutes after the scan, so it comes last). A negative delay of more than 12 hours is
    read as the acquisition having crossed midnight.
    """
    start = series.contrast_start_time
    acq = acquisition_seconds(series)
    if start is None or acq is None:
        return None
    delay = acq - start
    if delay < -12 * 3600:
        delay += 24 * 3600
    elif delay > 12 * 3600:
        delay -= 24 * 3600
    return float(delay)


def acquisition_seconds(series: SeriesInfo) -> float | None:
    """Best available acquisition time of a series (seconds since midnight) or None."""
    for value in (series.acquisition_time, series.content_time, series.series_time):
        if value is not None:
            return float(value)
    return None


def timing_evidence(series: SeriesInfo) -> Evidence | None:
    """Evidence from the delay between bolus start and acquisition.

    Windows follow the usual liver protocols (late arterial ~35 s, portal venous ~70 s,
    delayed/equilibrium ≥ 3 min), softened at their borders because bolus-tracking triggers
    shift them by ±10 s.
    """
    delay = bolus_delay(series)
    if delay is None:
        return None
    txt = f"acquired {delay:.0f} s after bolus start"
    if delay < -2:
        return Evidence(
            f"acquired {-delay:.0f} s before bolus start → plain", _lik(1.0, 0.05, 0.05, 0.08)
        )
    if delay < 8:
        return Evidence(f"{txt} → too early to tell", _lik(0.5, 0.4, 0.15, 0.2))
    if delay < 48:
        return Evidence(f"{txt} → arterial", _lik(0.03, 1.0, 0.1, 0.05))
    if delay < 56:
        return Evidence(f"{txt} → arterial or portal", _lik(0.03, 0.6, 0.6, 0.05))
    if delay < 120:
        return Evidence(f"{txt} → portal", _lik(0.03, 0.07, 1.0, 0.15))
    if delay < 170:
        return Evidence(f"{txt} → portal or delayed", _lik(0.03, 0.03, 0.6, 0.6))
    return Evidence(f"{txt} → delayed (other)", _lik(0.03, 0.03, 0.12, 1.0))


def tag_evidence(series: SeriesInfo, study: Sequence[SeriesInfo]) -> list[Evidence]:
    """All tag evidence for one series: description, protocol-like text, agent, timing.

    The study description is not used: it describes the whole examination ("CT ABD C+"),
    not this series.
    """
    out: list[Evidence] = []
    desc = description_evidence(series.description) if series.description else None
    if desc is not None:
        out.append(desc)
    for ev in (contrast_evidence(series, study), timing_evidence(series)):
        if ev is not None:
            out.append(ev)
    return out


def format_time(seconds: float | None) -> str:
    """``hh:mm:ss`` for seconds since midnight (``"?"`` when unknown)."""
    if seconds is None:
        return "?"
    s = int(round(seconds)) % 86400
    return f"{s // 3600:02d}:{(s % 3600) // 60:02d}:{s % 60:02d}"
