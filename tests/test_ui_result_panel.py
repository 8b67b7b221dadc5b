"""The result panel (app.ui.result_panel): label, vote split, model identity, caveats."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app import INTENDED_USE
from app.ui.result_panel import ResultPanel, summarise, weights_banner
from app.ui.vote_strip import NON_RESPONDER_COLOR, RESPONDER_COLOR

pytestmark = pytest.mark.gui

SYNTHETIC = SimpleNamespace(
    name="hcc-demo", version="0.3.0", weights_kind="trained on synthetic phantoms",
    training_data="400 synthetic patients, seed 7",
)
RANDOM = SimpleNamespace(name="random-init", version="0", weights_kind="random-initialised — not trained")


def result(**kw: object) -> SimpleNamespace:
    base: dict[str, object] = dict(
        label="responder", responder_votes=19, total_votes=30, mean_probability=0.617, tie=False,
        tie_rule="", model_name="", model_version="", model_sha256="ab12cd34ef56" + "0" * 52,
        device="cuda:0", device_reason="", warnings=[],
    )
    base.update(kw)
    return SimpleNamespace(**base)


@pytest.fixture
def panel(qtbot) -> ResultPanel:  # type: ignore[no-untyped-def]
    widget = ResultPanel()
    qtbot.addWidget(widget)
    widget.resize(360, 600)
    widget.show()
    return widget


def test_responder(panel: ResultPanel) -> None:
    panel.set_result(result(), SYNTHETIC)
    text = panel.text()
    assert "RESPONDER" in text and "NON-RESPONDER" not in text
    assert "predicted RECIST 1.1 response (CR/PR)" in text
    assert "19 of 30 slices vote responder (63 %)" in text
    assert "Mean probability of response 0.62" in text
    assert "hcc-demo 0.3.0 · SHA-256 ab12cd34ef56" in text
    assert "Trained on 400 synthetic patients, seed 7" in text
    assert "Demonstration model trained on synthetic phantoms — not for clinical use" in text
    assert "Ran on cuda:0" in text
    assert "Tied vote" not in text
    assert INTENDED_USE in text
    assert RESPONDER_COLOR.name() in panel.label_label.styleSheet()


def test_non_responder_on_cpu_fallback_with_warnings(panel: ResultPanel) -> None:
    panel.set_result(
        result(
            label="non-responder", responder_votes=4, total_votes=25, mean_probability=0.31,
            device="cpu", device_reason="CUDA out of memory — fell back to CPU",
            warnings=["phase assignment confirmed by the user", "arterial series has 1 gap"],
        ),
        SYNTHETIC,
    )
    text = panel.text()
    assert "NON-RESPONDER" in text
    assert "predicted no RECIST 1.1 response (SD/PD)" in text
    assert "4 of 25 slices vote responder (16 %)" in text
    assert "Ran on cpu (CUDA out of memory — fell back to CPU)" in text
    assert "phase assignment confirmed by the user" in text and "arterial series has 1 gap" in text
    assert NON_RESPONDER_COLOR.name() in panel.label_label.styleSheet()


def test_tie_says_which_rule_decided(panel: ResultPanel) -> None:
    panel.set_result(
        result(
            label="non-responder", responder_votes=12, total_votes=24, mean_probability=0.49,
            tie=True, tie_rule="mean probability < 0.5",
        ),
        SYNTHETIC,
    )
    text = panel.text()
    assert "12 of 24 slices vote responder (50 %)" in text
    assert "Tied vote (12 : 12) — decided by mean probability < 0.5" in text
    assert "NON-RESPONDER" in text


def test_random_weights_are_flagged_as_meaningless(panel: ResultPanel) -> None:
    s = panel.set_result(result(), RANDOM)
    assert s.banner == ("Random-initialised weights — result meaningless", "danger")
    assert "Random-initialised weights — result meaningless" in panel.text()
    assert "#7a1010" in panel.banner_label.styleSheet()
    assert panel.text().index("result meaningless") < panel.text().index("RESPONDER")  # read first
    assert RESPONDER_COLOR.name() not in panel.label_label.styleSheet()  # no colour for noise


def test_busy_and_clear(panel: ResultPanel) -> None:
    assert panel.summary is None and "No prediction for this study yet." in panel.text()
    panel.set_busy("Predicting… 40 %")
    assert "Predicting… 40 %" in panel.text() and panel.busy_bar.isVisible()
    panel.set_result(result(), SYNTHETIC)
    assert not panel.busy_bar.isVisible() and "Predicting" not in panel.text()
    panel.clear()
    text = panel.text()
    assert panel.summary is None and "RESPONDER" not in text and INTENDED_USE in text


def test_summary_from_per_slice_results_and_dicts() -> None:
    """A result without vote counts is summarised from its slices; dicts work as well."""
    slices = [SimpleNamespace(label=lab, probability=p) for lab, p in
              [("responder", 0.8), ("non-responder", 0.3), ("responder", 0.7)]]
    s = summarise(SimpleNamespace(slices=slices, mean_probability=0.6), {"name": "m", "version": "1",
                                                                          "weights_kind": "site-trained"})
    assert (s.responder_votes, s.total_votes, s.responder) == (2, 3, True)
    assert s.model_text == "m 1" and s.banner[1] == "info"
    card = SimpleNamespace(
        name="m", version="2", weights_kind="trained on synthetic phantoms",
        training_data={"patients": 400, "responder_rate": 0.2812, "split": {"train": 300}},
        metrics={"auc": 0.8412, "auc_ci": [0.78, 0.9]},
    )
    s = summarise(result(), card)
    # the cohort's size in words; internal counters and nested detail stay in the JSON tab
    assert s.training_data == "400 patients; synthetic phantoms, not patients"
    # figures that are not held-out ("test") results do not count as validation
    assert s.evidence_headline.startswith("Not validated") and not s.evidence_ok
    assert weights_banner("")[1] == "caution"
