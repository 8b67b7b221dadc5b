"""Seeded random streams, one independent stream per purpose and patient.

Patient ``i`` of a cohort with seed ``S`` always gets the same streams, whatever the options
(matrix, extra series) and whichever other patients are generated: the latent features and the
outcome come from their own stream, so :func:`app.synthetic.cohort.sample_patients` reproduces
the labels of a rendered cohort without rendering it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Order matters: adding a purpose must append, never insert (it would change every cohort).
_PURPOSES: tuple[str, ...] = ("outcome", "anatomy", "lesions", "noise", "dicom")


@dataclass(frozen=True)
class PatientStreams:
    """Independent generators for one patient."""

    outcome: np.random.Generator
    anatomy: np.random.Generator
    lesions: np.random.Generator
    noise: np.random.Generator
    dicom: np.random.Generator


def patient_streams(seed: int, index: int) -> PatientStreams:
    """Return the random streams of patient ``index`` in the cohort of ``seed``.

    Parameters
    ----------
    seed:
        Cohort seed (non-negative integer).
    index:
        0-based patient index within the cohort.
    """
    children = np.random.SeedSequence([int(seed), int(index), 0x4843_4352]).spawn(len(_PURPOSES))
    gens = {name: np.random.default_rng(child) for name, child in zip(_PURPOSES, children, strict=True)}
    return PatientStreams(**gens)
