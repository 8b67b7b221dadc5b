"""Which device runs the model, how it and its batches get there, and how any GPU failure
becomes a CPU fallback with a reason — one place for prediction, Grad-CAM and the GUI jobs.

``auto`` picks CUDA only when it is present AND works: :func:`select_device` runs a tiny
operation on the GPU, because ``torch.cuda.is_available()`` is true on machines whose driver is
too old for the installed torch, whose GPU is busy or broken (RELIABILITY.md 30). Every choice
carries a human-readable reason that the predictor records with the prediction.

The GPU branch is testable without a GPU
-----------------------------------------
Code that runs only on CUDA used to be reachable only on a GPU, so CI never executed it (a
``channels_last`` conversion of the rank-5 batch broke every CUDA prediction unseen). Every
decision here asks :attr:`DeviceChoice.is_cuda` ("take the GPU branch"), and a choice built by
:func:`gpu_branch_on_cpu` takes that branch with the CPU as its device: the same placement,
memory-format and autocast operations then run in CI on real ``[N, P, 1, S, S]`` batches.

Fallback rules (:func:`run_batched`)
------------------------------------
On the GPU branch, out of memory halves the batch (down to 1); any other exception — a CUDA
error, out of memory at batch size 1, or anything unexpected that only the GPU branch raised —
moves the model to the CPU, records why and logs it, and the job goes on. On the CPU branch
every exception propagates: an error that also happens on the CPU is a real error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import torch
from torch import nn

from app.errors import InputError
from app.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)

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
    gpu_branch:
        Take the GPU code path although ``device`` is not CUDA (tests: see
        :func:`gpu_branch_on_cpu`). Never set by :func:`select_device`.
    """

    device: torch.device
    requested: str
    reason: str
    fallback: bool = False
    gpu_branch: bool = False

    @property
    def is_cuda(self) -> bool:
        """True when the GPU code path is taken (a CUDA device, or a test's stand-in)."""
        return self.device.type == "cuda" or self.gpu_branch


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
    """The CPU choice that replaces a GPU which failed ``during`` some work, with the reason.

    A CUDA failure is quoted as it is; any other exception on the GPU branch is named with its
    type, so that the record tells a driver problem from a bug that only the GPU path has.
    """
    what = _short(exc) if is_cuda_failure(exc) else f"{type(exc).__name__}: {_short(exc)}"
    return DeviceChoice(torch.device("cpu"), previous.requested,
                        f"CUDA failed during {during} ({what}); continued on the CPU",
                        fallback=True)


def gpu_branch_on_cpu(reason: str = "GPU branch on the CPU (test)") -> DeviceChoice:
    """A choice that takes the GPU code path with the CPU as device: lets CI execute the exact
    placement, memory-format and autocast operations of the CUDA branch."""
    return DeviceChoice(torch.device("cpu"), "cuda", reason, gpu_branch=True)


# ------------------------------------------------------------------------------- placement


class Placeable(Protocol):
    """What the helpers below need of a loaded model (``app.inference.weights.LoadedModel``;
    a protocol so that this module does not import the weights module, which imports it)."""

    device_choice: DeviceChoice

    @property
    def model(self) -> nn.Module: ...

    @property
    def lock(self) -> threading.RLock: ...


def place_model(loaded: Placeable, choice: DeviceChoice) -> None:
    """Put the model on ``choice``'s device, channels-last, and record the choice.

    Channels-last weights make oneDNN (CPU) and cuDNN (GPU) convolutions run in NHWC; the
    activations follow the weights' format from the first convolution on.
    """
    loaded.model.to(choice.device)
    loaded.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    loaded.device_choice = choice


def place_with_fallback(loaded: Placeable, choice: DeviceChoice) -> list[str]:
    """:func:`place_model`, and when moving to the GPU fails, the CPU instead.

    Returns the notes for the record (the chosen device's own fallback reason, if any, and the
    reason a failed move ended on the CPU).
    """
    notes: list[str] = []
    try:
        place_model(loaded, choice)
    except Exception as exc:
        if not choice.is_cuda:
            raise
        choice = cpu_fallback(choice, exc, "moving the model to the GPU")
        log.warning("%s", choice.reason)
        place_model(loaded, choice)
    if choice.fallback:
        notes.append(choice.reason)
    return notes


def batch_to_device(xb: torch.Tensor, choice: DeviceChoice) -> torch.Tensor:
    """A batch ``[N, P, 1, S, S]`` on ``choice``'s device.

    No memory-format conversion: ``channels_last`` exists only for rank-4 tensors (the cause of
    the CUDA prediction failure), and with one grey channel the NCHW and NHWC layouts of each
    ``[N·P, 1, S, S]`` view the network makes are the same bytes. The first convolution's
    channels-last weights put every later activation in NHWC on their own.
    """
    return xb.to(choice.device, non_blocking=choice.device.type == "cuda")


PRECISION_DTYPES: dict[str, torch.dtype | None] = {
    "fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16, "auto": torch.float16}
DTYPE_NAMES: dict[torch.dtype | None, str] = {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def autocast_dtype(precision: str, choice: DeviceChoice) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``choice``: float32 (None) on the CPU branch,
    where reduced precision is slower; float16 for ``auto`` on the GPU branch."""
    if not choice.is_cuda:
        return None
    if precision not in PRECISION_DTYPES:
        raise ValueError(f"precision must be one of {tuple(PRECISION_DTYPES)}, got {precision!r}")
    return PRECISION_DTYPES[precision]


def autocast(choice: DeviceChoice, dtype: torch.dtype | None) -> AbstractContextManager[object]:
    """Autocast to ``dtype`` on ``choice``'s device type (a no-op context for float32)."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(choice.device.type, dtype=dtype)


def on_gpu_or_cpu(choice: DeviceChoice, work: Callable[[torch.device | None], T], during: str
                  ) -> tuple[T, list[str]]:
    """``work(device)`` on ``choice``'s device when it takes the GPU branch, else ``work(None)``
    (the CPU); a failure on the GPU branch is retried on the CPU and the reason returned as a
    note (errors that also happen on the CPU propagate). For work before the network, such as
    preprocessing, that is worth doing on the GPU but must never cost the prediction."""
    if not choice.is_cuda:
        return work(None), []
    try:
        return work(choice.device), []
    except Exception as exc:
        note = cpu_fallback(choice, exc, during).reason.replace("continued on the CPU", "done on the CPU")
        log.warning("%s", note)
        return work(None), [note]


class DeviceInput:
    """Network input rows for :func:`run_batched` steps, wherever the model is now.

    The input may have been made on the GPU (:func:`on_gpu_or_cpu`). After a fallback the rows
    must come from the CPU, and the memory of a failed GPU may not be readable any more, so
    they are made again there by ``remake`` (once), not copied back.
    """

    def __init__(self, x: torch.Tensor, remake: Callable[[], torch.Tensor]) -> None:
        self.x = x
        self._remake = remake
        self._cpu: torch.Tensor | None = x if x.device.type == "cpu" else None

    def rows(self, start: int, stop: int, choice: DeviceChoice) -> torch.Tensor:
        """Rows ``start:stop`` on ``choice``'s device."""
        if choice.is_cuda:
            return batch_to_device(self.x[start:stop], choice)
        if self._cpu is None:
            self._cpu = self._remake()
        return self._cpu[start:stop]


# ------------------------------------------------------------------------- batched running

T = TypeVar("T")


@dataclass
class BatchedRun(Generic[T]):
    """What :func:`run_batched` produced: one output per batch, in order, and how it went.

    ``batch_size`` is the size in use at the end (smaller after GPU out-of-memory); ``notes``
    the fallbacks for the record; ``choice`` the device the last batch ran on.
    """

    outputs: list[T]
    batch_size: int
    choice: DeviceChoice
    notes: list[str] = field(default_factory=list)


def run_batched(
    loaded: Placeable,
    n: int,
    batch_size: int,
    step: Callable[[int, int, DeviceChoice], T],
    *,
    during: str,
    progress: Progress = NULL_PROGRESS,
) -> BatchedRun[T]:
    """Run ``step(start, stop, choice)`` over ``range(n)`` in batches, with the GPU fallback.

    ``step`` computes rows ``start:stop`` on ``choice`` (placing its batch with
    :func:`batch_to_device`) and returns its output. The model's lock is held during each
    step; cancellation (``progress.check()``) is checked before every batch and never turned
    into a fallback. See the module docstring for the rules.
    """
    bs = max(1, int(batch_size))
    outputs: list[T] = []
    notes: list[str] = []
    choice = loaded.device_choice
    i = 0
    progress.update(0.0, during)
    while i < n:
        progress.check()
        stop = min(n, i + bs)
        with loaded.lock:
            choice = loaded.device_choice
            try:
                out = step(i, stop, choice)
            except Exception as exc:
                if not choice.is_cuda:
                    raise
                if is_out_of_memory(exc) and bs > 1:
                    bs = max(1, bs // 2)
                    notes.append(f"GPU out of memory; batch size reduced to {bs}")
                    log.warning("GPU out of memory during %s; batch size reduced to %d", during, bs)
                    if torch.cuda.is_initialized():
                        torch.cuda.empty_cache()
                    continue
                cpu = cpu_fallback(choice, exc, during)
                log.warning("%s", cpu.reason, exc_info=not is_cuda_failure(exc))
                place_model(loaded, cpu)
                notes.append(cpu.reason)
                continue
        outputs.append(out)
        i = stop
        progress.update(i / n, f"{during}: {i}/{n} slices")
    return BatchedRun(outputs, bs, choice, notes)

