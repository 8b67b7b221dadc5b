"""Secondary Capture images of chosen slice levels: three phases, Grad-CAM, colour bar, text.

One capture per chosen level shows plain | arterial | portal side by side with the Grad-CAM
overlay of each pathway (the app's own :func:`~app.inference.gradcam.overlay_rgb`, so the PACS
shows what the app showed), a colour bar from 0 to the study's maximum, and burned-in text that
names the level, the slices, the prediction and "research software, not for diagnosis". The
text is part of the pixels, so ``BurnedInAnnotation`` is ``YES``: a de-identifying PACS export
must treat these images accordingly.

The capture is not a patient-space image (three panels and a bar): it states the panels'
orientation (rows towards L, columns towards P) but no pixel spacing or position; each capture
cites its three source slices in the Source Image Sequence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from app import __version__
from app.export.errors import ExportError

CAPTURE_SERIES_DESCRIPTION = "HCC Response Grad-CAM captures (research, not for diagnosis)"
PHASE_TITLES = {"plain": "PLAIN", "arterial": "ARTERIAL", "portal": "PORTAL VENOUS"}
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WHITE = (255, 255, 255)


@dataclass
class CaptureText:
    """What a capture says in words (burned into its pixels)."""

    title: str
    lines: list[str]


def colour_bar(height: int, width: int, colormap: str = "jet") -> np.ndarray:
    """A vertical colour bar, ``1`` (the study's maximum) at the top and ``0`` at the bottom."""
    from app.inference.gradcam import COLORMAPS

    ramp = np.linspace(255, 0, height).round().astype(np.uint8)[:, None]
    bgr = cv2.applyColorMap(np.repeat(ramp, width, axis=1), COLORMAPS[colormap])
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _put(img: np.ndarray, text: str, org: tuple[int, int], scale: float) -> None:
    """Burn ``text`` in white, shrunk where needed so that it fits the image's width."""
    thickness = max(1, int(round(scale * 2)))
    room = img.shape[1] - org[0] - 2
    width = cv2.getTextSize(text, _FONT, scale, thickness)[0][0]
    if width > room > 0:
        scale *= room / width
        thickness = max(1, int(round(scale * 2)))
    cv2.putText(img, text, org, _FONT, scale, _WHITE, thickness, cv2.LINE_AA)


def render_capture(panels: Mapping[str, np.ndarray], text: CaptureText,
                   colormap: str = "jet") -> np.ndarray:
    """Compose the RGB capture: a text band, the phase panels side by side, the colour bar.

    Parameters
    ----------
    panels:
        phase → ``(rows, cols, 3)`` uint8 overlay (all resized to the first panel's height).
    text:
        Title and lines for the band above the panels.

    Returns
    -------
    np.ndarray
        ``(rows, cols, 3)`` uint8 RGB.
    """
    if not panels:
        raise ExportError("a capture needs at least one phase")
    height = next(iter(panels.values())).shape[0]
    scale = max(0.4, height / 700.0)
    line_h = int(round(30 * scale))
    resized = []
    for phase, rgb in panels.items():
        if rgb.shape[0] != height:
            width = int(round(rgb.shape[1] * height / rgb.shape[0]))
            rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        rgb = rgb.copy()
        _put(rgb, PHASE_TITLES.get(phase, phase.upper()), (int(8 * scale), height - int(10 * scale)),
             scale)
        resized.append(rgb)
    bar_w = max(16, height // 24)
    legend_w = int(round(70 * scale))
    bar = np.zeros((height, bar_w + legend_w, 3), np.uint8)
    margin = line_h
    bar[margin:height - margin, :bar_w] = colour_bar(height - 2 * margin, bar_w, colormap)
    _put(bar, "1.0", (bar_w + 4, margin + line_h // 2), scale * 0.8)
    _put(bar, "0", (bar_w + 4, height - margin), scale * 0.8)
    body = np.concatenate([*resized, bar], axis=1)
    band = np.zeros((line_h * (1 + len(text.lines)) + line_h // 2, body.shape[1], 3), np.uint8)
    _put(band, text.title, (int(8 * scale), line_h), scale * 1.1)
    for i, line in enumerate(text.lines):
        _put(band, line, (int(8 * scale), line_h * (i + 2)), scale * 0.9)
    out = np.concatenate([band, body], axis=0)
    # Even dimensions keep every viewer's RGB handling simple.
    return np.ascontiguousarray(out[: out.shape[0] // 2 * 2, : out.shape[1] // 2 * 2])


def build_capture(rgb: np.ndarray, reference: Dataset, sources: list[Dataset], *, series_uid: str,
                  sop_uid: str, series_number: int, instance_number: int,
                  derivation: str) -> hd.sc.SCImage:
    """A Secondary Capture image of ``rgb`` in the study of ``reference``.

    ``sources`` are the slices shown (cited in the Source Image Sequence); ``derivation`` says in
    words how the picture was made.
    """
    try:
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=reference, pixel_array=rgb, photometric_interpretation="RGB",
            bits_allocated=8, coordinate_system="PATIENT", series_instance_uid=series_uid,
            series_number=series_number, sop_instance_uid=sop_uid,
            instance_number=instance_number, manufacturer="HCC Response",
            patient_orientation=("L", "P"),
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise ExportError(f"cannot build the Secondary Capture: {exc}") from exc
    sc.SpecificCharacterSet = "ISO_IR 192"  # UTF-8, as the SR (app.export.sr)
    sc.BurnedInAnnotation = "YES"
    # Laterality (type 2C) is required only for paired body parts; naming the body part lets a
    # validator see that the liver CT's capture needs none. Liver CT is an abdominal exam.
    sc.BodyPartExamined = reference.get("BodyPartExamined") or "ABDOMEN"
    if reference.get("Laterality"):
        sc.Laterality = reference.Laterality
    sc.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
    sc.DerivationDescription = derivation[:1024]
    sc.SeriesDescription = CAPTURE_SERIES_DESCRIPTION
    sc.SoftwareVersions = __version__
    refs = []
    for ds in sources:
        ref = Dataset()
        ref.ReferencedSOPClassUID = ds.SOPClassUID
        ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
        refs.append(ref)
    sc.SourceImageSequence = refs
    return sc
