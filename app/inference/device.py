"""Which device runs the model, and how a GPU failure becomes a CPU fallback with a reason.

``auto`` picks CUDA only when it is present AND works: :func:`select_device` runs a tiny
operation on the GPU, because ``torch.cuda.is_available()`` is true on machines whose driver is
too old for the installed torch, whose GPU is busy or broken (RELIABILITY.md 30). Every choice
carries a human-readable reason that the predictor records with the prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from app.errors import InputError

DEVICE_REQUESTS: tuple[str, ...] = ("auto", "cpu", "cuda")

# fragments of error messages that identify a CUDA runtime/driver failure (as opposed to a bug)
_CUDA_MARKERS = (
    "cuda", "cudnn", "cublas", "cufft", "curand", "cusolver", "nvrtc", "nccl", "driver",
    "device-side", "out of memory", "no kernel image", "not compiled with cuda",
)


@dataclass(frozen=True)
class DeviceChoice:
    """The device to run on and why it was chosen.

    Attributes
    ----------
    device:
        The torch device.
    requested:
        What the caller asked for (``auto``, ``cpu``, ``cuda`` or ``cuda:N``).
    reason:
        One line for the record: the GPU's name, or why the CPU is used.
    fallback:
        True when the CPU is used although a GPU was asked for (or ``auto`` found a broken one).
    """

    device: torch.device
    requested: str
    reason: str
    fallback: bool = False

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"


def cuda_probe(device: torch.device) -> str:
    """Run a tiny computation on ``device`` and return the GPU's name; raises when CUDA fails.

    A real kernel launch plus a copy back catches drivers that load but cannot run kernels
    (architecture not supported by the build, driver mismatch, a GPU in an error state).
    """
    x = torch.arange(8, dtype=torch.float32, device=device)
    value = float((x * 2.0).sum().item())
    if value != 56.0:
        raise RuntimeError(f"CUDA self-check computed {value}, expected 56.0")
    return str(torch.cuda.get_device_name(device))


def is_cuda_failure(exc: BaseException) -> bool:
    """True for errors that mean "the GPU cannot do this" (out of memory, driver, launch
    failure, torch built without CUDA), for which falling back to the CPU is the right answer."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    if isinstance(exc, (RuntimeError, AssertionError, OSError)):
        text = str(exc).lower()
        return any(marker in text for marker in _CUDA_MARKERS)
    return False


def is_out_of_memory(exc: BaseException) -> bool:
    """True for GPU out-of-memory errors (smaller batches may still fit)."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def select_device(request: str | torch.device = "auto") -> DeviceChoice:
    """Choose the device for inference.

    Parameters
    ----------
    request:
        ``"auto"`` (a working GPU, else the CPU), ``"cpu"``, ``"cuda"`` / ``"cuda:N"`` (the GPU;
        when it does not work the CPU is used and the reason says so — the prediction is still
        made, as RELIABILITY.md 30 asks), or a ``torch.device``.

    Returns
    -------
    DeviceChoice
        The device with the reason for the record.

    Raises
    ------
    InputError
        For a request that names no known device kind.
    """
    requested = str(request)
    kind = requested.split(":", 1)[0]
    if kind not in DEVICE_REQUESTS:
        raise InputError(f"unknown device {requested!r}; use auto, cpu or cuda")
    cpu = torch.device("cpu")
    if kind == "cpu":
        return DeviceChoice(cpu, requested, "CPU requested")
    if not torch.cuda.is_available():
        if kind == "auto":
            return DeviceChoice(cpu, requested, "no CUDA GPU available; using the CPU")
        return DeviceChoice(cpu, requested, "CUDA requested but no CUDA GPU is available; using the CPU",
                            fallback=True)
    device = torch.device(requested if kind == "cuda" else "cuda")
    try:
        name = cuda_probe(device)
    except Exception as exc:  # noqa: BLE001 - any failure of the probe means "GPU unusable"
        return DeviceChoice(cpu, requested, f"CUDA GPU present but not working ({_short(exc)}); "
                                            "using the CPU", fallback=True)
    return DeviceChoice(device, requested, f"CUDA GPU {name}")


def cpu_fallback(previous: DeviceChoice, exc: BaseException, during: str) -> DeviceChoice:
    """The CPU choice that replaces a GPU which failed ``during`` some work, with the reason."""
    return DeviceChoice(torch.device("cpu"), previous.requested,
                        f"CUDA failed during {during} ({_short(exc)}); continued on the CPU",
                        fallback=True)
