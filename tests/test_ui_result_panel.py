"""The result panel (app.ui.result_panel): label, vote split, model identity, caveats."""

from __future__ import annotations

import pytest
import ui_fixtures as fx

from app import INTENDED_USE
from app.inference.result import PredictionResult
from app.inference.weights import WEIGHTS_RANDOM, WEIGHTS_SITE, WEIGHTS_SYNTHETIC, ModelDescription
from app.ui.result_panel import ResultPanel, ResultSummary, weights_banner
from app.ui.vote_strip import NON_RESPONDER_COLOR, RESPONDER_COLOR

pytestmark = pytest.mark.gui

SYNTHETIC = ModelDescription(name="hcc-demo", version="0.3.0", weights_kind=WEIGHTS_SYNTHETIC,
                             training_data={"patients": 400, "source": "synthetic, seed 7"})
RANDOM = ModelDescription(name="random-init", version="0", weights_kind=WEIGHTS_RANDOM)


def result(probabilities: list[float] | None = None, **kw: object) -> PredictionResult:
    """A real vote (default: 19 of 30 slices for responder, mean 0.62); the model's identity
    comes from its card."""
    fields: dict[str, object] = dict(model_sha256="ab12cd34ef56" + "0" * 52, device="cuda:0")
    fields.update(kw)
    probs = probabilities or [0.8] * 19 + [0.3] * 11
    return fx.prediction_result(probs, **fields)  # type: ignore[no-any-return]


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
    assert "Probability of response 0.62" in text
    assert "hcc-demo 0.3.0 · SHA-256 ab12cd34ef56" in text
    assert "Trained on 400 patients; synthetic phantoms, not patients; synthetic, seed 7" in text
    assert "Demonstration model trained on synthetic phantoms — not for clinical use" in text
    assert "Ran on cuda:0" in text
    assert "Tied vote" not in text
    assert INTENDED_USE in text
    assert RESPONDER_COLOR.name() in panel.label_label.styleSheet()


def test_non_responder_on_cpu_fallback_with_warnings(panel: ResultPanel) -> None:
    panel.set_result(
        result(
            [0.6] * 4 + [0.255] * 21,
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
            [0.6] * 12 + [0.38] * 12, tie_rule="mean probability < 0.5",
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


def test_summary_takes_identity_from_the_result_first_and_the_card_after() -> None:
    """A result re-opened from the register carries its model's name; the card fills the rest."""
    s = ResultSummary(result(model_name="m", model_version="1", weights_kind=WEIGHTS_SITE), None)
    assert (s.model_text, s.banner[1], s.training_data) == ("m 1 · SHA-256 ab12cd34ef56", "info", "")
    card = ModelDescription(
        name="card-name", version="2", weights_kind=WEIGHTS_SYNTHETIC,
        training_data={"patients": 400, "responder_rate": 0.2812, "split": {"train": 300}},
        metrics={"auc": 0.8412, "auc_ci": [0.78, 0.9]},
    )
    s = ResultSummary(result(), card)
    assert s.model_text.startswith("card-name 2") and s.banner[1] == "caution"
    # the cohort's size in words; internal counters and nested detail stay in the JSON tab
    assert s.training_data == "400 patients; synthetic phantoms, not patients"
    # figures that are not held-out ("test") results do not count as validation
    assert s.evidence_headline.startswith("Not validated") and not s.evidence_ok
    assert not any(line.startswith("Validation:") for line in s.lines())
    assert weights_banner("")[1] == "caution"
