"""One-page PDF report of a case, written with Qt's own PDF support (``QPdfWriter``).

Contents (top to bottom, A4 portrait): title and date; patient and study; the result (label,
vote split, mean probability, tie rule) with the weights-kind banner; the three phases at the
slice level that voted most strongly for response, once plain and once with the Grad-CAM
heatmap; the model identity (name, version, SHA-256, device); warnings; the intended-use
notice. Why Qt's writer: no extra dependency to bundle, vector text, and the same drawing code
could serve printing.

The images are drawn from the study's HU volumes (window W400/L50, the abdominal soft-tissue
window a reader expects) and the CAM arrays of that slice (one scale per study:
``cam_scale`` = the study's ``global_max``), so the report does not depend on what the viewer
happens to show.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PySide6 import QtCore, QtGui

from app import INTENDED_USE, PHASES, __version__
from app.dicom.types import AssembledStudy
from app.errors import HCCError
from app.inference.card import held_out_evidence
from app.ui.cam_legend import legend_image

PHASE_TITLES = {"plain": "Plain", "arterial": "Arterial", "portal": "Portal venous"}
REPORT_WINDOW = (400.0, 50.0)


class ReportError(HCCError):
    """The report could not be written (folder not writable, no slices)."""


def result_slices(result: Any) -> list[Any]:
    """Per-slice results of a prediction (``PredictionResult.slices``)."""
    for name in ("slices", "slice_results", "per_slice"):
        value = getattr(result, name, None)
        if value is not None:
            return list(value)
    return []


def strongest_responder_slice(result: Any) -> int:
    """Index (into the study's pairs) of the slice with the highest responder probability."""
    probs = [float(getattr(s, "probability", 0.0)) for s in result_slices(result)]
    if not probs:
        raise ReportError("the prediction has no slices to show")
    return int(np.argmax(probs))


def window_u8(hu: np.ndarray, width: float, level: float) -> np.ndarray:
    """HU → uint8 grey with window ``width``/``level``."""
    lo = level - width / 2.0
    out = (np.asarray(hu, dtype=np.float32) - lo) * (255.0 / width)
    return np.clip(out, 0, 255).astype(np.uint8)


#: Heat-map opacity on paper: the viewer's 0.45 all but vanished in print (issue 17, item 9).
REPORT_CAM_OPACITY = 0.75


def overlay_rgb(grey: np.ndarray, cam: np.ndarray | None, scale: float | None, opacity: float = REPORT_CAM_OPACITY) -> np.ndarray:
    """Grey uint8 slice with a jet heatmap blended where the CAM is above 15 % of ``scale``.

    Weak activations stay transparent (like the viewer's overlay) so the anatomy stays readable.
    """
    rgb = np.repeat(grey[..., None], 3, axis=2)
    if cam is None:
        return rgb
    cam = np.asarray(cam, dtype=np.float32)
    if cam.shape != grey.shape:
        cam = cv2.resize(cam, (grey.shape[1], grey.shape[0]), interpolation=cv2.INTER_LINEAR)
    top = float(scale) if scale and scale > 0 else float(cam.max() or 1.0)
    norm = np.clip(cam / top, 0.0, 1.0)
    heat = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    alpha = (np.clip((norm - 0.15) / 0.35, 0.0, 1.0) * opacity)[..., None]
    return np.clip(rgb * (1 - alpha) + heat * alpha, 0, 255).astype(np.uint8)


def _qimage(rgb: np.ndarray) -> QtGui.QImage:
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    # copy(): the QImage must own its pixels once the numpy buffer goes away
    return QtGui.QImage(rgb.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888).copy()


def _desc_get(description: Any, key: str, default: str = "") -> str:
    if description is None:
        return default
    value = description.get(key) if isinstance(description, Mapping) else getattr(description, key, None)
    return default if value in (None, "") else str(value)


def _result_get(result: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        if hasattr(result, name):
            return getattr(result, name)
    return default


def write_case_report(
    path: Path,
    study: AssembledStudy,
    result: Any,
    cam_by_phase: Mapping[str, np.ndarray | None] | None,
    description: Any,
    *,
    pair_index: int | None = None,
    cam_scale: float | None = None,
    case_id: int | None = None,
    series_labels: Mapping[str, str] | None = None,
) -> Path:
    """Write the one-page A4 PDF report of a case and return its path.

    Parameters
    ----------
    path:
        Output file (``.pdf``).
    study:
        The assembled study the prediction was made on (HU volumes and slice pairs).
    result:
        The ``PredictionResult``: label, vote split, mean probability, per-slice results, model
        identity, device, warnings.
    cam_by_phase:
        phase → Grad-CAM of the shown slice level (rows × cols of that phase's slice), or None
        when no heatmap is available yet (the report then says so).
    description:
        The model description (for its name, version and kind of weights).
    pair_index:
        The slice level to show; default: the one with the highest responder probability.
    cam_scale:
        The study-wide CAM maximum (one normalisation per study).
    case_id:
        The register's id of this prediction, printed when given.
    series_labels:
        phase → "#3 ART 5.0 B30f" (series number and description), printed with each phase so
        that a reader finds the series on the scanner; the UID follows in small print.

    Raises
    ------
    ReportError
        When the file cannot be written or there is nothing to show.
    """
    path = Path(path)
    if pair_index is None:
        pair_index = strongest_responder_slice(result)
    if not study.pairs or not 0 <= pair_index < len(study.pairs):
        raise ReportError(f"slice level {pair_index} is not in the study")
    pair = study.pairs[pair_index]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass  # fail early with a clear error when the place is not writable
    except OSError as exc:
        raise ReportError(f"cannot write the report to {path}: {exc.strerror}") from exc

    writer = QtGui.QPdfWriter(str(path))
    writer.setPageSize(QtGui.QPageSize(QtGui.QPageSize.PageSizeId.A4))
    writer.setPageMargins(QtCore.QMarginsF(15, 12, 15, 12), QtGui.QPageLayout.Unit.Millimeter)
    writer.setResolution(150)
    writer.setTitle("HCC Response case report")
    writer.setCreator(f"HCC Response {__version__}")
    painter = QtGui.QPainter()
    if not painter.begin(writer):
        raise ReportError(f"cannot write the report to {path}")
    try:
        page = writer.pageLayout().paintRectPixels(writer.resolution())
        _draw(painter, page.width(), page.height(), writer.resolution(), study, result,
              cam_by_phase or {}, description, pair_index, pair, cam_scale, case_id,
              series_labels or {})
    finally:
        painter.end()
    if not path.exists() or path.stat().st_size == 0:
        raise ReportError(f"the report {path} was not written")
    return path


def render_case_report_image(
    study: AssembledStudy,
    result: Any,
    cam_by_phase: Mapping[str, np.ndarray | None] | None,
    description: Any,
    *,
    pair_index: int | None = None,
    cam_scale: float | None = None,
    case_id: int | None = None,
    dpi: int = 100,
    series_labels: Mapping[str, str] | None = None,
) -> QtGui.QImage:
    """The report's page as an image (same drawing as the PDF): previews and screenshots."""
    if pair_index is None:
        pair_index = strongest_responder_slice(result)
    pair = study.pairs[pair_index]
    mm = dpi / 25.4
    image = QtGui.QImage(int(210 * mm), int(297 * mm), QtGui.QImage.Format.Format_RGB32)
    image.setDotsPerMeterX(int(dpi / 0.0254))
    image.setDotsPerMeterY(int(dpi / 0.0254))
    image.fill(QtGui.QColor("white"))
    painter = QtGui.QPainter(image)
    try:
        painter.translate(15 * mm, 12 * mm)
        _draw(painter, int(180 * mm), int(273 * mm), dpi, study, result, cam_by_phase or {},
              description, pair_index, pair, cam_scale, case_id, series_labels or {})
    finally:
        painter.end()
    return image


def study_html(study: AssembledStudy, series_labels: Mapping[str, str]) -> str:
    """The report's patient/study table: each phase by its series number and description
    (what a reader finds on the scanner), the UID after it in small print."""
    esc = html.escape
    date = study.study_date
    if len(date) == 8 and date.isdigit():
        date = f"{date[:4]}-{date[4:6]}-{date[6:]}"
    return (
        "<table cellspacing='2'>"
        f"<tr><td><b>Patient</b></td><td>{esc(study.patient_name or '—')} &nbsp; ID {esc(study.patient_id or '—')}</td></tr>"
        f"<tr><td><b>Study</b></td><td>{esc(date or '—')} &nbsp; {esc(study.study_description or '')}</td></tr>"
        f"<tr><td><b>Study UID</b></td><td>{esc(study.study_uid)}</td></tr>"
        + "".join(
            f"<tr><td><b>{PHASE_TITLES[p]}</b></td><td>"
            f"{esc(series_labels.get(p) or 'series')}"
            f"{' (set by hand)' if p in study.overrides else ''}"
            f" <span style='font-size:7pt;color:#666'>{esc(study.assignment.get(p, '—'))}</span></td></tr>"
            for p in PHASES
            if p in study.assignment
        )
        + "</table>"
    )


def _draw(
    painter: QtGui.QPainter,
    width: int,
    height: int,
    resolution: int,
    study: AssembledStudy,
    result: Any,
    cams: Mapping[str, np.ndarray | None],
    description: Any,
    pair_index: int,
    pair: Any,
    cam_scale: float | None,
    case_id: int | None,
    series_labels: Mapping[str, str],
) -> None:
    dpmm = resolution / 25.4  # device pixels per millimetre
    y = 0.0

    def doc_block(markup: str, top: float, text_width: float = float(width)) -> float:
        doc = QtGui.QTextDocument()
        doc.setDefaultFont(QtGui.QFont("Sans Serif", 9))
        doc.setDocumentMargin(0)
        doc.setTextWidth(text_width)
        doc.setHtml(markup)
        painter.save()
        painter.translate(0, top)
        doc.drawContents(painter)
        painter.restore()
        return top + doc.size().height()

    esc = html.escape
    label = str(_result_get(result, "label", default="?"))
    votes = _result_get(result, "responder_votes", default=None)
    total = _result_get(result, "total_votes", default=None)
    mean_p = _result_get(result, "mean_probability", default=None)
    tie = bool(_result_get(result, "tie", default=False))
    tie_rule = _result_get(result, "tie_rule", default="")
    kind = _desc_get(description, "weights_kind", "")
    model_name = _result_get(result, "model_name", default=None) or _desc_get(description, "name", "model")
    model_version = _result_get(result, "model_version", default=None) or _desc_get(description, "version", "")
    sha = str(_result_get(result, "model_sha256", "sha256", default="") or "")
    device = str(_result_get(result, "device", default="") or "")
    fallback = _result_get(result, "fallback_reason", "device_reason", default="")
    warnings = list(_result_get(result, "warnings", default=[]) or [])
    now = dt.datetime.now().strftime("%Y-%m-%d %H:%M")

    y = doc_block(
        "<table width='100%'><tr><td><span style='font-size:16pt;font-weight:bold'>"
        "HCC Response — case report</span></td>"
        f"<td align='right'>{esc(now)}{f'<br>register case {case_id}' if case_id else ''}</td></tr></table>"
        "<hr>",
        y,
    )
    y = doc_block(study_html(study, series_labels), y + 2 * dpmm)
    is_resp = label.lower().startswith("resp")
    colour = "#1f5fa8" if is_resp else "#8a4b00"
    split = f"{votes} of {total} slice levels vote responder" if votes is not None and total else ""
    result_html = (
        f"<p><span style='font-size:15pt;font-weight:bold;color:{colour}'>Prediction: "
        f"{esc(label.upper())}</span><br>{esc(split)}"
        + (f" &nbsp; mean probability of response {float(mean_p):.2f}" if mean_p is not None else "")
        + (f"<br>Tie — decided by: {esc(str(tie_rule))}" if tie else "")
        + "</p>"
    )
    if kind:
        result_html += (
            "<p style='background:#fff3cd;color:#4d3800'><b>Weights: "
            f"{esc(kind)}</b></p>"
        )
    if description is not None:
        evidence = held_out_evidence(description)
        colour_ev = "#1e6b34" if evidence.meets_target else "#8a1c1c"
        result_html += (
            f"<p style='color:{colour_ev}'><b>{esc(evidence.headline())}.</b> "
            f"{esc(evidence.sentence())}</p>"
        )
    y = doc_block(result_html, y + 3 * dpmm)

    # Two rows of three images: without and with heatmap.
    y += 2 * dpmm
    gap = 3 * dpmm
    cell = (width - 2 * gap) / 3.0
    z = getattr(pair, "z_ref", None)
    caption = f"Slice level {pair_index + 1} of {len(study.pairs)}" + (
        f" (table position {z:.1f} mm)" if isinstance(z, (int, float)) else ""
    )
    prob_text = ""
    slices = result_slices(result)
    if 0 <= pair_index < len(slices):
        prob_text = f", responder probability {float(getattr(slices[pair_index], 'probability', 0.0)):.2f}"
    y = doc_block(
        f"<b>{esc(caption)}{esc(prob_text)}</b> — the level voting most strongly for response; "
        "top: CT (W400/L50), bottom: Grad-CAM heatmap of the responder class "
        "(one scale for the whole study).",
        y,
    )
    y += 1.5 * dpmm
    font = QtGui.QFont("Sans Serif", 8)
    painter.setFont(font)
    for row in range(2):
        for col, phase in enumerate(PHASES):
            x = col * (cell + gap)
            rect = QtCore.QRectF(x, y, cell, cell)
            painter.fillRect(rect, QtGui.QColor("black"))
            vol = study.volumes.get(phase)
            idx = pair.index.get(phase) if hasattr(pair, "index") else None
            if vol is None or idx is None:
                continue
            grey = window_u8(vol.hu[idx], *REPORT_WINDOW)
            cam = cams.get(phase) if row == 1 else None
            rgb = overlay_rgb(grey, cam, cam_scale) if row == 1 else np.repeat(grey[..., None], 3, 2)
            img = _qimage(rgb)
            # keep the physical aspect ratio (pixel spacing) inside the square cell
            rs, cs = vol.pixel_spacing
            h_mm, w_mm = img.height() * rs, img.width() * cs
            s = min(cell / w_mm, cell / h_mm)
            target = QtCore.QRectF(
                x + (cell - w_mm * s) / 2, y + (cell - h_mm * s) / 2, w_mm * s, h_mm * s
            )
            painter.drawImage(target, img)
            painter.setPen(QtGui.QColor("white"))
            note = PHASE_TITLES[phase]
            if row == 1 and cam is None:
                note += " — heatmap not computed"
            painter.drawText(rect.adjusted(4, 2, -4, -2), int(QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft), note)
        y += cell + gap
    # The heat map's scale (issue 17, item 12): what its colours mean.
    bar_w, bar_h = min(width * 0.5, 90 * dpmm), 9 * dpmm
    painter.drawImage(QtCore.QPointF(0, y), legend_image("jet", round(bar_w), round(bar_h)))
    caption_x = bar_w + 3 * dpmm
    painter.save()
    painter.translate(caption_x, 0)
    end = doc_block(
        "<span style='font-size:8pt'>Grad-CAM scale: 1 = the strongest activation in this "
        "study; below 0.15 nothing is drawn. Not a probability and not a tumour outline.</span>",
        y, float(width - caption_x),
    )
    painter.restore()
    y = max(y + bar_h, end) + 2 * dpmm

    model_html = (
        "<p><b>Model</b> "
        f"{esc(str(model_name))} {esc(str(model_version))}<br><b>SHA-256</b> <tt>{esc(sha)}</tt>"
        f"<br><b>Device</b> {esc(device or '—')}"
        + (f" ({esc(str(fallback))})" if fallback else "")
        + f" &nbsp; <b>Software</b> HCC Response {esc(__version__)}</p>"
    )
    if warnings:
        model_html += "<p><b>Warnings</b><br>" + "<br>".join(f"⚠ {esc(str(w))}" for w in warnings) + "</p>"
    y = doc_block(model_html, y)
    doc_block(
        f"<hr><p style='font-size:8pt'><b>Intended use.</b> {esc(INTENDED_USE)}</p>",
        max(y + 2 * dpmm, height - 22 * dpmm),
    )


def count_pdf_pages(path: Path) -> int:
    """Number of page objects in a PDF written by Qt (``/Type /Page``, not ``/Pages``)."""
    data = Path(path).read_bytes()
    import re

    return len(re.findall(rb"/Type\s*/Page(?![s\w])", data))
