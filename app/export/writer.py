"""Write a prediction's SR and Grad-CAM captures to a folder (``predict --dicom-out``, GUI).

Files are built in memory, written into a hidden staging folder inside the destination and only
then moved into place, so an error half-way (full disk, a source file gone) leaves no partial
set behind: either every object of the export is there or none is. Names start with the
object type and the SOP Instance UID, so two exports never overwrite each other.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import highdicom as hd

from app.export.capture import CaptureText, build_capture, render_capture
from app.export.errors import ExportError
from app.export.sources import read_sources
from app.export.sr import build_prediction_sr

if TYPE_CHECKING:  # pragma: no cover - typing only; importing inference pulls in torch
    from app.dicom.types import AssembledStudy
    from app.inference.gradcam import CamResult
    from app.inference.result import PredictionResult

SR_SERIES_NUMBER = 9901
CAPTURE_SERIES_NUMBER = 9902


@dataclass
class DicomExport:
    """What an export wrote (also the audit event's payload)."""

    folder: str
    study_uid: str
    sr_file: str
    sr_sop_uid: str
    sr_series_uid: str
    capture_files: list[str] = field(default_factory=list)
    capture_sop_uids: list[str] = field(default_factory=list)
    capture_series_uid: str = ""
    pair_indices: list[int] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        """Every file written, SR first."""
        return [Path(self.sr_file), *map(Path, self.capture_files)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_levels(n_pairs: int, count: int = 3) -> list[int]:
    """Evenly spread slice levels (pair indices) over the liver range, for captures.

    Three by default: at a quarter, the middle and three quarters of the liver's slices, which
    shows the organ's top, centre and bottom without flooding a PACS series.
    """
    if n_pairs <= 0 or count <= 0:
        return []
    if count >= n_pairs:
        return list(range(n_pairs))
    return sorted({min(n_pairs - 1, int((i + 1) * n_pairs / (count + 1))) for i in range(count)})


def _capture_text(study: AssembledStudy, result: PredictionResult, k: int,
                  cams: CamResult) -> CaptureText:
    pair = study.pairs[k]
    slices = ", ".join(f"{p} #{pair.index[p] + 1}" for p in study.phases)
    return CaptureText(
        title=f"HCC Response - Grad-CAM ({cams.target}) - level z = {pair.z_ref:.1f} mm",
        lines=[
            f"slices: {slices}",
            f"prediction: {result.label.upper()} ({result.responder_votes}/{result.total_votes} "
            f"slice votes, p = {result.mean_probability:.2f}); model {result.model_name} "
            f"{result.model_version}",
            "RESEARCH SOFTWARE - NOT FOR DIAGNOSIS",
        ],
    )


def export_dicom(
    study: AssembledStudy,
    result: PredictionResult,
    cams: CamResult,
    instance_files: Mapping[str, Path],
    out_dir: Path | str,
    levels: Sequence[int] | None = None,
    *,
    opacity: float = 0.5,
    colormap: str = "jet",
    window: tuple[float, float] = (400.0, 0.0),
    warnings: Sequence[str] | None = None,
) -> DicomExport:
    """Write the prediction SR and one capture per chosen level into ``out_dir``.

    Parameters
    ----------
    study, result:
        The assembled study and its prediction.
    cams:
        Grad-CAM maps covering at least the chosen levels (normally the whole study's, so the
        colour scale is the study's).
    instance_files:
        SOP Instance UID → source file (:func:`app.export.sources.instance_paths`).
    out_dir:
        Destination folder (created when missing).
    levels:
        Pair indices to capture; default :func:`choose_levels` among the levels ``cams`` covers.
    warnings:
        Everything said with the result (the study's and the images' warnings - a gap, lossy
        compression - with the model's; the register record's list), written into the SR;
        default the model's own.

    Raises
    ------
    ExportError
        Source images unreadable, a level without a map, or the folder not writable; nothing is
        left behind in ``out_dir``.
    """
    from app.inference.gradcam import overlay_rgb

    out = Path(out_dir)
    if levels is None:
        levels = [cams.pair_indices[i] for i in choose_levels(len(cams.pair_indices))]
    missing = [k for k in levels if k not in cams.pair_indices]
    if missing:
        raise ExportError(f"no Grad-CAM map for slice level(s) {missing}")
    sources = read_sources(study, instance_files)
    sr_series, sc_series = hd.UID(), hd.UID()
    sr = build_prediction_sr(result, sources, series_uid=sr_series, sop_uid=hd.UID(),
                             series_number=SR_SERIES_NUMBER, warnings=warnings)
    objects: list[tuple[str, Any]] = [(f"SR_{sr.SOPInstanceUID}.dcm", sr)]
    for n, k in enumerate(levels, start=1):
        pair = study.pairs[k]
        shown = [sources.by_uid[study.volumes[p].sop_instance_uids[pair.index[p]]]
                 for p in study.phases]
        panels = {p: overlay_rgb(study.volumes[p].hu[pair.index[p]], cams.map_for(p, k),
                                 window=window, opacity=opacity, colormap=colormap)
                  for p in study.phases}
        rgb = render_capture(panels, _capture_text(study, result, k, cams), colormap)
        sc = build_capture(
            rgb, shown[-1], shown, series_uid=sc_series, sop_uid=hd.UID(),
            series_number=CAPTURE_SERIES_NUMBER, instance_number=n,
            derivation=(f"Grad-CAM ({cams.target}) of each pathway of model "
                        f"{result.model_name} {result.model_version} over the source slices "
                        f"(window W{window[0]:g}/L{window[1]:g}, opacity {opacity:g}, {colormap}; "
                        f"colour scale 0..1 of the study's maximum)"),
        )
        objects.append((f"SC_{n:02d}_{sc.SOPInstanceUID}.dcm", sc))
    written = _write_all(out, objects)
    return DicomExport(
        folder=str(out), study_uid=str(sr.StudyInstanceUID), sr_file=str(written[0]),
        sr_sop_uid=str(sr.SOPInstanceUID), sr_series_uid=str(sr_series),
        capture_files=[str(p) for p in written[1:]],
        capture_sop_uids=[str(ds.SOPInstanceUID) for _, ds in objects[1:]],
        capture_series_uid=str(sc_series), pair_indices=list(levels),
    )


def _write_all(out: Path, objects: list[tuple[str, Any]]) -> list[Path]:
    """Write every object to a staging folder in ``out``, then move them all into place."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".hcc-export-", dir=out))
    except OSError as exc:
        raise ExportError(f"cannot write to {out}: {exc.strerror or exc}") from exc
    final: list[Path] = []
    try:
        for name, ds in objects:
            ds.save_as(stage / name, enforce_file_format=True)
        for name, _ in objects:
            os.replace(stage / name, out / name)
            final.append(out / name)
    except OSError as exc:
        for path in final:
            path.unlink(missing_ok=True)
        raise ExportError(f"cannot write the DICOM files to {out}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return final
