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


def test_the_bundled_model_is_reported_against_its_target() -> None:
    """Whatever the shipped card says (it changes with each retraining), the panel's verdict
    follows its held-out AUC against 90 % of the cohort's Bayes-optimal AUC."""
    card = _bundled_card()
    ev = held_out_evidence(card)
    auc_doc = card["metrics"]["test"]["patient_auc"]
    bayes = card["metrics"]["test"]["bayes_optimal"]["auc"]
    assert ev.auc == pytest.approx(auc_doc["auc"]) and ev.patients == card["metrics"]["test"]["patients"]
    assert ev.target == pytest.approx(round(0.9 * bayes, 2))
    below = auc_doc["auc"] < ev.target or auc_doc["ci_low"] <= 0.5
    assert ev.meets_target is not below
    assert ("do not rely" in ev.headline()) is below
    text = ev.sentence()
    assert f"AUC {auc_doc['auc']:.2f}" in text and "coin toss" in text
    assert ("cannot be told apart from chance" in text) is (auc_doc["ci_low"] <= 0.5)


def test_bundled_training_summary_has_no_internal_keys_or_paths() -> None:
    card = _bundled_card()
    cohort = card["training_data"]["cohort"]
    text = training_summary(card)
    assert text.startswith(f"{cohort['patients']} patients ({cohort['responders']} responders)")
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
    # the shipped card's verdict (it changes with each retraining), right under the label
    assert lines[label_at + 1].startswith(held_out_evidence(_bundled_card()).headline())
    assert "needs_confirmation" not in panel.text()
    for card, headline in (((0.85, 0.78, 0.92), "Validated on held-out patients"),
                           ((0.70, 0.61, 0.79), "Below its target on held-out patients")):
        desc = ModelDescription.from_dict({**_card(*card, target=0.75), "version": "1", "architecture": {}})
        panel.set_result(result, desc)
        lines = panel.text().splitlines()
        assert lines[lines.index("RESPONDER") + 1].startswith(headline)


@pytest.mark.gui
def test_model_description_dialog_is_readable_without_build_paths(qtbot) -> None:  # type: ignore[no-untyped-def]
    from app.ui import dialogs

    card = _bundled_card()
    build_csv = card["training_data"]["cohort"]["csv"]
    assert build_csv.startswith("/")  # the real card does carry a path of the build machine
    folder, name = build_csv.rsplit("/", 1)
    dlg = dialogs.ModelDescriptionDialog(card, "f" * 64, str(Path("/opt/x/demo-model.safetensors")))
    qtbot.addWidget(dlg)
    text = dlg.summary.toPlainText()
    assert held_out_evidence(card).headline() in text
    cohort = card["training_data"]["cohort"]
    assert "Trained on" in text and f"{cohort['patients']} patients ({cohort['responders']} responders)" in text
    assert folder not in text and "needs_confirmation" not in text
    assert "demo-model.safetensors" in text and "/opt/x" not in text
    assert "patient result by" in text  # how the card's aggregation decides, in words
    raw = dlg.findChild(dialogs.QtWidgets.QPlainTextEdit).toPlainText()
    assert build_csv not in raw and name in raw


@pytest.mark.gui
def test_the_card_says_whether_tumour_is_gated_to_the_liver() -> None:
    from app.ui import dialogs

    arch = {"backbone": "small", "head": "lesion", "aggregation": "lesion_weighted"}
    assert "connected to the liver" not in dialogs._architecture_text(arch)
    assert "lesion head, tumour only where connected to the liver" in dialogs._architecture_text(
        {**arch, "liver_gate": True})
