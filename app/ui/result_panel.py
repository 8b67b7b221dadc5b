"""The result panel: the predicted label, its vote split, the model's identity and the caveats.

How the main window uses it::

    panel = ResultPanel()
    panel.set_busy("Predicting… 40 %")                  # while the worker runs
    panel.set_result(prediction_result, loaded_model.description)
    panel.clear()                                        # new study

``set_result`` takes the predictor's :class:`~app.inference.result.PredictionResult` (a case
re-opened from the register is turned into one by :func:`app.casework.result_from_record`) and
the model's card, :class:`~app.inference.weights.ModelDescription`, when it is known.
:class:`ResultSummary` derives the panel's text from them; :meth:`ResultSummary.lines` is the
same content as plain text (for a report or a test).

What the reader must never miss is always visible: the label spelled out in words (colour is a
second cue, never the only one), how the slices voted, a banner when the weights are random or
synthetic-only, and the intended-use notice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtGui, QtWidgets

from app import INTENDED_USE
from app.inference.card import HeldOutEvidence, held_out_evidence, training_summary
from app.ui.plain import plain_label, plain_tip
from app.ui.vote_strip import NON_RESPONDER_COLOR, RESPONDER_COLOR, is_responder_label

if TYPE_CHECKING:  # pragma: no cover - typing only; the model card's module imports torch
    from app.inference.result import PredictionResult
    from app.inference.weights import ModelDescription


@dataclass(frozen=True)
class ResultSummary:
    """The panel's text, derived from a prediction and (when known) its model's card.

    The result's own identity fields win; the card fills what a result re-opened from the
    register does not carry (the kind of weights, the training data, the metrics).
    """

    result: PredictionResult
    description: ModelDescription | None = None
    #: everything said with the result (the study's and the images' warnings - a gap, lossy
    #: compression - with the model's, as recorded); None: the model's own
    said: Sequence[str] | None = None

    @property
    def warnings(self) -> list[str]:
        """Everything said with the result (the model's own when nothing more is known)."""
        return list(self.result.warnings if self.said is None else self.said)

    @property
    def study_warnings(self) -> list[str]:
        """What was said about the study and its images, beyond the model's own warnings."""
        own = set(self.result.warnings)
        return [w for w in self.warnings if w not in own]

    @property
    def study_warnings_text(self) -> str:
        """One line for the panel (the list itself stands under the phase boxes)."""
        n = len(self.study_warnings)
        if not n:
            return ""
        return (f"⚠ {n} warning{'s' if n > 1 else ''} about the study and its images (under "
                "Phase assignment; recorded with the case)")

    @property
    def responder(self) -> bool:
        """True when the patient-level label is responder (RECIST 1.1 CR/PR)."""
        return is_responder_label(self.result.label)

    @property
    def model_name(self) -> str:
        return self.result.model_name or (self.description.name if self.description else "")

    @property
    def model_version(self) -> str:
        return self.result.model_version or (self.description.version if self.description else "")

    @property
    def weights_kind(self) -> str:
        return self.result.weights_kind or (self.description.weights_kind if self.description
                                            else "")

    @property
    def training_data(self) -> str:
        """The card's training data in words ("240 patients (72 responders); synthetic
        phantoms, not patients"), no internal keys (empty without a card)."""
        return training_summary(self.description) if self.description else ""

    @property
    def evidence(self) -> HeldOutEvidence | None:
        """How the model did on held-out patients against its target (None without a card):
        shown next to the label (issue 17, result honesty)."""
        return held_out_evidence(self.description) if self.description else None

    @property
    def evidence_headline(self) -> str:
        return self.evidence.headline() if self.evidence else ""

    @property
    def evidence_text(self) -> str:
        return self.evidence.sentence() if self.evidence else ""

    @property
    def evidence_ok(self) -> bool:
        return self.evidence.meets_target if self.evidence else True

    @property
    def metrics(self) -> str:
        """The card's validation metrics as one short line (empty without a card)."""
        return _compact(self.description.metrics) if self.description else ""

    @property
    def headline(self) -> str:
        """``"RESPONDER"`` or ``"NON-RESPONDER"``."""
        return "RESPONDER" if self.responder else "NON-RESPONDER"

    @property
    def meaning(self) -> str:
        """What the label predicts, in RECIST words."""
        return (
            "predicted RECIST 1.1 response (CR/PR)"
            if self.responder
            else "predicted no RECIST 1.1 response (SD/PD)"
        )

    @property
    def vote_text(self) -> str:
        """``"19 of 30 slices vote responder (63 %)"``."""
        r = self.result
        if r.total_votes <= 0:
            return "no slice votes"
        pct = 100.0 * r.responder_votes / r.total_votes
        return f"{r.responder_votes} of {r.total_votes} slices vote responder ({pct:.0f} %)"

    @property
    def probability_text(self) -> str:
        """``"Probability of response 0.62 (mean over the slices)"``."""
        return self.result.probability_text

    @property
    def tie_text(self) -> str:
        """Why a tied vote ended as it did (empty when there was no tie)."""
        if not self.result.tie:
            return ""
        half = self.result.total_votes // 2
        rule = self.result.tie_rule or "the predictor's tie rule"
        return f"Tied vote ({half} : {half}) — decided by {rule}"

    @property
    def model_text(self) -> str:
        """``"demo-model 1.0 · SHA-256 1a2b3c4d5e6f"``."""
        parts = [p for p in (self.model_name, self.model_version) if p]
        text = " ".join(parts) if parts else "unnamed model"
        if self.result.model_sha256:
            text += f" · SHA-256 {self.result.model_sha256[:12]}"
        return text

    @property
    def device_text(self) -> str:
        """``"Ran on CPU (CUDA unavailable: no driver)"``."""
        if not self.result.device:
            return ""
        text = f"Ran on {self.result.device}"
        if self.result.device_reason:
            text += f" ({self.result.device_reason})"
        return text

    @property
    def banner(self) -> tuple[str, str]:
        """``(text, severity)`` about the weights; severity is "danger", "caution" or "info"."""
        return weights_banner(self.weights_kind)

    def lines(self) -> list[str]:
        """The panel's content as plain text lines (for a report or a test)."""
        out = [f"{self.headline} — {self.meaning}", self.vote_text, self.probability_text]
        if self.tie_text:
            out.append(self.tie_text)
        out.append(self.banner[0])
        out.append(f"Model: {self.model_text}")
        if self.weights_kind:
            out.append(f"Weights: {self.weights_kind}")
        if self.training_data:
            out.append(f"Trained on: {self.training_data}")
        if self.evidence_headline:
            out.append(f"{self.evidence_headline}. {self.evidence_text}")
        if self.device_text:
            out.append(self.device_text)
        out.extend(f"Warning: {w}" for w in self.warnings)  # all of them, for a report
        out.append(INTENDED_USE)
        return out


def weights_banner(weights_kind: str) -> tuple[str, str]:
    """Banner text and severity for a model's ``weights_kind``.

    Random weights make the output meaningless and synthetic-only training makes it a
    demonstration: both must be impossible to overlook next to a label that looks like a
    clinical answer.
    """
    kind = (weights_kind or "").lower()
    if "random" in kind or "not trained" in kind or "untrained" in kind:
        return ("Random-initialised weights — result meaningless", "danger")
    if "synthetic" in kind or "phantom" in kind or "demo" in kind:
        return (
            "Demonstration model trained on synthetic phantoms — not for clinical use",
            "caution",
        )
    if "site" in kind:
        return ("Site-trained model — check its local performance before relying on it", "info")
    return ("Origin of the weights unknown — read the model description", "caution")


def _compact(value: str | dict[str, object], max_items: int = 6) -> str:
    """Short one-line text for a model-card field that may be a string or a dict.

    Model cards keep training data and metrics as dicts (``{"patients": 400, "source":
    "synthetic", ...}``); the panel shows the scalar items ("patients: 400, source: synthetic")
    and leaves nested detail to the model-description dialog.
    """
    if value is None or value == "":
        return ""
    if not isinstance(value, dict):
        return str(value)
    items = []
    for key, v in value.items():
        if isinstance(v, (dict, list, tuple)):
            continue
        items.append(f"{key}: {v:.3g}" if isinstance(v, float) else f"{key}: {v}")
        if len(items) == max_items:
            break
    return ", ".join(items)


NO_PREDICTION_TEXT = "No prediction for this study yet."

_BANNER_STYLES = {
    "danger": "background:#7a1010; color:white; border-radius:4px; padding:6px; font-weight:bold;",
    "caution": "background:#8a6300; color:white; border-radius:4px; padding:6px; font-weight:bold;",
    "info": "background:#2f4f6f; color:white; border-radius:4px; padding:6px;",
}


class ResultPanel(QtWidgets.QWidget):
    """The prediction for the study on view, with its provenance and caveats.

    ``set_result(result, model_description)`` shows a prediction, ``set_busy(text)`` shows a
    running job (``set_busy(None)`` ends it), ``clear()`` empties the panel. :attr:`summary`
    is what is shown (None when empty).
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._summary: ResultSummary | None = None
        self.setMinimumWidth(260)

        self.busy_label = QtWidgets.QLabel()
        self.busy_bar = QtWidgets.QProgressBar()
        self.busy_bar.setRange(0, 0)  # indeterminate: the main window's status bar has the %
        self.busy_bar.setMaximumHeight(8)
        self.busy_bar.setTextVisible(False)

        self.label_label = QtWidgets.QLabel()
        self.label_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.meaning_label = QtWidgets.QLabel()
        self.meaning_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        # Next to the label: how the model did on held-out patients (issue 17, result honesty).
        self.evidence_label = QtWidgets.QLabel()
        self.vote_label = QtWidgets.QLabel()
        self.probability_label = QtWidgets.QLabel()
        self.tie_label = QtWidgets.QLabel()
        self.banner_label = QtWidgets.QLabel()
        self.model_label = QtWidgets.QLabel()
        self.device_label = QtWidgets.QLabel()
        self.warnings_label = QtWidgets.QLabel()
        self.warnings_label.setStyleSheet("color:#b36b00;")
        #: Whether the result is in the PACS (DICOM SR + captures): "stored" / "not stored".
        self.pacs_label = QtWidgets.QLabel()
        self.intended_use_label = QtWidgets.QLabel(INTENDED_USE)
        self.intended_use_label.setStyleSheet("color:gray; font-style:italic; font-size:8pt;")
        self.empty_label = QtWidgets.QLabel(NO_PREDICTION_TEXT)
        self.empty_label.setWordWrap(True)
        self.empty_label.setStyleSheet("color:gray;")

        # Texts that may quote the files (reasons, warnings) are plain text; the labels that the
        # panel writes as markup escape every value and are rich text on purpose (issue 14).
        for plain in (self.busy_label, self.label_label, self.meaning_label, self.vote_label,
                      self.probability_label, self.tie_label, self.banner_label,
                      self.intended_use_label, self.empty_label):
            plain_label(plain)
        for rich in (self.evidence_label, self.model_label, self.device_label,
                     self.warnings_label, self.pacs_label):
            rich.setTextFormat(QtCore.Qt.TextFormat.RichText)

        big = self.label_label.font()
        big.setPointSizeF(big.pointSizeF() * 1.8)
        big.setBold(True)
        self.label_label.setFont(big)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        # The weights banner comes first: "random weights" must be read before the label.
        for w in (
            self.busy_label, self.busy_bar, self.empty_label, self.banner_label,
            self.label_label, self.evidence_label, self.meaning_label, self.vote_label,
            self.probability_label, self.tie_label, self.model_label, self.device_label,
            self.warnings_label, self.pacs_label,
        ):
            if isinstance(w, QtWidgets.QLabel):
                w.setWordWrap(True)
                w.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            layout.addWidget(w)
        layout.addStretch(1)
        self.intended_use_label.setWordWrap(True)
        layout.addWidget(self.intended_use_label)
        self.set_busy(None)
        self.clear()

    @property
    def summary(self) -> ResultSummary | None:
        """What is shown (None when the panel is empty)."""
        return self._summary

    def set_result(self, result: PredictionResult,
                   model_description: ModelDescription | None = None,
                   warnings: Sequence[str] | None = None) -> ResultSummary:
        """Show ``result`` with its model's card (when known) and ``warnings`` (everything said
        with it, :attr:`app.case.flow.CaseOutcome.warnings`; default the model's own): a
        caveat about the images (lossy compression, a gap) stands beside the label it
        qualifies, not only under the phase boxes. Ends the busy state."""
        s = ResultSummary(result, model_description, warnings)
        self._summary = s
        self.pacs_label.setText("")  # a result shown anew has no PACS status until told
        self.set_busy(None)
        color = RESPONDER_COLOR if s.responder else NON_RESPONDER_COLOR
        if s.banner[1] == "danger":
            # A label from random weights gets no colour: nothing about it should look like
            # an answer.
            color = QtGui.QColor(110, 110, 110)
        self.label_label.setText(s.headline)
        self.label_label.setStyleSheet(
            f"background:{color.name()}; color:white; border-radius:6px; padding:8px;"
        )
        self.evidence_label.setText(
            f"<b>{_html(s.evidence_headline)}.</b> {_html(s.evidence_text)}" if s.evidence_headline else ""
        )
        self.evidence_label.setStyleSheet(
            "" if s.evidence_ok else "color:#8a1c1c; border:1px solid #c0392b; border-radius:4px; padding:4px;"
        )
        self.meaning_label.setText(s.meaning)
        self.vote_label.setText(s.vote_text)
        self.probability_label.setText(s.probability_text)
        self.tie_label.setText(s.tie_text)
        banner, severity = s.banner
        self.banner_label.setText(banner)
        self.banner_label.setStyleSheet(_BANNER_STYLES[severity])
        model = f"<b>Model</b> {_html(s.model_text)}"
        if s.weights_kind:
            model += f"<br><b>Weights</b> {_html(s.weights_kind)}"
        if s.training_data:
            model += f"<br><b>Trained on</b> {_html(s.training_data)}"
        self.model_label.setText(model)
        self.device_label.setText(_html(s.device_text))
        # The model's own warnings in full; the study's as one line whose tooltip lists them
        # (they stand in full under the phase boxes: the panel has no room for a long list).
        own = s.result.warnings
        self.warnings_label.setText(
            ("<b>Warnings</b><ul style='margin:0'>"
             + "".join(f"<li>{_html(w)}</li>" for w in own) + "</ul>" if own else "")
            + (_html(s.study_warnings_text) if s.study_warnings else "")
        )
        self.warnings_label.setToolTip(plain_tip("\n".join(s.study_warnings)) if s.study_warnings else "")
        self._show_result_widgets(True)
        self.tie_label.setVisible(bool(s.tie_text))
        self.evidence_label.setVisible(bool(s.evidence_headline))
        self.device_label.setVisible(bool(s.device_text))
        self.warnings_label.setVisible(bool(s.warnings))
        return s

    def set_pacs_status(self, text: str | None, stored: bool = False) -> None:
        """Say whether the shown result is stored in the PACS; None hides the line.

        Green when stored, red when a store failed or is only on disk: a result that the
        tumour board will look for in the PACS must not seem to be there when it is not.
        """
        self.pacs_label.setText(f"<b>PACS</b> {_html(text)}" if text else "")
        self.pacs_label.setStyleSheet("color:#1b7a1b;" if stored else "color:#b00020;")
        self.pacs_label.setVisible(bool(text) and self._summary is not None)

    def clear(self) -> None:
        """Empty the panel (the intended-use notice stays)."""
        self._summary = None
        self.pacs_label.setText("")
        self.empty_label.setText(NO_PREDICTION_TEXT)
        self._show_result_widgets(False)
        self.empty_label.setVisible(True)

    def show_unavailable(self, reason: str) -> None:
        """Empty panel that says why this study cannot be predicted (a view-only study)."""
        self.clear()
        self.empty_label.setText(
            f"Prediction is not possible for this study: {reason}. "
            "The series are shown for viewing only."
        )

    def set_busy(self, text: str | None) -> None:
        """Show ``text`` with a busy indicator; None or "" hides it."""
        busy = bool(text)
        self.busy_label.setText(text or "")
        self.busy_label.setVisible(busy)
        self.busy_bar.setVisible(busy)
        if busy:
            self.empty_label.setVisible(False)
        elif self._summary is None:
            self.empty_label.setVisible(True)

    def text(self) -> str:
        """Everything the panel shows as plain text, one item per line (visible items only)."""
        parts: list[str] = []
        for w in (
            self.busy_label, self.empty_label, self.banner_label, self.label_label,
            self.evidence_label, self.meaning_label, self.vote_label, self.probability_label, self.tie_label,
            self.model_label, self.device_label, self.warnings_label, self.pacs_label,
            self.intended_use_label,
        ):
            if not w.isHidden() and w.text():
                rich = w.textFormat() == QtCore.Qt.TextFormat.RichText
                parts.append(_plain(w.text()) if rich else w.text())
        return "\n".join(parts)

    def _show_result_widgets(self, on: bool) -> None:
        self.empty_label.setVisible(not on)
        for w in (
            self.label_label, self.evidence_label, self.meaning_label, self.vote_label,
            self.probability_label, self.tie_label, self.banner_label, self.model_label, self.device_label,
            self.warnings_label,
        ):
            w.setVisible(on)
        self.pacs_label.setVisible(on and bool(self.pacs_label.text()))


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(html: str) -> str:
    text = re.sub(r"<br\s*/?>|</li>", "\n", html)
    text = re.sub(r"<[^>]+>", " ", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"[ \t]+", " ", text).strip()
