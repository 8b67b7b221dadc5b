"""Result honesty (issue 17): the model card's held-out AUC against its target, in words."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from app.inference.card import held_out_evidence, training_summary
from app.paths import resources_dir


def _bundled_card() -> dict:
    """The shipped demo model's card, read from the safetensors header (no torch needed)."""
    path = resources_dir() / "models" / "demo-model.safetensors"
    with path.open("rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return json.loads(header["__metadata__"]["description"])


def test_the_bundled_model_is_reported_below_its_target() -> None:
    card = _bundled_card()
    ev = held_out_evidence(card)
    auc = card["metrics"]["test"]["patient_auc"]["auc"]
    bayes = card["metrics"]["test"]["bayes_optimal"]["auc"]
    assert ev.auc == pytest.approx(auc) and ev.patients == card["metrics"]["test"]["patients"]
    assert ev.target == pytest.approx(round(0.9 * bayes, 2))
    assert not ev.meets_target and ev.chance_in_ci
    assert "do not rely" in ev.headline()
    text = ev.sentence()
    assert f"AUC {auc:.2f}" in text and "coin toss" in text and "chance" in text


def test_bundled_training_summary_has_no_internal_keys_or_paths() -> None:
    text = training_summary(_bundled_card())
    assert text.startswith("240 patients (72 responders)")
    assert "needs_confirmation" not in text and "/" not in text


def _card(auc: float | None, lo: float = 0.7, hi: float = 0.9, target: object = None) -> dict:
    metrics: dict = {}
    if auc is not None:
        metrics["test"] = {"patients": 120, "patient_auc": {"auc": auc, "ci_low": lo, "ci_high": hi}}
    if target is not None:
        metrics["target"] = target
    return {"name": "m", "weights_kind": "site-trained", "metrics": metrics}


def test_stated_target_met_and_missed() -> None:
    good = held_out_evidence(_card(0.82, target={"patient_auc": 0.75}))
    assert good.meets_target and good.headline() == "Validated on held-out patients"
    assert "stated in the model card" in good.sentence()
    bad = held_out_evidence(_card(0.70, 0.61, 0.79, target=0.75))
    assert not bad.meets_target and "does not reach its target" in bad.sentence()


def test_no_held_out_figures_is_not_validated() -> None:
    ev = held_out_evidence(_card(None))
    assert not ev.validated and not ev.meets_target
    assert "unknown" in ev.sentence()
    assert held_out_evidence(None).headline().startswith("Not validated")


def test_without_target_only_chance_counts() -> None:
    assert held_out_evidence(_card(0.8, 0.7, 0.9)).meets_target
    assert not held_out_evidence(_card(0.6, 0.45, 0.75)).meets_target


pytest.importorskip("PySide6")


@pytest.mark.gui
def test_result_panel_says_it_next_to_the_label(qtbot) -> None:  # type: ignore[no-untyped-def]
    import ui_fixtures as fx

    from app.inference.weights import ModelDescription
    from app.ui.result_panel import ResultPanel

    panel = ResultPanel()
    qtbot.addWidget(panel)
    panel.show()
    result = fx.prediction_result([0.8] * 20 + [0.3] * 10, device="cpu")
    panel.set_result(result, ModelDescription.from_dict(_bundled_card()))
    assert panel.evidence_label.isVisible()
    lines = panel.text().splitlines()
    label_at = lines.index("RESPONDER")
    assert lines[label_at + 1].startswith("Below its target on held-out patients")
    assert "needs_confirmation" not in panel.text()
    good = ModelDescription.from_dict({**_card(0.85, 0.78, 0.92, target=0.75), "version": "1",
                                       "architecture": {}})
    panel.set_result(result, good)
    assert "Validated on held-out patients" in panel.text()


@pytest.mark.gui
def test_model_description_dialog_is_readable_without_build_paths(qtbot) -> None:  # type: ignore[no-untyped-def]
    from app.ui import dialogs

    card = _bundled_card()
    assert "/work/h5data" in json.dumps(card)  # the real card does carry the build path
    dlg = dialogs.ModelDescriptionDialog(card, "f" * 64, str(Path("/opt/x/demo-model.safetensors")))
    qtbot.addWidget(dlg)
    text = dlg.summary.toPlainText()
    assert "Below its target on held-out patients" in text
    assert "Trained on" in text and "240 patients (72 responders)" in text
    assert "/work/" not in text and "needs_confirmation" not in text
    assert "demo-model.safetensors" in text and "/opt/x" not in text
    raw = dlg.findChild(dialogs.QtWidgets.QPlainTextEdit).toPlainText()
    assert "/work/h5data" not in raw and "labels.csv" in raw
