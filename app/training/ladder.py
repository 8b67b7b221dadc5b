"""Rungs of the learnability ladder that need no network: measured features and histograms.

The ladder (``bench/learning_ladder.py``, ``docs/learning.md``) puts one number on each step
between the generator's truth and a trained network, all on the same unseen test cohort, so
that the gap between two rungs says where the signal is lost. This module holds what the
rungs below the networks need:

* :func:`measure_study` — per study, through the app's own path (scan, assembly, pairing,
  :func:`~app.inference.preprocess.preprocess_study`): tumour features measured inside the
  generator's label maps, once at full resolution on the paired slices and once on the
  network input itself (crop and resolution of the model, labels from
  :func:`~app.synthetic.labelmaps.labels_for_inputs`), plus intensity histograms of the input;
* :class:`Logistic` — L2-penalised logistic regression (Newton's method, numpy only; scikit-learn
  is not a dependency), its penalty chosen by cross-validation on the training cohort only.

Measured features (:data:`FEATURES`; the first five are the basic rung, all ten the extended
one). Tumour = lesion, capsule, necrosis and oil codes; every sum runs over all paired slices
and all three phases unless said otherwise:

``d_plain_hu, d_arterial_hu, d_portal_hu``
    mean HU under the viable-lesion code minus mean HU under the liver-parenchyma code, per
    phase (NaN when the lesion has no pixel, imputed by the training mean);
``diameter_mm``
    equivalent diameter ``2·sqrt(A/π)`` of the largest tumour cross-section ``A``, mean over
    phases;
``necrosis_share``
    necrosis pixels over tumour pixels;
``log_volume_ml``
    ``log(1 + V)``, ``V`` the tumour volume (area × spacing of the pairs), mean over phases;
``capsule_share, oil_share``
    capsule and oil pixels over tumour pixels;
``thrombus_ml``
    tumour-thrombus volume, mean over phases;
``arterial_sd_hu``
    standard deviation of HU under the viable-lesion code in the arterial phase (the mosaic).

At the input resolution, HU are read back from the windowed input (``x · W + L − W/2``), so
values outside the window are clipped as the network sees them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app import PHASES, stats
from app.dicom.types import AssembledStudy
from app.errors import Cancelled, HCCError, InputError
from app.inference.config import ModelConfig
from app.progress import NULL_PROGRESS, Progress
from app.synthetic import labelmaps as lm

FEATURES: tuple[str, ...] = (
    "d_plain_hu", "d_arterial_hu", "d_portal_hu", "diameter_mm", "necrosis_share",
    "log_volume_ml", "capsule_share", "oil_share", "thrombus_ml", "arterial_sd_hu",
)
#: Features of the basic measured rung (what the issue names: contrast per phase, size, necrosis).
BASIC_FEATURES: tuple[str, ...] = FEATURES[:5]
#: Bins of the input-intensity histograms over [0, 1] (per phase).
HIST_BINS = 32
_TUMOUR = lm.LESION_CODES


@dataclass
class StudyMeasures:
    """What the non-network rungs need of one study.

    Attributes
    ----------
    full, inputs:
        :data:`FEATURES` measured at full resolution on the paired slices, and on the network
        input (its crop and resolution).
    histogram:
        ``[len(phases) · HIST_BINS]`` share of input pixels per intensity bin, per phase.
    n_pairs:
        Number of slice triplets (the network's slices of this patient).
    """

    full: np.ndarray
    inputs: np.ndarray
    histogram: np.ndarray
    n_pairs: int


def tumour_features(hu: np.ndarray, labels: np.ndarray, pixel_mm2: Sequence[float], spacing_mm: float,
                    phases: Sequence[str]) -> np.ndarray:
    """:data:`FEATURES` of one study from HU ``[N, P, h, w]`` and aligned codes of equal shape.

    ``pixel_mm2[j]`` is the area of one pixel of phase ``j``; ``spacing_mm`` the distance of
    neighbouring slices (pairs).
    """
    out = dict.fromkeys(FEATURES, float("nan"))
    areas, volumes, thrombus = [], [], []
    counts = dict.fromkeys((lm.LESION, lm.NECROSIS, lm.CAPSULE, lm.OIL), 0)
    for j, phase in enumerate(phases):
        h, lab = hu[:, j], labels[:, j]
        liver, lesion = lab == lm.LIVER, lab == lm.LESION
        if phase in PHASES and lesion.any() and liver.any():
            out[f"d_{phase}_hu"] = float(h[lesion].mean() - h[liver].mean())
        if phase == "arterial" and lesion.sum() > 1:
            out["arterial_sd_hu"] = float(h[lesion].std())
        per_slice = np.isin(lab, _TUMOUR).sum(axis=(1, 2)) * pixel_mm2[j]
        areas.append(float(per_slice.max(initial=0.0)))
        volumes.append(float(per_slice.sum()) * spacing_mm / 1000.0)
        thrombus.append(float((lab == lm.THROMBUS).sum()) * pixel_mm2[j] * spacing_mm / 1000.0)
        for code in counts:
            counts[code] += int((lab == code).sum())
    tumour = sum(counts.values())
    out["diameter_mm"] = float(np.mean([2.0 * np.sqrt(a / np.pi) for a in areas]))
    out["log_volume_ml"] = float(np.log1p(np.mean(volumes)))
    out["thrombus_ml"] = float(np.mean(thrombus))
    if tumour:
        out["necrosis_share"] = counts[lm.NECROSIS] / tumour
        out["capsule_share"] = counts[lm.CAPSULE] / tumour
        out["oil_share"] = counts[lm.OIL] / tumour
    else:
        out["necrosis_share"] = out["capsule_share"] = out["oil_share"] = 0.0
    return np.array([out[k] for k in FEATURES], dtype=np.float64)


def input_histogram(x: np.ndarray) -> np.ndarray:
    """Share of pixels per intensity bin of each phase of an input ``[N, P, S, S]`` in [0, 1]."""
    rows = []
    for j in range(x.shape[1]):
        counts, _ = np.histogram(x[:, j], bins=HIST_BINS, range=(0.0, 1.0))
        rows.append(counts / max(counts.sum(), 1))
    return np.concatenate(rows).astype(np.float64)


def _pair_spacing(z_ref: np.ndarray) -> float:
    return float(np.median(np.abs(np.diff(np.sort(z_ref))))) if z_ref.size > 1 else 5.0


def measure_assembled(study_dir: Path, study: AssembledStudy, config: ModelConfig) -> StudyMeasures:
    """:class:`StudyMeasures` of an assembled study whose folder holds label maps."""
    from app.inference.preprocess import preprocess_study

    maps = lm.read_label_maps(study_dir)
    if not maps:
        raise lm.LabelMapError(f"{study_dir} has no label maps (generate it with demo-data --label-maps)")
    inputs = preprocess_study(study, config)
    x = inputs.x[:, :, 0].numpy()
    labels = lm.labels_for_inputs(study, config, maps, boxes=inputs.boxes)
    width, level = config.window
    z_ref = np.array([study.pairs[i].z_ref for i in inputs.pair_indices])
    spacing = _pair_spacing(z_ref)
    size = config.input_size
    in_area, full_area = [], []
    full_hu = np.empty((x.shape[0], x.shape[1], *study.volumes[config.phases[0]].hu.shape[1:]), dtype=np.float32)
    full_lab = np.empty(full_hu.shape, dtype=np.uint8)
    for j, p in enumerate(config.phases):
        vol = study.volumes[p]
        box = inputs.boxes[p]
        ry, rx = vol.pixel_spacing
        in_area.append((box.height * ry / size) * (box.width * rx / size))
        full_area.append(ry * rx)
        idx = [study.pairs[i].index[p] for i in inputs.pair_indices]
        if vol.hu.shape[1:] != full_hu.shape[2:]:
            raise InputError(f"{study_dir}: the phases have different matrix sizes")
        full_hu[:, j] = vol.hu[idx]
        full_lab[:, j] = lm.slices_for_volume(maps, [vol.sop_instance_uids[i] for i in idx], f"{p} series")
    x_hu = x * width + (level - width / 2.0)
    return StudyMeasures(
        full=tumour_features(full_hu, full_lab, full_area, spacing, config.phases),
        inputs=tumour_features(x_hu, labels, in_area, spacing, config.phases),
        histogram=input_histogram(x),
        n_pairs=int(x.shape[0]),
    )


def assemble_single(study_dir: Path, progress: Progress = NULL_PROGRESS) -> AssembledStudy:
    """The one assembled study of ``study_dir``, with its volumes, as training prepares it
    (:func:`app.dicom.studies.open_study`)."""
    from app.dicom.studies import open_study

    return open_study(study_dir, progress=progress, how_to_choose="one is needed")


@dataclass(frozen=True)
class MeasureJob:
    """One study to measure for one or more network inputs (picklable: it may go to a worker).

    The study is assembled once for all ``configs``; ``cache_files`` (one per config, or None)
    keep each result.
    """

    study_dir: Path
    configs: tuple[ModelConfig, ...]
    cache_files: tuple[Path | None, ...] | None = None


def save_measures(path: Path, m: StudyMeasures) -> None:
    """Cache :class:`StudyMeasures` as ``.npz`` (temporary file, then rename)."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, full=m.full, inputs=m.inputs, histogram=m.histogram, n_pairs=np.int64(m.n_pairs),
             features=np.array(FEATURES))
    os.replace(tmp, path)


def load_measures(path: Path) -> StudyMeasures | None:
    """Cached measures, or None when the file is unreadable or has other features."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if tuple(str(f) for f in z["features"]) != FEATURES:
                return None
            return StudyMeasures(z["full"], z["inputs"], z["histogram"], int(z["n_pairs"]))
    except (OSError, ValueError, KeyError):
        return None


def measure_study(job: MeasureJob, progress: Progress = NULL_PROGRESS) -> list[StudyMeasures] | str:
    """Measures of one study folder per config (from the cache where there); a study the app
    refuses, or one without label maps, comes back as the reason (a string), like training's
    preparation."""
    files = job.cache_files or (None,) * len(job.configs)
    found = [load_measures(f) if f is not None and f.is_file() else None for f in files]
    if all(m is not None for m in found):
        return [m for m in found if m is not None]
    try:
        study = assemble_single(job.study_dir, progress)
        out = []
        for config, cached, cache_file in zip(job.configs, found, files, strict=True):
            if cached is None:
                cached = measure_assembled(job.study_dir, study, config)
                if cache_file is not None:
                    save_measures(cache_file, cached)
            out.append(cached)
    except Cancelled:
        raise
    except HCCError as exc:
        return exc.message
    return out


# -------------------------------------------------------------------------- logistic regression


@dataclass
class Logistic:
    """L2-penalised logistic regression on standardised features.

    Missing values (NaN) are replaced by the training mean (0 after standardisation); constant
    features are left at 0. The penalty ``l2`` applies to the weights, not to the intercept,
    and is per training case (the loss is the mean log-loss + ``l2/2 · |w|²``).
    """

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    l2: float

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        return np.where(np.isfinite(z), z, 0.0)

    def decision(self, x: np.ndarray) -> np.ndarray:
        return self._standardise(x) @ self.weights + self.bias

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.decision(x)))

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, l2: float = 0.01, iterations: int = 50) -> Logistic:
        """Newton's method on the penalised mean log-loss (convex: converges in a few steps)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != y.shape[0]:
            raise ValueError(f"features {x.shape} do not match {y.shape[0]} labels")
        mean = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        sd = np.nanstd(np.where(np.isfinite(x), x, np.nan), axis=0)
        scale = np.where(np.isfinite(sd) & (sd > 1e-12), sd, 1.0)
        model = cls(mean, scale, np.zeros(x.shape[1]), 0.0, float(l2))
        z = np.hstack([model._standardise(x), np.ones((x.shape[0], 1))])
        theta = np.zeros(z.shape[1])
        penalty = np.full(z.shape[1], float(l2))
        penalty[-1] = 0.0
        n = z.shape[0]
        for _ in range(iterations):
            p = 1.0 / (1.0 + np.exp(-(z @ theta)))
            grad = z.T @ (p - y) / n + penalty * theta
            hess = (z * (p * (1.0 - p))[:, None]).T @ z / n + np.diag(penalty + 1e-9)
            step = np.linalg.solve(hess, grad)
            theta -= step
            if float(np.max(np.abs(step))) < 1e-8:
                break
        model.weights, model.bias = theta[:-1], float(theta[-1])
        return model

    @classmethod
    def fit_cv(cls, x: np.ndarray, y: np.ndarray, grid: Sequence[float] = (1e-3, 1e-2, 1e-1, 1.0),
               folds: int = 5, seed: int = 0, target: np.ndarray | None = None) -> Logistic:
        """Fit with the penalty of ``grid`` that gives the best mean AUC in stratified k-fold
        cross-validation on ``x, y`` (the training cohort; the test cohort is never looked at).

        ``target``: what the regression is fitted towards, when not the 0/1 labels ``y`` — a
        probability per case (a synthetic cohort's ``p_true``: the log-loss against it has the
        same optimum with far less label noise). Folds and AUCs always use ``y``.
        """
        y = np.asarray(y, dtype=np.int64)
        t = _fit_target(y, target)
        fold = stratified_folds(y, folds, seed)
        best, best_auc = grid[0], -1.0
        for l2 in grid:
            aucs = []
            for k in range(folds):
                tr, va = fold != k, fold == k
                if len(set(y[va].tolist())) < 2 or len(set(y[tr].tolist())) < 2:
                    continue
                m = cls.fit(x[tr], t[tr], l2)
                aucs.append(stats.auc(y[va], m.decision(x[va])))
            score = float(np.mean(aucs)) if aucs else -1.0
            if score > best_auc:
                best, best_auc = l2, score
        return cls.fit(x, t, best)

    @classmethod
    def out_of_fold(cls, x: np.ndarray, y: np.ndarray, l2: float, folds: int = 5, seed: int = 0,
                    target: np.ndarray | None = None) -> np.ndarray:
        """Each case's probability from a model fitted (penalty ``l2``, towards ``target`` as in
        :meth:`fit_cv`) without its fold: what a threshold or an AUC can honestly be judged on
        when no other cohort is at hand. (The penalty itself was chosen by CV on all cases, a
        small optimism.)"""
        y = np.asarray(y, dtype=np.int64)
        t = _fit_target(y, target)
        fold = stratified_folds(y, folds, seed)
        out = np.empty(y.size, dtype=np.float64)
        for k in range(folds):
            tr = fold != k
            out[~tr] = cls.fit(x[tr], t[tr], l2).predict_proba(x[~tr])
        return out


def _fit_target(y: np.ndarray, target: np.ndarray | None) -> np.ndarray:
    """The values a :class:`Logistic` is fitted towards: ``target`` (probabilities in [0, 1], one
    per label) or the labels themselves."""
    if target is None:
        return y.astype(np.float64)
    t = np.asarray(target, dtype=np.float64)
    if t.shape != y.shape or not np.all(np.isfinite(t)) or t.min() < 0.0 or t.max() > 1.0:
        raise ValueError(f"fit target must hold {y.size} probabilities in [0, 1]")
    return t


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold number per case, each class spread evenly over the folds (seeded)."""
    rng = np.random.default_rng(seed)
    fold = np.empty(y.size, dtype=np.int64)
    for cls_ in (0, 1):
        idx = rng.permutation(np.flatnonzero(y == cls_))
        fold[idx] = np.arange(idx.size) % folds
    return fold
