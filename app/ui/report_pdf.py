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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PySide6 import QtCore, QtGui

from app import INTENDED_USE, PHASES, __version__
from app.dicom.types import AssembledStudy, SlicePair
from app.errors import HCCError
from app.inference.card import held_out_evidence
from app.ui.cam_legend import legend_image

if TYPE_CHECKING:  # pragma: no cover - typing only; the model card's module imports torch
    from app.inference.result import PredictionResult
    from app.inference.weights import ModelDescription

PHASE_TITLES = {"plain": "Plain", "arterial": "Arterial", "portal": "Portal venous"}
REPORT_WINDOW = (400.0, 50.0)


class ReportError(HCCError):
    """The report could not be written (folder not writable, no slices)."""


def strongest_responder_slice(result: PredictionResult) -> int:
    """The report's key image (:meth:`PredictionResult.key_slice`: the strongest slice that
    voted); a prediction without slices has nothing to show."""
    index = result.key_slice()
    if index is None:
        raise ReportError("the prediction has no slices to show")
    return index


def window_u8(hu: np.ndarray, width: float, level: float) -> np.ndarray:
    """HU → uint8 grey with window ``width``/``level``."""
    lo = level - width / 2.0
    out = (np.asarray(hu, dtype=np.float32) - lo) * (255.0 / width)
    return np.clip(out, 0, 255).astype(np.uint8)


#: Heat-map opacity on paper: the viewer's 0.45 all but vanished in print (issue 17, item 9).
REPORT_CAM_OPACITY = 0.75


def overlay_rgb(grey: np.ndarray, cam: np.ndarray | None, scale: float | None,
                opacity: float = REPORT_CAM_OPACITY) -> np.ndarray:
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


def case_report(
    study: AssembledStudy,
    result: PredictionResult,
    cam_by_phase: Mapping[str, np.ndarray | None] | None,
    description: ModelDescription | None,
    *,
    pair_index: int | None = None,
    cam_scale: float | None = None,
    case_id: int | None = None,
    series_labels: Mapping[str, str] | None = None,
    warnings: Sequence[str] | None = None,
) -> CaseReport:
    """What the report of a case shows, checked.

    Parameters
    ----------
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
    warnings:
        Everything said with the result - the study's and the images' warnings (a gap, lossy
        compression) with the model's (:attr:`app.case.flow.CaseOutcome.warnings`); default the
        model's own.

    Raises
    ------
    ReportError
        There is nothing to show (no slices, a level outside the study).
    """
    if pair_index is None:
        pair_index = strongest_responder_slice(result)
    if not study.pairs or not 0 <= pair_index < len(study.pairs):
        raise ReportError(f"slice level {pair_index} is not in the study")
    return CaseReport(study, result, cam_by_phase or {}, description, pair_index,
                      study.pairs[pair_index], cam_scale, case_id, dict(series_labels or {}),
                      list(result.warnings if warnings is None else warnings))


def write_case_report(path: Path, report: CaseReport) -> Path:
    """Write the one-page A4 PDF report and return its path.

    Raises
    ------
    ReportError
        When the file cannot be written.
    """
    path = Path(path)
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
        _draw(_Page(painter, page.width(), page.height(), writer.resolution()), report)
    finally:
        painter.end()
    if not path.exists() or path.stat().st_size == 0:
        raise ReportError(f"the report {path} was not written")
    return path


def render_case_report_image(report: CaseReport, dpi: int = 100) -> QtGui.QImage:
    """The report's page as an image (same drawing as the PDF): previews and screenshots."""
    mm = dpi / 25.4
    image = QtGui.QImage(int(210 * mm), int(297 * mm), QtGui.QImage.Format.Format_RGB32)
    image.setDotsPerMeterX(int(dpi / 0.0254))
    image.setDotsPerMeterY(int(dpi / 0.0254))
    image.fill(QtGui.QColor("white"))
    painter = QtGui.QPainter(image)
    try:
        painter.translate(15 * mm, 12 * mm)
        _draw(_Page(painter, int(180 * mm), int(273 * mm), dpi), report)
    finally:
        painter.end()
    return image


@dataclass
class CaseReport:
    """What one case report shows (:func:`case_report` makes one)."""

    study: AssembledStudy
    result: PredictionResult
    cams: Mapping[str, np.ndarray | None]
    description: ModelDescription | None
    pair_index: int
    pair: SlicePair
    cam_scale: float | None
    case_id: int | None
    series_labels: Mapping[str, str] = field(default_factory=dict)
    #: everything said with the result (study, images, model); default the model's own
    warnings: Sequence[str] = ()


@dataclass
class _Page:
    """Where it is drawn: a painter on a page of ``width`` × ``height`` device pixels."""

    painter: QtGui.QPainter
    width: int
    height: int
    resolution: int

    @property
    def dpmm(self) -> float:
        """Device pixels per millimetre."""
        return self.resolution / 25.4

    def _document(self, markup: str) -> QtGui.QTextDocument:
        doc = QtGui.QTextDocument()
        doc.setDefaultFont(QtGui.QFont("Sans Serif", 9))
        doc.setDocumentMargin(0)
        doc.setTextWidth(float(self.width))
        doc.setHtml(markup)
        return doc

    def height_of(self, markup: str) -> float:
        """How tall :meth:`block` would draw ``markup``."""
        return float(self._document(markup).size().height())

    def block(self, markup: str, top: float) -> float:
        """Draw rich text across the page from ``top``; returns the bottom of the block."""
        doc = self._document(markup)
        self.painter.save()
        self.painter.translate(0, top)
        doc.drawContents(self.painter)
        self.painter.restore()
        return top + doc.size().height()


def _draw(page: _Page, rep: CaseReport) -> None:
    """The page from top to bottom: header, patient, result, images, model, intended use."""
    y = page.block(_header_html(rep), 0.0)
    y = page.block(patient_html(rep.study, rep.series_labels), y + 2 * page.dpmm)
    y = page.block(_result_html(rep), y + 3 * page.dpmm)
    y = _draw_images(page, rep, y + 2 * page.dpmm)
    y = _draw_cam_scale(page, y)
    footer_top = page.height - 22 * page.dpmm  # the intended-use notice is never pushed off
    y = page.block(_fitting_model_html(page, rep, footer_top - y - 2 * page.dpmm), y)
    page.block(f"<hr><p style='font-size:8pt'><b>Intended use.</b> {html.escape(INTENDED_USE)}</p>",
               max(y + 2 * page.dpmm, footer_top))


def _header_html(rep: CaseReport) -> str:
    now = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    case = f"<br>register case {rep.case_id}" if rep.case_id else ""
    return ("<table width='100%'><tr><td><span style='font-size:16pt;font-weight:bold'>"
            "HCC Response — case report</span></td>"
            f"<td align='right'>{html.escape(now)}{case}</td></tr></table><hr>")


def patient_html(study: AssembledStudy, series_labels: Mapping[str, str]) -> str:
    """The patient/study table: each phase by its series number and description (what a
    reader finds on the scanner), the UID after it in small print (issue 17, item 9)."""
    esc = html.escape
    date = study.study_date
    if len(date) == 8 and date.isdigit():
        date = f"{date[:4]}-{date[4:6]}-{date[6:]}"
    phases = "".join(
        f"<tr><td><b>{PHASE_TITLES[p]}</b></td><td>{esc(series_labels.get(p) or 'series')}"
        f"{' (set by hand)' if p in study.overrides else ''}"
        f" <span style='font-size:7pt;color:#666'>{esc(study.assignment.get(p, '—'))}</span></td></tr>"
        for p in PHASES if p in study.assignment)
    return ("<table cellspacing='2'>"
            f"<tr><td><b>Patient</b></td><td>{esc(study.patient_name or '—')} &nbsp; "
            f"ID {esc(study.patient_id or '—')}</td></tr>"
            f"<tr><td><b>Study</b></td><td>{esc(date or '—')} &nbsp; "
            f"{esc(study.study_description or '')}</td></tr>"
            f"<tr><td><b>Study UID</b></td><td>{esc(study.study_uid)}</td></tr>"
            + phases + "</table>")


def _weights_kind(rep: CaseReport) -> str:
    return rep.result.weights_kind or (rep.description.weights_kind if rep.description else "")


def _result_html(rep: CaseReport) -> str:
    esc, r = html.escape, rep.result
    colour = "#1f5fa8" if r.label.lower().startswith("resp") else "#8a4b00"
    split = f"{r.responder_votes} of {r.total_votes} slice levels vote responder" \
        if r.total_votes else ""
    out = (f"<p><span style='font-size:15pt;font-weight:bold;color:{colour}'>Prediction: "
           f"{esc(r.label.upper())}</span><br>{esc(split)}"
           f" &nbsp; {esc(r.probability_text)}"
           + (f"<br>Tie — decided by: {esc(r.tie_rule)}" if r.tie else "") + "</p>")
    kind = _weights_kind(rep)
    if kind:
        out += f"<p style='background:#fff3cd;color:#4d3800'><b>Weights: {esc(kind)}</b></p>"
    if rep.description is not None:
        evidence = held_out_evidence(rep.description)
        colour_ev = "#1e6b34" if evidence.meets_target else "#8a1c1c"
        out += (f"<p style='color:{colour_ev}'><b>{esc(evidence.headline())}.</b> "
                f"{esc(evidence.sentence())}</p>")
    return out


def _draw_images(page: _Page, rep: CaseReport, y: float) -> float:
    """Two rows of the three phases at the report's level: without and with the heatmap."""
    painter, study, pair = page.painter, rep.study, rep.pair
    gap = 3 * page.dpmm
    cell = (page.width - 2 * gap) / 3.0
    caption = (f"Slice level {rep.pair_index + 1} of {len(study.pairs)} "
               f"(table position {pair.z_ref:.1f} mm)")
    if 0 <= rep.pair_index < len(rep.result.slices):
        caption += f", responder probability {rep.result.slices[rep.pair_index].probability:.2f}"
    y = page.block(
        f"<b>{html.escape(caption)}</b> — the level voting most strongly for response; "
        "top: CT (W400/L50), bottom: Grad-CAM heatmap of the responder class "
        "(one scale for the whole study).", y) + 1.5 * page.dpmm
    painter.setFont(QtGui.QFont("Sans Serif", 8))
    for row in range(2):
        for col, phase in enumerate(PHASES):
            rect = QtCore.QRectF(col * (cell + gap), y, cell, cell)
            painter.fillRect(rect, QtGui.QColor("black"))
            vol = study.volumes.get(phase)
            idx = pair.index.get(phase)
            if vol is None or idx is None:
                continue
            grey = window_u8(vol.hu[idx], *REPORT_WINDOW)
            cam = rep.cams.get(phase) if row == 1 else None
            rgb = overlay_rgb(grey, cam, rep.cam_scale) if row == 1 else np.repeat(grey[..., None], 3, 2)
            img = _qimage(rgb)
            # keep the physical aspect ratio (pixel spacing) inside the square cell
            rs, cs = vol.pixel_spacing
            h_mm, w_mm = img.height() * rs, img.width() * cs
            s = min(cell / w_mm, cell / h_mm)
            painter.drawImage(QtCore.QRectF(rect.x() + (cell - w_mm * s) / 2,
                                            y + (cell - h_mm * s) / 2, w_mm * s, h_mm * s), img)
            painter.setPen(QtGui.QColor("white"))
            note = PHASE_TITLES[phase]
            if row == 1 and cam is None:
                note += " — heatmap not computed"
            painter.drawText(rect.adjusted(4, 2, -4, -2), int(QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft), note)
        y += cell + gap
    return y


def _draw_cam_scale(page: _Page, y: float) -> float:
    """The heat map's colour bar and what it means (issue 17, item 12); returns its bottom."""
    bar_w, bar_h = min(page.width * 0.5, 90 * page.dpmm), 9 * page.dpmm
    page.painter.drawImage(QtCore.QPointF(0, y), legend_image("jet", round(bar_w), round(bar_h)))
    left = bar_w + 3 * page.dpmm
    doc = QtGui.QTextDocument()
    doc.setDefaultFont(QtGui.QFont("Sans Serif", 8))
    doc.setDocumentMargin(0)
    doc.setTextWidth(float(page.width - left))
    doc.setPlainText("Grad-CAM scale: 1 = the strongest activation in this study; below 0.15 "
                     "nothing is drawn. Not a probability and not a tumour outline.")
    page.painter.save()
    page.painter.translate(left, y)
    doc.drawContents(page.painter)
    page.painter.restore()
    return y + max(bar_h, doc.size().height()) + 2 * page.dpmm


def _fitting_model_html(page: _Page, rep: CaseReport, room: float) -> str:
    """:func:`_model_html` with as many of the warnings as fit in ``room`` above the intended-use
    notice; the rest are counted, with where to read them (the register keeps them all)."""
    n = len(rep.warnings)
    markup = _model_html(rep)
    while n > 0 and page.height_of(markup) > room:
        n -= 1
        markup = _model_html(rep, shown=n)
    return markup


def _model_html(rep: CaseReport, shown: int | None = None) -> str:
    """Model identity and device, then the warnings (the first ``shown`` of them, all by
    default; the others counted)."""
    esc, r, d = html.escape, rep.result, rep.description
    name = r.model_name or (d.name if d else "model")
    version = r.model_version or (d.version if d else "")
    out = (f"<p><b>Model</b> {esc(name)} {esc(version)}<br><b>SHA-256</b> "
           f"<tt>{esc(r.model_sha256)}</tt><br><b>Device</b> {esc(r.device or '—')}"
           + (f" ({esc(r.device_reason)})" if r.device_reason else "")
           + f" &nbsp; <b>Software</b> HCC Response {esc(__version__)}</p>")
    if rep.warnings:
        listed = list(rep.warnings)[: len(rep.warnings) if shown is None else shown]
        rest = len(rep.warnings) - len(listed)
        where = f"register case {rep.case_id}" if rep.case_id else "the app's result"
        more = [f"… and {rest} more warning{'s' if rest > 1 else ''}: see {where}"] if rest else []
        out += ("<p><b>Warnings</b><br>" + "<br>".join([*(f"⚠ {esc(w)}" for w in listed), *more])
                + "</p>")
    return out


def count_pdf_pages(path: Path) -> int:
    """Number of page objects in a PDF written by Qt (``/Type /Page``, not ``/Pages``)."""
    data = Path(path).read_bytes()
    import re

    return len(re.findall(rb"/Type\s*/Page(?![s\w])", data))
