"""Inference: preprocessing, the multi-pathway model, weights + model description, the
predictor with majority voting, Grad-CAM. torch; no Qt.

Modules
-------
``config``      :class:`ModelConfig` — architecture and preprocessing, frozen and validated.
``preprocess``  THE preprocessing (window W400/L0 → [0, 1], crop policy, resize to 224) and its
                inverse for Grad-CAM maps; ``preprocess_study`` for a whole assembled study.
``model``       :func:`build_model` → :class:`MultiPhaseNet` (forward ``[B, P, 1, S, S]`` →
                logits ``[B, 2]``); ``load_imagenet_init`` from a local file only.
``weights``     safetensors model files with the model card inside; ``save_model``,
                ``load_model`` (checked, SHA-256 identity), ``create_random_model``,
                ``default_model_path``, ``load_bundled_model``.
``device``      ``select_device("auto"|"cpu"|"cuda")`` with a real CUDA probe and reasons.
``predictor``   ``predict(study, model, progress)`` → :class:`PredictionResult` (majority vote,
                tie rule, per-slice results, device and timings).
``gradcam``     ``gradcam_slice`` (viewed slice) / ``gradcam_study`` (batched) →
                :class:`CamResult`; ``overlay_rgb`` / ``write_png`` for exports.
``arrays``      ``study_from_arrays`` — an AssembledStudy from HU arrays (tests, benchmarks).

The names below are importable from ``app.inference`` directly; they are loaded on first use so
that importing the package (e.g. for :class:`ModelConfig`) does not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ModelConfig": "config",
    "PHASE_COMBINATIONS": "config",
    "BACKBONES": "config",
    "preprocess_slices": "preprocess",
    "preprocess_study": "preprocess",
    "map_to_slice": "preprocess",
    "build_model": "model",
    "MultiPhaseNet": "model",
    "load_imagenet_init": "model",
    "ModelDescription": "weights",
    "ModelFileError": "weights",
    "LoadedModel": "weights",
    "save_model": "weights",
    "load_model": "weights",
    "create_random_model": "weights",
    "default_model_path": "weights",
    "load_bundled_model": "weights",
    "select_device": "device",
    "predict": "predictor",
    "PredictionResult": "predictor",
    "majority_vote": "predictor",
    "gradcam_slice": "gradcam",
    "gradcam_study": "gradcam",
    "CamResult": "gradcam",
    "overlay_rgb": "gradcam",
    "study_from_arrays": "arrays",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'app.inference' has no attribute {name!r}")
    return getattr(importlib.import_module(f"app.inference.{module}"), name)
