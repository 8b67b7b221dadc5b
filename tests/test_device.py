"""Device choice: a GPU is used only when it actually works; every fallback says why."""

from __future__ import annotations

import pytest
import torch

from app.errors import InputError
from app.inference import device as device_mod
from app.inference.device import cpu_fallback, is_cuda_failure, is_out_of_memory, select_device


def test_cpu_requested() -> None:
    c = select_device("cpu")
    assert c.device == torch.device("cpu") and not c.fallback and c.reason == "CPU requested"


def test_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    auto = select_device("auto")
    assert auto.device.type == "cpu" and not auto.fallback and "no CUDA GPU" in auto.reason
    forced = select_device("cuda")
    assert forced.device.type == "cpu" and forced.fallback and "requested" in forced.reason


def test_cuda_reported_but_failing_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def broken(device: torch.device) -> str:
        raise RuntimeError("CUDA error: no kernel image is available for execution on the device")

    monkeypatch.setattr(device_mod, "cuda_probe", broken)
    for request in ("auto", "cuda", "cuda:0"):
        c = select_device(request)
        assert c.device.type == "cpu" and c.fallback
        assert "not working" in c.reason and "no kernel image" in c.reason


def test_real_probe_fails_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """is_available lies (driver present, no usable device): the probe's real CUDA op fails."""
    if torch.cuda.is_available():
        pytest.skip("a working GPU is present")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    c = select_device("auto")
    assert c.device.type == "cpu" and c.fallback and "not working" in c.reason


def test_working_gpu_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(device_mod, "cuda_probe", lambda device: "Test GPU 80GB")
    c = select_device("auto")
    assert c.device == torch.device("cuda") and c.is_cuda and not c.fallback
    assert c.reason == "CUDA GPU Test GPU 80GB"
    assert select_device("cuda:1").device == torch.device("cuda:1")


def test_unknown_device_is_refused() -> None:
    with pytest.raises(InputError, match="unknown device"):
        select_device("tpu")


def test_failure_classification() -> None:
    assert is_cuda_failure(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert is_cuda_failure(RuntimeError("CUDA driver version is insufficient for CUDA runtime version"))
    assert is_cuda_failure(AssertionError("Torch not compiled with CUDA enabled"))
    assert not is_cuda_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_cuda_failure(ValueError("cuda"))  # a bug in our code is not a GPU failure
    assert not is_out_of_memory(RuntimeError("CUDA error: an illegal memory access"))
    prev = select_device("cpu")
    fb = cpu_fallback(prev, RuntimeError("CUDA error: unspecified launch failure"), "prediction")
    assert fb.fallback and fb.device.type == "cpu" and "during prediction" in fb.reason
