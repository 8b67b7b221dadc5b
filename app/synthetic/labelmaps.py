"""Ground-truth label maps of synthetic studies: what tissue every pixel of an axial slice is.

The renderer paints a label image beside every HU slice (:mod:`app.synthetic.render`); with
``StudyOptions.label_maps`` (``demo-data --label-maps``) the generator keeps it and writes, per
axial CT series, one compressed file beside ``truth.json``::

    SYN<seed>-0001/
      truth.json
      labels/<SeriesInstanceUID>.npz

Each file holds ``labels`` (uint8 ``[n, rows, cols]``, the slices in file order, i.e.
InstanceNumber order), ``z`` (the z of ImagePositionPatient of each slice, in mm, exactly as
written in the DICOM — table coordinates, so the patient's position on the table and the
phase's breath-hold shift are already in it), ``sop_uids`` (SOPInstanceUID of each slice) and a
JSON ``meta`` record with the code table. Only axial CT series get a file: the coronal reformat,
the localizer and the dose report are not slices of the rendered volume.

The labels are those of the noise-free, unblurred slice (the same analytic shapes evaluated at
the same pixel centres), so a lesion's edge in the label map is where the tumour is, not where
the blur puts it.

:func:`labels_for_inputs` is the bridge to learning: given the app's assembled study and a
model configuration it returns label maps aligned pixel for pixel with the network input of
:func:`app.inference.preprocess.preprocess_study` — same triplets (matched by SOPInstanceUID),
same crop box, same resampling geometry, nearest neighbour instead of bilinear.

Numpy only (no torch, no Qt), and no pickle: the files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.synthetic import render
from app.synthetic.errors import SyntheticInputError

if TYPE_CHECKING:
    from app.dicom.types import AssembledStudy
    from app.inference.config import ModelConfig
    from app.inference.preprocess import CropBox

#: Folder (inside a study folder) holding the label map files.
LABELS_DIR = "labels"
#: Bump when the meaning of the stored arrays changes.
FORMAT_VERSION = 1

BACKGROUND, LIVER, LESION, NECROSIS, LIVER_VESSEL, AORTA, THROMBUS, OIL, CAPSULE = range(9)
#: Code → tissue of the label maps.
CODES: dict[int, str] = {
    BACKGROUND: "background and every other tissue",
    LIVER: "liver parenchyma",
    LESION: "viable tumour (the lesion without capsule, necrosis and oil)",
    NECROSIS: "necrotic tumour core",
    LIVER_VESSEL: "intrahepatic vessel (portal and hepatic vein branches)",
    AORTA: "aorta",
    THROMBUS: "portal-vein tumour thrombus",
    OIL: "iodised oil deposit in a lesion",
    CAPSULE: "tumour capsule (the lesion's rim)",
}
#: Codes inside the liver's outline (parenchyma, the lesions, its vessels). The tumour thrombus
#: is left out: most of it lies in the main portal vein, outside the liver.
LIVER_CODES: tuple[int, ...] = (LIVER, LESION, NECROSIS, LIVER_VESSEL, OIL, CAPSULE)
#: Codes of the lesions (viable tumour, capsule, necrosis, oil).
LESION_CODES: tuple[int, ...] = (LESION, NECROSIS, OIL, CAPSULE)

#: Renderer label → label map code (everything not listed is background).
_CANVAS_TO_CODE = np.zeros(256, dtype=np.uint8)
for _canvas, _code in ((render.L_LIVER, LIVER), (render.L_LESION, LESION), (render.L_NECROSIS, NECROSIS),
                       (render.L_LIVER_VESSEL, LIVER_VESSEL), (render.L_AORTA, AORTA),
                       (render.L_THROMBUS, THROMBUS), (render.L_OIL, OIL), (render.L_CAPSULE, CAPSULE)):
    _CANVAS_TO_CODE[_canvas] = _code


class LabelMapError(SyntheticInputError):
    """Label maps that are missing, unreadable or do not belong to the study they are used with."""


def codes_from_canvas(canvas_labels: np.ndarray) -> np.ndarray:
    """Map the renderer's label image (``render.L_*``) onto the label map codes (:data:`CODES`)."""
    return _CANVAS_TO_CODE[canvas_labels]


@dataclass
class LabelVolume:
    """The label maps of one axial series.

    Attributes
    ----------
    series_uid:
        SeriesInstanceUID of the series.
    labels:
        uint8 ``[n, rows, cols]`` codes (:data:`CODES`), slices in file (InstanceNumber) order.
    z:
        float64 ``[n]``: ImagePositionPatient z of each slice (mm), as written in the DICOM.
    sop_uids:
        SOPInstanceUID of each slice.
    codes:
        Code → tissue name (the table the file was written with).
    key:
        The generator's name of the series (``plain``, ``arterial_thin`` ...).
    """

    series_uid: str
    labels: np.ndarray
    z: np.ndarray
    sop_uids: list[str]
    codes: dict[int, str]
    key: str = ""

    @property
    def n_slices(self) -> int:
        return int(self.labels.shape[0])


def label_path(study_dir: str | Path, series_uid: str) -> Path:
    """Where the label maps of ``series_uid`` live in ``study_dir``."""
    return Path(study_dir) / LABELS_DIR / f"{series_uid}.npz"


def write_label_volume(study_dir: str | Path, vol: LabelVolume) -> Path:
    """Write one series' label maps (compressed ``.npz``; temporary file, then rename)."""
    if vol.labels.ndim != 3 or vol.labels.shape[0] != len(vol.sop_uids) or len(vol.z) != len(vol.sop_uids):
        raise ValueError(f"label volume of {vol.series_uid}: {vol.labels.shape} labels, {len(vol.z)} z, "
                         f"{len(vol.sop_uids)} SOP UIDs")
    path = label_path(study_dir, vol.series_uid)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"format": FORMAT_VERSION, "series_uid": vol.series_uid, "key": vol.key,
                       "codes": {str(k): v for k, v in vol.codes.items()}})
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.npz")
    np.savez_compressed(tmp, labels=np.ascontiguousarray(vol.labels, dtype=np.uint8),
                        z=np.asarray(vol.z, dtype=np.float64), sop_uids=np.array(vol.sop_uids, dtype=np.str_),
                        meta=np.frombuffer(meta.encode(), dtype=np.uint8))
    os.replace(tmp, path)
    return path


def read_label_volume(path: str | Path) -> LabelVolume:
    """Read one file written by :func:`write_label_volume`.

    Raises
    ------
    LabelMapError
        The file is unreadable, not a label map file, or inconsistent.
    """
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            labels = z["labels"]
            zs = z["z"].astype(np.float64)
            uids = [str(u) for u in z["sop_uids"]]
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
        raise LabelMapError(f"cannot read label maps {p}: {exc}") from exc
    if meta.get("format") != FORMAT_VERSION:
        raise LabelMapError(f"{p}: label map format {meta.get('format')!r}, this version reads {FORMAT_VERSION}")
    if labels.dtype != np.uint8 or labels.ndim != 3 or labels.shape[0] != len(uids) or zs.shape != (len(uids),):
        raise LabelMapError(f"{p}: inconsistent arrays (labels {labels.shape} {labels.dtype}, "
                            f"{zs.size} z, {len(uids)} SOP UIDs)")
    codes = {int(k): str(v) for k, v in meta.get("codes", {}).items()}
    return LabelVolume(str(meta.get("series_uid", p.stem)), labels, zs, uids, codes, str(meta.get("key", "")))


def has_label_maps(study_dir: str | Path) -> bool:
    """True when ``study_dir`` holds at least one label map file."""
    folder = Path(study_dir) / LABELS_DIR
    return folder.is_dir() and any(folder.glob("*.npz"))


def read_label_maps(study_dir: str | Path) -> dict[str, LabelVolume]:
    """All label maps of a study folder, keyed by SeriesInstanceUID (empty when there are none)."""
    folder = Path(study_dir) / LABELS_DIR
    if not folder.is_dir():
        return {}
    out: dict[str, LabelVolume] = {}
    for path in sorted(folder.glob("*.npz")):
        if path.name.startswith("."):
            continue  # an interrupted write's temporary file
        vol = read_label_volume(path)
        out[vol.series_uid] = vol
    return out


# ---------------------------------------------------------------------- aligned with the input


def resample_nearest(labels: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Crop ``labels`` ``[n, rows, cols]`` to ``box`` and resize to ``size`` × ``size`` by
    nearest neighbour, with the geometry of :func:`app.inference.preprocess.preprocess_slices`.

    Output pixel ``i`` covers box coordinates ``[i, i + 1) · h / size``; bilinear resizing with
    ``align_corners=False`` centres it at ``(i + 0.5) · h / size``, and the nearest box pixel is
    the one containing that point. Box pixels outside the slice are background (the input
    there is air).
    """
    if labels.shape[1:] != (box.rows, box.cols):
        raise ValueError(f"crop box is for {box.rows}×{box.cols} slices, got {labels.shape[1:]}")
    rows = box.y0 + np.minimum(((np.arange(size) + 0.5) * (box.height / size)).astype(np.int64), box.height - 1)
    cols = box.x0 + np.minimum(((np.arange(size) + 0.5) * (box.width / size)).astype(np.int64), box.width - 1)
    ok_r = (rows >= 0) & (rows < box.rows)
    ok_c = (cols >= 0) & (cols < box.cols)
    out = labels[:, np.clip(rows, 0, box.rows - 1)][:, :, np.clip(cols, 0, box.cols - 1)]
    out[:, ~ok_r, :] = BACKGROUND
    out[:, :, ~ok_c] = BACKGROUND
    return np.ascontiguousarray(out, dtype=np.uint8)


def slices_for_volume(label_maps: dict[str, LabelVolume], sop_uids: Sequence[str], what: str) -> np.ndarray:
    """Label slices for the slices ``sop_uids`` of a loaded volume, matched by SOPInstanceUID.

    Matching by SOP UID (not by series UID or position) holds for a series the scanner split
    and for any slice order.

    Raises
    ------
    LabelMapError
        A slice has no label map (the series is not one the generator labelled, e.g. a
        coronal reformat, or the label files belong to another study).
    """
    where: dict[str, tuple[LabelVolume, int]] = {}
    for vol in label_maps.values():
        for i, uid in enumerate(vol.sop_uids):
            where[uid] = (vol, i)
    missing = [u for u in sop_uids if u not in where]
    if missing:
        raise LabelMapError(f"{what}: {len(missing)} of {len(sop_uids)} slices have no label map "
                            f"(first: SOP Instance UID {missing[0]})")
    first = where[sop_uids[0]][0].labels
    out = np.empty((len(sop_uids), *first.shape[1:]), dtype=np.uint8)
    for k, uid in enumerate(sop_uids):
        vol, i = where[uid]
        if vol.labels.shape[1:] != first.shape[1:]:
            raise LabelMapError(f"{what}: label maps of different sizes {vol.labels.shape[1:]} and {first.shape[1:]}")
        out[k] = vol.labels[i]
    return out


def labels_for_inputs(
    study: AssembledStudy,
    config: ModelConfig,
    label_maps: dict[str, LabelVolume],
    pair_indices: Sequence[int] | None = None,
    boxes: dict[str, CropBox] | None = None,
) -> np.ndarray:
    """Label maps aligned with :func:`app.inference.preprocess.preprocess_study`'s input.

    Parameters
    ----------
    study:
        The app's assembled study (with its loaded volumes), as ``preprocess_study`` gets it.
    config:
        The model configuration (phases, input size, crop policy).
    label_maps:
        :func:`read_label_maps` of the study's folder.
    pair_indices, boxes:
        As for ``preprocess_study`` (all pairs and the study's own crop boxes when None).

    Returns
    -------
    np.ndarray
        uint8 ``[N, P, S, S]``: row ``k`` belongs to the input's row ``k`` (pair
        ``pair_indices[k]``), the phase axis in ``config.phases`` order — the input tensor
        ``[N, P, 1, S, S]`` without its channel axis.

    Raises
    ------
    LabelMapError
        A slice of the study has no label map (see :func:`slices_for_volume`).
    """
    from app.inference.preprocess import check_study, study_boxes

    check_study(study, config)
    chosen = list(range(len(study.pairs))) if pair_indices is None else [int(i) for i in pair_indices]
    boxes = boxes or study_boxes(study, config)
    size = config.input_size
    out = np.zeros((len(chosen), config.n_phases, size, size), dtype=np.uint8)
    for j, p in enumerate(config.phases):
        vol = study.volumes[p]
        uids = [vol.sop_instance_uids[study.pairs[i].index[p]] for i in chosen]
        slices = slices_for_volume(label_maps, uids, f"{p} series {vol.series_uid}")
        if slices.shape[1:] != vol.hu.shape[1:]:
            raise LabelMapError(f"{p} series {vol.series_uid}: label maps are {slices.shape[1:]}, "
                                f"the images {vol.hu.shape[1:]}")
        out[:, j] = resample_nearest(slices, boxes[p], size)
    return out
