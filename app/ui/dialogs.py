"""Dialogs: errors with details, questions, model description, About, phase confirmation.

Every error and question of the app goes through :func:`show_error`, :func:`show_info` and
:func:`ask` in this module, called as ``dialogs.show_error(...)`` (module attribute, never
imported by name): tests replace these functions with recorders (``monkeypatch.setattr``), so
no dialog ever blocks a test, and the app's code path stays the real one.

The real implementations use window-modal ``QMessageBox.open()`` rather than ``exec()``: the
caller returns at once and the event loop keeps running (no nested loop, no stall), answers
arrive through a callback.
"""

from __future__ import annotations

import html
import json
import logging
import platform
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from PySide6 import QtCore, QtGui, QtWidgets

from app import INTENDED_USE, PHASES, __version__
from app.inference.config import AGGREGATION_RULES
from app.ui.plain import plain_label

if TYPE_CHECKING:  # pragma: no cover - typing only; app.inference.weights imports torch
    from app.inference.weights import ModelDescription

#: A model card as the dialog takes it: the loaded model's description, or its JSON as a dict.
ModelCard: TypeAlias = "ModelDescription | Mapping[str, object] | None"

log = logging.getLogger(__name__)


def _box(
    parent: QtWidgets.QWidget | None,
    icon: QtWidgets.QMessageBox.Icon,
    title: str,
    message: str,
    details: str = "",
) -> QtWidgets.QMessageBox:
    box = QtWidgets.QMessageBox(parent)
    box.setIcon(icon)
    box.setWindowTitle(title)
    # Messages quote series descriptions, patient names and file contents: always plain text
    # (issue 14), so that a description like "<h1>RESPONDER</h1>" is read, not rendered.
    plain_label(box)
    box.setText(message)
    if details:
        box.setDetailedText(details)
    box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
    return box


def show_error(parent: QtWidgets.QWidget | None, message: str, details: str = "") -> None:
    """Show an error: one clear line and, folded away, the details (traceback, file list...).

    Non-blocking (window-modal ``open()``). Tests monkeypatch this function.
    """
    log.warning("error shown to the user: %s", message)
    _box(parent, QtWidgets.QMessageBox.Icon.Critical, "HCC Response — error", message, details).open()


def show_info(parent: QtWidgets.QWidget | None, message: str, details: str = "") -> None:
    """Show an information message (non-blocking)."""
    _box(parent, QtWidgets.QMessageBox.Icon.Information, "HCC Response", message, details).open()


def ask(
    parent: QtWidgets.QWidget | None,
    question: str,
    on_answer: Callable[[bool], None],
    *,
    yes: str = "Yes",
    no: str = "No",
    details: str = "",
) -> None:
    """Ask a yes/no question without blocking; ``on_answer(True/False)`` is called later."""
    box = _box(parent, QtWidgets.QMessageBox.Icon.Question, "HCC Response", question, details)
    yes_button = box.addButton(yes, QtWidgets.QMessageBox.ButtonRole.AcceptRole)
    box.addButton(no, QtWidgets.QMessageBox.ButtonRole.RejectRole)
    box.finished.connect(lambda _code: on_answer(box.clickedButton() is yes_button))
    box.open()


def confirm_phases(
    parent: QtWidgets.QWidget | None,
    reasons: Sequence[str],
    assignment: dict[str, str],
    on_answer: Callable[[bool], None],
) -> PhaseConfirmationDialog:
    """Ask the user to confirm a doubtful phase assignment (non-blocking; tests patch this)."""
    dialog = PhaseConfirmationDialog(reasons, assignment, parent)
    dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.finished.connect(lambda code: on_answer(code == QtWidgets.QDialog.DialogCode.Accepted.value))
    dialog.open()
    return dialog


def versions_text() -> str:
    """Versions of the app and of the libraries that matter for a bug report.

    Read from the installed distributions' metadata (instant) rather than by importing torch
    and friends (seconds); a module already imported answers directly (frozen builds may lack
    the metadata).
    """
    from importlib import metadata

    rows = [("HCC Response", __version__), ("Python", platform.python_version())]
    for module, dist in (
        ("torch", "torch"),
        ("torchvision", "torchvision"),
        ("numpy", "numpy"),
        ("pydicom", "pydicom"),
        ("PySide6", "PySide6"),
        ("pyqtgraph", "pyqtgraph"),
        ("sqlalchemy", "SQLAlchemy"),
        ("cv2", "opencv-python-headless"),
    ):
        mod = sys.modules.get(module)
        version = getattr(mod, "__version__", None) if mod is not None else None
        if version is None:
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                version = "not installed"
        rows.append((module, str(version)))
    rows.append(("Platform", platform.platform()))
    return "\n".join(f"{k}: {v}" for k, v in rows)


class AboutDialog(QtWidgets.QDialog):
    """About box: what the app is, the paper it follows, intended use, versions."""

    def __init__(self, parent: QtWidgets.QWidget | None = None, extra: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("About HCC Response")
        layout = QtWidgets.QVBoxLayout(self)
        text = QtWidgets.QLabel(
            f"<h2>HCC Response {html.escape(__version__)}</h2>"
            "<p>Predicts RECIST 1.1 response (CR/PR) to lenvatinib plus an immune checkpoint "
            "inhibitor in unresectable hepatocellular carcinoma from pre-treatment plain, "
            "arterial and portal-venous CT, following Liao et al., <i>Comput Struct Biotechnol "
            "J</i> 2024 (doi 10.1016/j.csbj.2024.04.001).</p>"
            "<p>Runs entirely offline; predictions are recorded in a local register.</p>"
            f"<p><b>Intended use.</b> {html.escape(INTENDED_USE)}</p>"
        )
        text.setWordWrap(True)
        text.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(text)
        self.versions = QtWidgets.QPlainTextEdit(versions_text() + (f"\n{extra}" if extra else ""))
        self.versions.setReadOnly(True)
        self.versions.setMaximumHeight(180)
        layout.addWidget(self.versions)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(560, 480)


def _scrub_paths(value: object) -> object:
    """``value`` with absolute file paths cut to their file name.

    A model card records where its training CSV lay on the machine that built it
    ("/work/h5data/train/labels.csv"); that path means nothing here and reads like a leak.
    """
    if isinstance(value, dict):
        return {k: _scrub_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub_paths(v) for v in value]
    if isinstance(value, str) and (value.startswith("/") or value[1:3] in (":\\", ":/")):
        return "…/" + value.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return value


def _architecture_text(arch: object) -> str:
    if not isinstance(arch, dict) or not arch:
        return ""
    parts = [str(arch.get("backbone", "?"))]
    if "shared_trunk" in arch:
        parts.append("shared trunk" if arch["shared_trunk"] else "separate trunks")
    if "attention" in arch:
        parts.append("self-attention" if arch["attention"] else "no attention")
    if "input_size" in arch:
        parts.append(f"input {arch['input_size']} px")
    window = arch.get("window")
    if isinstance(window, (list, tuple)) and len(window) == 2:
        parts.append(f"window W{window[0]:g}/L{window[1]:g}")
    if arch.get("head") == "lesion":
        parts.append("lesion head, tumour only where connected to the liver"
                     if arch.get("liver_gate") else "lesion head")
    rule = AGGREGATION_RULES.get(str(arch.get("aggregation")))
    if rule is not None:
        parts.append(f"patient result by {rule.summary}")
    return ", ".join(parts)


def description_html(description: ModelCard, sha256: str | None = None,
                     path: str | None = None) -> str:
    """The model card as a reader wants it: what the weights are, what they were trained on,
    how they did on held-out patients against the target, then the technical identity.

    No raw dump (the JSON tab has every field) and no paths of the machine that built it.
    """
    from app.inference.card import card_dict, held_out_evidence, training_summary

    doc = card_dict(description)
    esc = html.escape
    parts = [f"<h2>{esc(str(doc.get('name', 'Model')))} {esc(str(doc.get('version', '')))}</h2>"]
    kind = doc.get("weights_kind")
    if kind:
        parts.append(f"<p style='font-size:large'><b>Weights: {esc(str(kind))}</b></p>")
    evidence = held_out_evidence(doc)
    color = "#1e6b34" if evidence.meets_target else "#8a1c1c"
    parts.append(
        f"<p style='color:{color}'><b>{esc(evidence.headline())}.</b> {esc(evidence.sentence())}</p>"
    )
    rows: list[tuple[str, str]] = []
    trained = training_summary(doc)
    if trained:
        rows.append(("Trained on", trained))
    if doc.get("phases"):
        rows.append(("Phases", ", ".join(str(p) for p in doc["phases"])))
    arch = _architecture_text(doc.get("architecture"))
    if arch:
        rows.append(("Architecture", arch))
    if doc.get("created"):
        rows.append(("Created", str(doc["created"])[:10]))
    if doc.get("notes"):
        rows.append(("Notes", str(_scrub_paths(doc["notes"]))))
    if sha256:
        rows.append(("SHA-256", sha256))
    if path:
        rows.append(("File", Path(path).name))
    parts.append("<table cellspacing='4'>")
    for key, value in rows:
        parts.append(
            f"<tr><td valign='top'><b>{esc(key)}</b></td><td>{esc(value)}</td></tr>"
        )
    parts.append("</table>")
    intended = doc.get("intended_use") or INTENDED_USE
    parts.append(f"<p><b>Intended use.</b> {esc(str(intended))}</p>")
    return "".join(parts)


class ModelDescriptionDialog(QtWidgets.QDialog):
    """Shows a model's description (the model card) and its SHA-256 identity, plus raw JSON."""

    def __init__(
        self,
        description: ModelCard,
        sha256: str | None = None,
        path: str | None = None,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        from app.inference.card import card_dict

        super().__init__(parent)
        self.setWindowTitle("Model description")
        layout = QtWidgets.QVBoxLayout(self)
        tabs = QtWidgets.QTabWidget()
        self.summary = QtWidgets.QTextBrowser()
        self.summary.setHtml(description_html(description, sha256, path))
        tabs.addTab(self.summary, "Summary")
        raw = QtWidgets.QPlainTextEdit(
            json.dumps(
                _scrub_paths(card_dict(description)), indent=2, ensure_ascii=False, default=str
            )
        )
        raw.setReadOnly(True)
        raw.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        tabs.addTab(raw, "Full description (JSON)")
        layout.addWidget(tabs)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(640, 560)


class PhaseConfirmationDialog(QtWidgets.QDialog):
    """Asks the user to confirm a doubtful phase assignment before prediction.

    Shows the reasons (conflicting evidence, two series claiming one phase...) and the triplet
    that will be used; "Confirm" accepts, "Review" closes so that the user can change a phase
    in the study browser.
    """

    def __init__(
        self,
        reasons: Sequence[str],
        assignment: dict[str, str],
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Confirm the phase assignment")
        layout = QtWidgets.QVBoxLayout(self)
        items = "".join(f"<li>{html.escape(r)}</li>" for r in reasons) or "<li>(none given)</li>"
        triplet = "".join(
            f"<tr><td><b>{p}</b></td><td>{html.escape(assignment.get(p, '—'))}</td></tr>"
            for p in PHASES
        )
        label = QtWidgets.QLabel(
            "<p>The phase assignment of this study needs your confirmation:</p>"
            f"<ul>{items}</ul><p>Series that will be used:</p><table>{triplet}</table>"
        )
        label.setWordWrap(True)
        layout.addWidget(label)
        buttons = QtWidgets.QDialogButtonBox()
        self.confirm_button = buttons.addButton(
            "Confirm assignment", QtWidgets.QDialogButtonBox.ButtonRole.AcceptRole
        )
        buttons.addButton("Review", QtWidgets.QDialogButtonBox.ButtonRole.RejectRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
