"""The per-study step of the training data path, through the app's own code.

scan → assemble (phase assignment, liver range, pairing; :func:`app.dicom.assembly.assemble_folder`)
→ :func:`app.inference.preprocess.preprocess_study` — exactly what ``predict`` does before the
network, so a model sees in training what it will see in the app.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app import PHASES
from app.dicom.types import AssembledStudy
from app.inference.config import SEG_CLASSES, ModelConfig
from app.progress import NULL_PROGRESS, Progress
from app.training.prepared import PreparedStudy, PrepareSettings


def preprocessing_config(settings: PrepareSettings) -> ModelConfig:
    """A three-phase configuration carrying only the preprocessing settings.

    The cache always holds all three phases; a model reading fewer selects its channels, and
    preprocessing is per phase, so the arrays are the same for every phase subset.
    """
    return ModelConfig(phases=PHASES, backbone="tiny", input_size=settings.input_size,
                       window=settings.window, crop=settings.crop,
                       crop_fov_mm=settings.crop_fov_mm)


def prepare_study_via_app(study_dir: Path, settings: PrepareSettings, *, patient_id: str = "",
                          label: int = 0, progress: Progress = NULL_PROGRESS) -> PreparedStudy:
    """Scan and assemble ``study_dir`` like the app, preprocess every paired triplet.

    Raises
    ------
    InputError
        No usable study, several studies in the folder (a cohort row names one study), or the
        DICOM layer's own refusal (missing phase, bad geometry ...), passed on unchanged.
    """
    from app.dicom.studies import open_study
    from app.inference.preprocess import preprocess_study

    outcome = open_study(study_dir, progress=progress,
                         how_to_choose="a cohort row must name the folder of one study")
    cfg = preprocessing_config(settings)
    inputs = preprocess_study(outcome, cfg)
    x = inputs.x[:, :, 0].numpy().astype(np.float16)  # [N, 3, S, S]
    warnings = list(outcome.warnings)
    if outcome.needs_confirmation:
        warnings = [f"needs confirmation: {r}" for r in outcome.confirmation_reasons] + warnings
    z = np.array([outcome.pairs[i].z_ref for i in inputs.pair_indices], dtype=np.float64)
    return PreparedStudy(patient_id or outcome.patient_id, int(label), x, z,
                         outcome.study_uid, str(study_dir), warnings,
                         seg=ground_truth_seg(study_dir, outcome, cfg, inputs.pair_indices))


def ground_truth_seg(study_dir: Path, study: AssembledStudy, cfg: ModelConfig,
                     pair_indices: list[int]) -> np.ndarray | None:
    """The lesion head's ground truth for a synthetic study written with label maps, aligned
    with the prepared slices (``[N, 3, S, S]`` uint8 in SEG_CLASSES codes); None without."""
    from app.synthetic.labelmaps import has_label_maps, labels_for_inputs, read_label_maps

    if not has_label_maps(study_dir):
        return None
    codes = labels_for_inputs(study, cfg, read_label_maps(study_dir), pair_indices)
    return SEG_FROM_LABEL_CODE[codes]


def _seg_lookup() -> np.ndarray:
    """Label-map code → segmentation class: intrahepatic vessels count as liver; capsule and
    iodised oil as lesion; necrosis as its own class; everything else (aorta, thrombus,
    background) as other."""
    from app.synthetic import labelmaps as lm

    table = np.zeros(256, dtype=np.uint8)
    table[[lm.LIVER, lm.LIVER_VESSEL]] = SEG_CLASSES.index("liver")
    table[[lm.LESION, lm.CAPSULE, lm.OIL]] = SEG_CLASSES.index("lesion")
    table[lm.NECROSIS] = SEG_CLASSES.index("necrosis")
    return table


SEG_FROM_LABEL_CODE = _seg_lookup()
