"""Where Grad-CAM puts its mass, measured against the generator's label maps.

A heat map that "looks right" is no evidence; a share of mass inside the liver and inside the
lesions is. For synthetic cohorts written with ``demo-data --label-maps`` every slice triplet
the network sees has label maps aligned with its input
(:func:`app.synthetic.labelmaps.labels_for_inputs`), and Grad-CAM is computed on the same input
grid (:func:`app.inference.gradcam.gradcam_on_inputs`, the responder class explained, as the
app shows it), so both are compared pixel for pixel — no resampling in between.

Definitions (one *map* = one phase of one slice triplet; maps without any Grad-CAM mass are
skipped, their number is reported):

* **liver share** of a map: Grad-CAM mass on liver pixels (parenchyma, lesions with capsule,
  necrosis and oil, intrahepatic vessels; :data:`~app.synthetic.labelmaps.LIVER_CODES`) over
  the map's whole mass;
* **lesion share** of a map whose label map shows a lesion
  (:data:`~app.synthetic.labelmaps.LESION_CODES`): mass on lesion pixels over the whole mass;
  its **lesion area share** is the lesions' pixels over the input's pixels (what a uniform map
  would put on them);
* per patient, each share is the mean over the patient's maps (lesion shares over the maps
  that show a lesion); per cohort, the mean over patients (patients with no lesion map leave
  the lesion figures out). The **ratio** is the cohort's lesion share over its lesion area
  share: 1 is a map that ignores the lesions, ≥ 3 is the issue's target.

The per-map mean weighs a faint map (a slice where the model sees no tumour, whose few units of
heat are spread anywhere) like the brightest one. The app does not show it that way: one colour
scale per study (``CamResult.global_max``), so a faint map looks faint. The **displayed** shares
weigh every map by its mass, i.e. per patient the Grad-CAM mass on liver (lesion) pixels over
all the study's Grad-CAM mass (on the maps showing a lesion, for the lesion share), then the
mean over patients — where the heat a reader sees lies. For a lesion-head model the app shows only the maps of the slices that took
part in the decision (:func:`app.inference.gradcam.shown_slices`), so the displayed shares are
taken over those. Both are reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from app.errors import Cancelled, HCCError
from app.parallel import resolve_workers, run_jobs
from app.progress import NULL_PROGRESS, Progress
from app.synthetic import labelmaps as lm
from app.training.cohort import CohortEntry, phase_indices
from app.training.prepared import PreparedStudy, PrepareSettings, cache_path

DEFINITION = ("per map (one phase of one slice triplet, on the network input grid): liver share = "
              "Grad-CAM mass on liver pixels (parenchyma, lesions, intrahepatic vessels) / all "
              "mass; on maps showing a lesion: lesion share = mass on lesion pixels / all mass, "
              "lesion area share = lesion pixels / input pixels; per patient the mean over its "
              "maps, per cohort the mean over patients; ratio = lesion share / lesion area share; "
              "displayed shares: per patient the mass on liver (lesion) pixels over the study's "
              "whole mass (on maps showing a lesion), as the app shows it with one colour scale "
              "per study, then the mean over patients")


@dataclass(frozen=True)
class PatientCamMass:
    """Grad-CAM mass shares of one patient (NaN where no map qualified)."""

    liver_share: float
    lesion_share: float
    lesion_area_share: float
    n_maps: int
    n_lesion_maps: int
    n_empty_maps: int
    displayed_liver_share: float = float("nan")
    displayed_lesion_share: float = float("nan")


def patient_cam_mass(cams: np.ndarray, labels: np.ndarray, shown: np.ndarray | None = None) -> PatientCamMass:
    """Mass shares of one patient's maps ``cams`` ``[N, P, S, S]`` (non-negative) against the
    aligned label maps ``labels`` of the same shape (see the module docstring); ``shown`` ``[N]``
    marks the triplets whose maps the app shows (all when None) for the displayed shares."""
    if cams.shape != labels.shape:
        raise ValueError(f"Grad-CAM maps {cams.shape} and label maps {labels.shape} differ in shape")
    n = cams.shape[0] * cams.shape[1]
    c = cams.reshape(n, -1).astype(np.float64)
    lab = labels.reshape(n, -1)
    total = c.sum(axis=1)
    has_mass = total > 0
    liver = np.where(np.isin(lab, lm.LIVER_CODES), c, 0.0).sum(axis=1)
    lesion_px = np.isin(lab, lm.LESION_CODES)
    lesion = np.where(lesion_px, c, 0.0).sum(axis=1)
    shows = has_mass & lesion_px.any(axis=1)
    safe = np.where(has_mass, total, 1.0)
    on = np.repeat(np.asarray(shown, dtype=bool), cams.shape[1]) if shown is not None else np.ones(n, dtype=bool)
    shown_total, shown_lesion_total = total[on].sum(), total[on & shows].sum()
    return PatientCamMass(
        liver_share=float(np.mean(liver[has_mass] / safe[has_mass])) if has_mass.any() else float("nan"),
        lesion_share=float(np.mean(lesion[shows] / safe[shows])) if shows.any() else float("nan"),
        lesion_area_share=float(lesion_px[shows].mean(axis=1).mean()) if shows.any() else float("nan"),
        n_maps=int(n), n_lesion_maps=int(shows.sum()), n_empty_maps=int((~has_mass).sum()),
        displayed_liver_share=float(liver[on].sum() / shown_total) if shown_total > 0 else float("nan"),
        displayed_lesion_share=_displayed_lesion_share(lesion[on & shows].sum(), shown_lesion_total,
                                                       shown_total, bool(shows.any())))


def _displayed_lesion_share(on_lesions: float, lesion_maps_mass: float, shown_mass: float,
                            has_lesion_maps: bool) -> float:
    """Mass on lesion pixels over the shown maps that show a lesion. When the study has lesion
    maps and the app shows heat, but on none of them (it decided on slices without tumour), the
    heat a reader sees misses the tumour: 0, not "undefined" — leaving such a patient out would
    flatter the cohort figure (and one such patient made it NaN)."""
    if lesion_maps_mass > 0:
        return float(on_lesions / lesion_maps_mass)
    return 0.0 if has_lesion_maps and shown_mass > 0 else float("nan")


@dataclass
class CamMassReport:
    """Grad-CAM mass shares of a cohort (means over patients; see the module docstring)."""

    n_patients: int
    liver_share: float
    lesion_share: float
    lesion_area_share: float
    ratio: float
    n_patients_with_lesion_maps: int
    n_maps: int
    n_lesion_maps: int
    n_empty_maps: int
    displayed_liver_share: float = float("nan")
    displayed_lesion_share: float = float("nan")
    displayed_ratio: float = float("nan")
    target: str = "responder"
    definition: str = DEFINITION

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def summarise(patients: Sequence[PatientCamMass], target: str = "responder") -> CamMassReport:
    """Cohort figures: each share the mean over patients (lesion figures over patients with a
    lesion map); ratio of the two lesion means."""
    liver = [p.liver_share for p in patients if np.isfinite(p.liver_share)]
    with_lesion = [p for p in patients if p.n_lesion_maps > 0]
    les = float(np.mean([p.lesion_share for p in with_lesion])) if with_lesion else float("nan")
    area = float(np.mean([p.lesion_area_share for p in with_lesion])) if with_lesion else float("nan")
    shown_liver = [p.displayed_liver_share for p in patients if np.isfinite(p.displayed_liver_share)]
    shown_les_each = [p.displayed_lesion_share for p in with_lesion if np.isfinite(p.displayed_lesion_share)]
    shown_les = float(np.mean(shown_les_each)) if shown_les_each else float("nan")
    return CamMassReport(
        n_patients=len(patients), liver_share=float(np.mean(liver)) if liver else float("nan"),
        lesion_share=les, lesion_area_share=area, ratio=les / area if area > 0 else float("nan"),
        n_patients_with_lesion_maps=len(with_lesion), n_maps=sum(p.n_maps for p in patients),
        n_lesion_maps=sum(p.n_lesion_maps for p in patients),
        n_empty_maps=sum(p.n_empty_maps for p in patients),
        displayed_liver_share=float(np.mean(shown_liver)) if shown_liver else float("nan"),
        displayed_lesion_share=shown_les, displayed_ratio=shown_les / area if area > 0 else float("nan"),
        target=target)


def format_cam_mass(r: CamMassReport) -> str:
    """Lines for the text report."""
    return "\n".join([
        f"Grad-CAM mass against the label maps ({r.n_patients} patients, {r.n_maps} maps, "
        f"{r.target} class explained):",
        f"  inside the liver        {r.liver_share:.1%} (mean over patients)",
        f"  inside lesions          {r.lesion_share:.1%} on the {r.n_lesion_maps} maps showing a lesion "
        f"({r.n_patients_with_lesion_maps} patients)",
        f"  lesion share of image   {r.lesion_area_share:.1%}; ratio {r.ratio:.2f} (1 = blind to lesions)",
        f"  as displayed (one colour scale per study, maps weighted by their mass): inside the liver "
        f"{r.displayed_liver_share:.1%}, inside lesions {r.displayed_lesion_share:.1%}, ratio {r.displayed_ratio:.2f}",
        f"  ({r.n_empty_maps} maps without Grad-CAM mass skipped)",
    ]) + "\n"


# ------------------------------------------------------------------ label maps of a prepared cohort


@dataclass(frozen=True)
class _LabelJob:
    """One study whose aligned label maps are needed (picklable: it may go to a worker)."""

    study_dir: Path
    settings: PrepareSettings
    cache_file: Path | None


def _aligned_labels(job: _LabelJob, progress: Progress = NULL_PROGRESS) -> tuple[np.ndarray, np.ndarray] | str:
    """(labels ``[N, 3, S, S]``, z_ref ``[N]``) aligned with the study's prepared slices, or why not."""
    from app.training._pipeline import preprocessing_config
    from app.training.ladder import assemble_single

    if job.cache_file is not None and job.cache_file.is_file():
        try:
            with np.load(job.cache_file, allow_pickle=False) as z:
                return z["labels"], z["z_ref"]
        except (OSError, ValueError, KeyError):
            pass  # damaged cache file: recompute
    try:
        study = assemble_single(job.study_dir, progress)
        labels = lm.labels_for_inputs(study, preprocessing_config(job.settings), lm.read_label_maps(job.study_dir))
    except Cancelled:
        raise
    except HCCError as exc:
        return exc.message
    z_ref = np.array([p.z_ref for p in study.pairs], dtype=np.float64)
    if job.cache_file is not None:
        import os

        job.cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = job.cache_file.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez_compressed(tmp, labels=labels, z_ref=z_ref)
        os.replace(tmp, job.cache_file)
    return labels, z_ref


def cohort_label_maps(entries: Sequence[CohortEntry], studies: Sequence[PreparedStudy], settings: PrepareSettings,
                      *, cache_dir: Path | None = None, workers: int = 1, progress: Progress = NULL_PROGRESS,
                      ) -> tuple[list[np.ndarray | None], list[str]]:
    """Label maps aligned with each prepared study's slices (``[N, 3, S, S]``, canonical phases),
    None for a study without label maps or whose labels do not line up; plus notes saying why.

    Studies are assembled again (``workers`` processes, 0 = one per core), once: the maps are
    cached in ``cache_dir / "labels"`` under the same key as the prepared study."""
    wanted = [i for i, e in enumerate(entries) if lm.has_label_maps(e.study_dir)]
    jobs = [_LabelJob(entries[i].study_dir, settings,
                      cache_path(cache_dir / "labels", entries[i].study_dir, settings) if cache_dir else None)
            for i in wanted]
    results = run_jobs(_aligned_labels, jobs, resolve_workers(workers), progress=progress,
                       describe=lambda j: f"label maps of {j.study_dir.name}")
    out: list[np.ndarray | None] = [None] * len(entries)
    notes: list[str] = []
    for i, res in zip(wanted, results, strict=True):
        pid = entries[i].patient_id
        if isinstance(res, str):
            notes.append(f"{pid}: no aligned label maps ({res})")
            continue
        labels, z_ref = res
        st = studies[i]
        if labels.shape[0] != st.n_slices or labels.shape[2:] != st.slices.shape[2:] \
                or not np.allclose(z_ref, st.z_ref, atol=1e-3):
            notes.append(f"{pid}: label maps do not line up with the prepared slices (left out)")
            continue
        out[i] = labels
    return out, notes


def cohort_cam_mass(model: nn.Module, phases: Sequence[str], studies: Sequence[PreparedStudy],
                    labels: Sequence[np.ndarray | None], *, batch_size: int = 16,
                    progress: Progress = NULL_PROGRESS) -> CamMassReport | None:
    """Grad-CAM mass shares of ``model`` over the studies that have aligned label maps (None
    when none has)."""
    from app.inference.gradcam import explain_inputs
    from app.inference.model import MultiPhaseNet
    from app.inference.result import aggregate

    if not isinstance(model, MultiPhaseNet):
        raise TypeError(f"Grad-CAM needs a MultiPhaseNet, got {type(model).__name__}")
    model.eval()
    pidx = phase_indices(phases)
    todo = [(st, lab) for st, lab in zip(studies, labels, strict=True) if lab is not None]
    patients: list[PatientCamMass] = []
    for k, (st, lab) in enumerate(todo):
        progress.check()
        x = torch.from_numpy(np.ascontiguousarray(st.slices[:, pidx])).float().unsqueeze(2)
        res = explain_inputs(model, x, "responder", batch_size)
        shown = None
        if res.lesion_areas is not None and model.config.votes_on_lesions:
            shown = np.array(aggregate(res.probabilities, res.lesion_areas, "lesion_weighted",
                                       model.config.threshold).voting)
        patients.append(patient_cam_mass(res.maps, lab[:, pidx], shown))
        progress.update((k + 1) / len(todo), f"Grad-CAM mass {k + 1}/{len(todo)}")
    return summarise(patients) if patients else None
