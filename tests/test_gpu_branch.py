"""The CUDA branch of prediction and Grad-CAM, executed on the CPU.

A :func:`app.inference.device.gpu_branch_on_cpu` choice takes every GPU-only step — batch
placement, the channels-last model, autocast to float16/bfloat16, the fallback rules — with the
CPU as device, so that CI runs the code a hospital GPU runs. The rank-5 batch
``[N, P, 1, S, S]`` that broke every CUDA prediction (``channels_last`` needs rank 4) is built by
the app's own preprocessing from an assembled study, and the model comes from a saved file
(BatchNorm folded, channels-last weights) like the bundled one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.inference.arrays import phantom_arrays, study_from_arrays
from app.inference.config import ModelConfig
from app.inference.device import (
    DeviceChoice,
    batch_to_device,
    gpu_branch_on_cpu,
    place_model,
    place_with_fallback,
    run_batched,
)
from app.inference.gradcam import gradcam_slice, gradcam_study
from app.inference.predictor import predict
from app.inference.preprocess import preprocess_study
from app.inference.weights import create_random_model, load_model

pytestmark = pytest.mark.usefixtures("torch_one_thread")
CFG = ModelConfig(backbone="resnet18", input_size=48, extra_channels=32, hidden=16)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("m") / "model.safetensors"
    create_random_model(path, CFG, seed=5)
    return path


@pytest.fixture()
def study():
    return study_from_arrays(phantom_arrays(6, 64, seed=4))


def _fresh(model_file) -> object:
    return load_model(model_file, "cpu")


def test_batch_placement_takes_rank_5_batches(study) -> None:
    """The exact operation that failed on CUDA, on a real preprocessed batch."""
    x = preprocess_study(study, CFG).x
    assert x.ndim == 5 and x.shape[1:3] == (3, 1)
    xb = batch_to_device(x, gpu_branch_on_cpu())
    assert xb.shape == x.shape and torch.equal(xb, x)


@pytest.mark.parametrize("precision", ["auto", "bf16", "fp32"])
def test_predict_on_the_gpu_branch_matches_the_cpu(model_file, study, precision: str) -> None:
    reference = predict(study, _fresh(model_file))
    loaded = _fresh(model_file)
    place_model(loaded, gpu_branch_on_cpu())
    res = predict(study, loaded, batch_size=4, precision=precision)
    assert not res.device_fallback, res.device_reason
    assert res.precision == {"auto": "fp16", "bf16": "bf16", "fp32": "fp32"}[precision]
    tol = 1e-5 if precision == "fp32" else 3e-2
    np.testing.assert_allclose([s.probability for s in res.slices],
                               [s.probability for s in reference.slices], atol=tol)
    # the model really ran channels-last on the GPU branch
    conv = next(m for m in loaded.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_gradcam_on_the_gpu_branch_matches_the_cpu(model_file, study) -> None:
    reference = gradcam_study(_fresh(model_file), study)
    loaded = _fresh(model_file)
    place_model(loaded, gpu_branch_on_cpu())
    cams = gradcam_study(loaded, study, batch_size=4)
    assert cams.warnings == []
    for phase in CFG.phases:
        np.testing.assert_allclose(cams.maps[phase], reference.maps[phase], atol=1e-4)
    one = gradcam_slice(loaded, study, 2, scale=cams.global_max)
    np.testing.assert_allclose(one.map_for("portal", 2), cams.map_for("portal", 2), atol=1e-4)


class _GpuOnlyBug(Exception):
    """An exception type no CUDA marker would recognise."""


def _break_gpu_branch(loaded, exc: Exception) -> None:
    """The network raises ``exc`` whenever the model is on the GPU branch."""
    real = loaded.model.forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        if loaded.device_choice.is_cuda:
            raise exc
        return real(x)

    loaded.model.forward = forward


def test_unexpected_error_on_the_gpu_branch_falls_back_for_predict(model_file, study) -> None:
    reference = predict(study, _fresh(model_file))
    loaded = _fresh(model_file)
    place_model(loaded, gpu_branch_on_cpu())
    _break_gpu_branch(loaded, _GpuOnlyBug("cudnn picked an unsupported algorithm"))
    res = predict(study, loaded)
    assert res.device == "cpu" and res.device_fallback
    assert "_GpuOnlyBug" in res.device_reason and "during predicting" in res.device_reason
    assert any("continued on the CPU" in w for w in res.warnings)
    assert [s.label for s in res.slices] == [s.label for s in reference.slices]


def test_unexpected_error_on_the_gpu_branch_falls_back_for_gradcam(model_file, study) -> None:
    reference = gradcam_study(_fresh(model_file), study)
    loaded = _fresh(model_file)
    place_model(loaded, gpu_branch_on_cpu())
    _break_gpu_branch(loaded, RuntimeError("required rank 4 tensor to use channels_last format"))
    cams = gradcam_study(loaded, study)
    assert cams.device == "cpu" and any("during Grad-CAM" in w for w in cams.warnings)
    np.testing.assert_allclose(cams.maps["arterial"], reference.maps["arterial"], atol=1e-5)


def test_errors_that_also_happen_on_the_cpu_propagate(model_file) -> None:
    loaded = _fresh(model_file)

    def step(start: int, stop: int, choice: DeviceChoice) -> int:
        raise ValueError("bad rows")  # the CPU would fail the same way

    with pytest.raises(ValueError, match="bad rows"):
        run_batched(loaded, 4, 2, step, during="testing")
    place_model(loaded, gpu_branch_on_cpu())
    with pytest.raises(ValueError, match="bad rows"):  # GPU branch → CPU → the same error
        run_batched(loaded, 4, 2, step, during="testing")
    assert loaded.device_choice.fallback and not loaded.device_choice.is_cuda


def test_out_of_memory_halves_the_batch_down_to_one(model_file) -> None:
    loaded = _fresh(model_file)
    place_model(loaded, gpu_branch_on_cpu())
    sizes: list[int] = []

    def step(start: int, stop: int, choice: DeviceChoice) -> int:
        sizes.append(stop - start)
        if choice.is_cuda and stop - start > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return stop - start

    run = run_batched(loaded, 5, 8, step, during="testing")
    assert sizes[:4] == [5, 4, 2, 1] and sum(run.outputs) == 5
    assert run.batch_size == 1 and run.choice.is_cuda and len(run.notes) == 3


def test_moving_the_model_to_a_failing_gpu_ends_on_the_cpu(model_file, monkeypatch) -> None:
    loaded = _fresh(model_file)
    real_to = loaded.model.to

    def to(*args, **kwargs):
        if args and isinstance(args[0], torch.device) and args[0].type == "cuda":
            raise torch.AcceleratorError("CUDA error: out of memory") if hasattr(torch, "AcceleratorError") \
                else RuntimeError("CUDA error: out of memory")
        return real_to(*args, **kwargs)

    monkeypatch.setattr(loaded.model, "to", to)
    notes = place_with_fallback(loaded, DeviceChoice(torch.device("cuda"), "cuda", "a GPU"))
    assert loaded.device_choice.device.type == "cpu" and loaded.device_choice.fallback
    assert notes and "moving the model to the GPU" in notes[0]


def test_preparation_failing_on_the_gpu_is_done_on_the_cpu(model_file, study, monkeypatch) -> None:
    """Preprocessing runs on the GPU branch's device; when it fails there the prediction is
    still made, the slices prepared on the CPU, and the record says so."""
    from app.inference import preprocess as preprocess_mod

    reference = predict(study, _fresh(model_file))
    loaded = _fresh(model_file)
    place_model(loaded, gpu_branch_on_cpu())
    real = preprocess_mod._owned_tensor

    def owned(a, device):
        if device is not None:
            raise RuntimeError("CUDA error: out of memory")
        return real(a, device)

    monkeypatch.setattr(preprocess_mod, "_owned_tensor", owned)
    res = predict(study, loaded, precision="fp32")
    assert any("during preparing slices" in w and "done on the CPU" in w for w in res.warnings)
    assert not res.device_fallback  # the network itself still ran on the GPU branch
    np.testing.assert_allclose([s.probability for s in res.slices],
                               [s.probability for s in reference.slices], atol=1e-5)


def test_input_made_on_a_gpu_is_remade_on_the_cpu_after_a_fallback() -> None:
    """Rows are never copied back from a device that failed: the CPU input is made anew."""
    from app.inference.device import DeviceInput, select_device

    made = []

    def remake() -> torch.Tensor:
        made.append(1)
        return torch.arange(4.0).reshape(4, 1)

    # a "meta" tensor stands for the memory of a failed GPU: any copy out of it raises
    source = DeviceInput(torch.empty(4, 1, device="meta"), remake)
    cpu = select_device("cpu")
    assert source.rows(1, 3, cpu).tolist() == [[1.0], [2.0]]
    assert source.rows(3, 4, cpu).tolist() == [[3.0]] and made == [1]
