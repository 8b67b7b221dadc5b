"""Tag evidence: description vocabulary, contrast agent, bolus timing."""

from __future__ import annotations

import numpy as np
import pytest
from test_phase_phantom import series_info

from app.dicom.phase_tags import (
    CLASSES,
    bolus_delay,
    contrast_evidence,
    description_evidence,
    match_description,
    timing_evidence,
)


def _best(text: str) -> str | None:
    ev = description_evidence(text)
    if ev is None:
        return None
    return CLASSES[int(np.argmax(ev.likelihood))]


@pytest.mark.parametrize(
    ("text", "phase"),
    [
        # Siemens
        ("ABD NATIVE 5.0 B30f", "plain"),
        ("ART 5.0 B30f", "arterial"),
        ("Arterial 5.0 I30f", "arterial"),
        ("PV 5.0 B30f", "portal"),
        ("VENOUS 5.0 Br40", "portal"),
        # GE
        ("PLAIN", "plain"),
        ("ARTERIAL PHASE", "arterial"),
        ("PORTAL VENOUS", "portal"),
        ("DELAY 3MIN", "other"),
        # Philips
        ("Pre contrast", "plain"),
        ("Art", "arterial"),
        ("Portal", "portal"),
        # Canon / Toshiba
        ("NC 5mm", "plain"),
        ("AP 5mm", "arterial"),
        ("PVP 5mm", "portal"),
        # abbreviations
        ("NECT", "plain"),
        ("ABD C-", "plain"),
        ("HAP", "arterial"),
        ("LAP 1.25", "arterial"),
        ("VP", "portal"),
        ("DEL", "other"),
        ("EQ 5mm", "other"),
        ("NON-CONTRAST", "plain"),
        ("W/O CONTRAST", "plain"),
        ("ABD_PV_5mm", "portal"),
        ("ART5.0", "arterial"),
        ("Leber nativ", "plain"),
        ("Spätphase", "other"),
        # Chinese (simplified and traditional)
        ("平扫 5mm", "plain"),
        ("动脉期", "arterial"),
        ("门脉期", "portal"),
        ("门静脉期 5.0", "portal"),
        ("静脉期", "portal"),
        ("延迟期", "other"),
        ("動脈期", "arterial"),
        ("門靜脈期", "portal"),
    ],
)
def test_vocabulary(text: str, phase: str) -> None:
    assert _best(text) == phase


@pytest.mark.parametrize(
    "text", ["PARTIALBODY", "PARTIAL", "SPV", "CT Body 3.0", "Topogram", "C-SPINE", "APEX", "DELTA"]
)
def test_no_match_inside_words(text: str) -> None:
    assert description_evidence(text) is None


def test_contrast_only_terms_say_not_plain() -> None:
    for text in ("C+", "增强", "CE ABD", "WITH CONTRAST"):
        ev = description_evidence(text)
        assert ev is not None
        lik = ev.likelihood / ev.likelihood.sum()
        assert lik[0] < 0.1, text  # plain unlikely
        assert np.allclose(lik[1], lik[2]), text  # no phase preferred


def test_negated_contrast_is_not_contrast() -> None:
    terms = [m.term for m in match_description("NON-CONTRAST ABDOMEN")]
    assert terms == ["NON-CONTRAST"]


def test_conflicting_terms_are_ambiguous() -> None:
    ev = description_evidence("AP/PV")
    assert ev is not None and "ambiguous" in ev.text
    assert ev.likelihood.max() / ev.likelihood.sum() < 0.8


def test_evidence_text_names_description() -> None:
    ev = description_evidence("ART 5.0 B30f")
    assert ev is not None
    assert "'ART 5.0 B30f'" in ev.text and "arterial" in ev.text


@pytest.mark.parametrize(
    ("delay", "phase"),
    [
        (-60.0, "plain"),
        (20.0, "arterial"),
        (35.0, "arterial"),
        (70.0, "portal"),
        (96.0, "portal"),
        (300.0, "other"),
    ],
)
def test_timing_windows(delay: float, phase: str) -> None:
    s = series_info("a", contrast_start_time=36000.0, acquisition_time=36000.0 + delay)
    ev = timing_evidence(s)
    assert ev is not None
    assert CLASSES[int(np.argmax(ev.likelihood))] == phase


def test_timing_across_midnight() -> None:
    s = series_info("a", contrast_start_time=86390.0, acquisition_time=25.0)
    assert bolus_delay(s) == pytest.approx(35.0)


def test_timing_absent() -> None:
    assert timing_evidence(series_info("a", acquisition_time=36000.0)) is None
    assert timing_evidence(series_info("a", contrast_start_time=36000.0)) is None


def test_contrast_agent_relative_to_study() -> None:
    plain = series_info("p", contrast_agent=None)
    art = series_info("a", contrast_agent="IOPAMIDOL")
    por = series_info("v", contrast_agent="IOPAMIDOL")
    study = [plain, art, por]
    ev_plain = contrast_evidence(plain, study)
    ev_art = contrast_evidence(art, study)
    assert ev_plain is not None and ev_art is not None
    assert np.argmax(ev_plain.likelihood) == 0
    assert ev_art.likelihood[0] < 0.2 * ev_art.likelihood[1]
    # Absent everywhere: no evidence at all (absence is not proof of a plain scan).
    blank = [series_info(u) for u in "xyz"]
    assert contrast_evidence(blank[0], blank) is None
    # Named in every series (copied by the scanner): only weak evidence against plain.
    copied = [series_info(u, contrast_agent="OMNIPAQUE") for u in "xyz"]
    weak = contrast_evidence(copied[0], copied)
    assert weak is not None and weak.likelihood[0] > ev_art.likelihood[0]
