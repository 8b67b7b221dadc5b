"""A study prepared for the network, its preprocessing settings, and its on-disk cache.

These are the data types shared by the cohort (:mod:`app.training.cohort`, which reads the CSV
and prepares every study) and the per-study pipeline (:mod:`app.training._pipeline`, which runs
the app's own scan → assemble → preprocess). They live apart from both so that neither has to
import the other's module to name them (the two used to import each other).

The cache is ``.npz`` (numpy arrays only, no pickle) keyed by a fingerprint of the folder's
files and by the preprocessing settings, so epochs and later runs never re-read DICOM.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.inference.config import ModelConfig

#: Bump when the content of cached arrays changes meaning (forces re-preparation).
CACHE_VERSION = 2  # 2: optional ground-truth segmentation (seg) beside the slices


@dataclass
class PreparedStudy:
    """One study as the network sees it: preprocessed slice triplets and the patient's label.

    Attributes
    ----------
    slices:
        ``[n_pairs, 3, S, S]`` float16 in [0, 1], phases in the canonical order
        (plain, arterial, portal); a model reading fewer phases selects its channels.
        float16 keeps 11 bits (≈ 0.2 HU in the W400 window), so the cached input equals the
        app's float32 preprocessing to well below CT noise, at half the memory.
    z_ref:
        Table position (mm) of each triplet.
    target:
        Optional probability of response used as the training target instead of ``label``
        (:func:`attach_soft_targets`); never cached — it comes from the CSV, like the label.
    seg:
        Optional ground truth for a lesion head: ``[n_pairs, 3, S, S]`` uint8 in
        :data:`app.inference.config.SEG_CLASSES` codes, aligned pixel for pixel with
        ``slices`` — present for synthetic studies written with label maps
        (``demo-data --label-maps``).
    """

    patient_id: str
    label: int
    slices: np.ndarray
    z_ref: np.ndarray
    study_uid: str = ""
    source: str = ""
    warnings: list[str] = field(default_factory=list)
    target: float | None = None
    seg: np.ndarray | None = None

    @property
    def n_slices(self) -> int:
        return int(self.slices.shape[0])


@dataclass(frozen=True)
class PrepareSettings:
    """Preprocessing settings that change the cached arrays (part of the cache key)."""

    input_size: int = 224
    window: tuple[float, float] = (400.0, 0.0)
    crop: str = "none"
    crop_fov_mm: float = 350.0

    @classmethod
    def from_model_config(cls, cfg: ModelConfig) -> PrepareSettings:
        """The preprocessing part of a model configuration."""
        return cls(cfg.input_size, cfg.window, cfg.crop, cfg.crop_fov_mm)

    def key(self) -> str:
        return json.dumps({"v": CACHE_VERSION, "size": self.input_size,
                           "window": list(self.window), "crop": self.crop,
                           "fov": self.crop_fov_mm}, sort_keys=True)


def folder_fingerprint(folder: Path) -> str:
    """SHA-256 over (relative path, size, mtime) of every file below ``folder``.

    Reading every byte of every DICOM file would cost as much as preparing the study; file
    size and modification time change whenever a file is replaced, added or removed, which is
    what invalidates a cached study.
    """
    h = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            fp = Path(root) / name
            try:
                st = fp.stat()
            except OSError:
                continue  # vanished mid-walk; the scan will report it
            rel = fp.relative_to(folder).as_posix()
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cache_path(cache_dir: Path, study_dir: Path, settings: PrepareSettings) -> Path:
    key = hashlib.sha256(
        (str(study_dir.resolve()) + "\0" + folder_fingerprint(study_dir) + "\0"
         + settings.key()).encode()).hexdigest()[:32]
    return cache_dir / f"{key}.npz"


def save_prepared(path: Path, st: PreparedStudy) -> None:
    """Write a prepared study as ``.npz`` (atomic: temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"patient_id": st.patient_id, "label": st.label,
                       "study_uid": st.study_uid, "source": st.source,
                       "warnings": st.warnings})
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    arrays: dict[str, np.ndarray] = {"slices": st.slices.astype(np.float16), "z_ref": st.z_ref.astype(np.float64),
              "meta": np.frombuffer(meta.encode(), dtype=np.uint8)}
    if st.seg is not None:
        arrays["seg"] = st.seg.astype(np.uint8)
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)


def load_prepared(path: Path) -> PreparedStudy:
    """Read a study written by :func:`save_prepared` (``allow_pickle=False``)."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes().decode())
        return PreparedStudy(meta["patient_id"], int(meta["label"]), z["slices"],
                             z["z_ref"], meta.get("study_uid", ""), meta.get("source", ""),
                             list(meta.get("warnings", [])),
                             seg=z["seg"] if "seg" in z.files else None)
