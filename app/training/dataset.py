"""In-memory slice sets and the patient-level split.

A prepared cohort becomes one tensor of slice triplets (all three phases, float16, canonical
phase order) with a label and a patient index per slice. Training draws batches from it by
index, so an epoch costs no file access at all. The split into training and validation is by
patient — the slices of one patient are never on both sides — stratified by label and seeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from app.errors import InputError
from app.training.cohort import PreparedCohort
from app.training.prepared import PreparedStudy


class SplitError(InputError):
    """The cohort cannot be split as asked (too few patients of a class, bad split column)."""


@dataclass
class SliceSet:
    """Slice triplets of a set of patients.

    Attributes
    ----------
    x:
        ``[N, 3, S, S]`` float16 in [0, 1], phases plain/arterial/portal.
    y:
        ``[N]`` int64 slice labels (each slice carries its patient's label, as in the paper).
    group:
        ``[N]`` int64 index into ``patient_ids``.
    patient_ids, patient_labels:
        One entry per patient.
    target:
        ``[N]`` float32 soft training targets (each slice carries its patient's probability of
        response), or None when the studies have none (training uses ``y``).
    seg:
        ``[N, 3, S, S]`` uint8 ground-truth segmentation (lesion head), or None unless every
        study has one.
    """

    x: torch.Tensor
    y: torch.Tensor
    group: torch.Tensor
    patient_ids: list[str]
    patient_labels: np.ndarray
    target: torch.Tensor | None = None
    seg: torch.Tensor | None = None

    @classmethod
    def from_studies(cls, studies: Sequence[PreparedStudy]) -> SliceSet:
        if not studies:
            raise SplitError("no studies to build a slice set from")
        xs = [torch.from_numpy(np.ascontiguousarray(s.slices, dtype=np.float16)) for s in studies]
        sizes = {tuple(t.shape[1:]) for t in xs}
        if len(sizes) != 1:
            raise SplitError(f"prepared studies disagree on shape: {sorted(sizes)}")
        x = torch.cat(xs, 0)
        y = torch.cat([torch.full((s.n_slices,), int(s.label), dtype=torch.int64) for s in studies])
        g = torch.cat([torch.full((s.n_slices,), i, dtype=torch.int64)
                       for i, s in enumerate(studies)])
        targets = [s.target for s in studies]
        target = None
        if all(t is not None for t in targets):
            target = torch.tensor(targets, dtype=torch.float32).repeat_interleave(
                torch.tensor([s.n_slices for s in studies]))
        seg = None
        if all(s.seg is not None for s in studies):
            seg = torch.cat([torch.from_numpy(np.ascontiguousarray(s.seg, dtype=np.uint8))
                             for s in studies], 0)
        return cls(x, y, g, [s.patient_id for s in studies],
                   np.array([int(s.label) for s in studies], dtype=np.int64), target, seg)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_patients(self) -> int:
        return len(self.patient_ids)

    def summary(self) -> dict[str, object]:
        return {"patients": self.n_patients, "responders": int(self.patient_labels.sum()),
                "slices": len(self), "input_size": int(self.x.shape[-1])}


def stratified_patient_split(labels: Sequence[int] | np.ndarray, val_fraction: float, seed: int
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and validation patients, stratified by label, seeded.

    Each class is shuffled with its own seeded draw and ``round(n_class × val_fraction)`` of it
    (at least one where the class has two or more patients) goes to validation, so both sides
    keep the cohort's responder rate (the paper: 27.8 % vs 27.1 %).
    """
    y = np.asarray(labels, dtype=np.int64)
    if not 0.0 < val_fraction < 1.0:
        raise SplitError(f"validation fraction must lie in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        idx = idx[rng.permutation(idx.size)]
        k = int(round(idx.size * val_fraction))
        # at least one of each class on each side where the class allows it
        k = min(max(k, 1), idx.size - 1) if idx.size >= 2 else 0
        val.append(idx[:k])
        train.append(idx[k:])
    tr, va = np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
    if tr.size == 0 or va.size == 0:
        raise SplitError(f"cannot split {y.size} patients into training and validation")
    if len(np.unique(y[tr])) < 2:
        raise SplitError("the training side has only one class; the cohort is too small")
    return tr, va


@dataclass
class SplitData:
    """Training and validation slice sets (validation may be None: no early stopping)."""

    train: SliceSet
    val: SliceSet | None
    how: str

    def summary(self) -> dict[str, object]:
        return {"split": self.how, "train": self.train.summary(),
                "val": self.val.summary() if self.val is not None else None}


def split_prepared(prepared: PreparedCohort, val_fraction: float = 0.4, seed: int = 0
                   ) -> SplitData:
    """Split a prepared cohort into training and validation slice sets by patient.

    When the CSV has a ``split`` column, it decides (``train`` / ``val``; ``test`` rows are
    left out of training altogether); otherwise a stratified seeded split with
    ``val_fraction`` of the patients for validation (paper: 48 of 120 = 0.4).
    """
    entries = prepared.entries
    studies = prepared.studies
    given = [e.split for e in entries]
    if any(s is not None for s in given):
        if any(s is None for s in given):
            raise SplitError("the split column is filled for some rows only")
        tr = [s for s, e in zip(studies, entries, strict=True) if e.split == "train"]
        va = [s for s, e in zip(studies, entries, strict=True) if e.split == "val"]
        if not tr:
            raise SplitError("no patient has split=train")
        return SplitData(SliceSet.from_studies(tr), SliceSet.from_studies(va) if va else None,
                         "split column of the cohort CSV")
    labels = np.array([s.label for s in studies])
    tri, vai = stratified_patient_split(labels, val_fraction, seed)
    return SplitData(SliceSet.from_studies([studies[i] for i in tri]),
                     SliceSet.from_studies([studies[i] for i in vai]),
                     f"stratified by label, {val_fraction:.0%} of patients for validation, "
                     f"seed {seed}")
