"""The training loop: the paper's recipe, early stopping, checkpoints, AMP, DDP.

``train(config, data, progress) -> TrainResult`` trains one multi-pathway model on in-memory
slice triplets (:class:`app.training.dataset.SplitData`).

Recipe defaults (Liao et al. 2024): Adam, batch 20, learning rate 1e-4 halved every 50 epochs,
at most 13,000 iterations, early stopping on the validation loss, augmentation with noise, blur,
brightness/contrast and rotation ±20° (:mod:`app.training.augment`), softmax cross-entropy over
{non-responder, responder}; every slice triplet is a sample carrying its patient's label.

Engineering around it:

* **Deterministic with a seed**: model initialisation, the epoch order (a permutation drawn from
  ``seed + epoch``), and augmentation (its own ``torch.Generator``) all derive from
  ``config.seed``; cuDNN runs in deterministic mode.
* **Data path**: the slice set is one float16 tensor; on CUDA it is moved to the GPU once when
  it fits (else pinned and copied per batch without blocking), augmentation runs on the device
  in one batched call, so the GPU does not wait for a loader. ``bench/train_throughput.py``
  measures it against bare forward/backward/step.
* **Mixed precision and channels-last on CUDA** (bfloat16 autocast where supported, else float16
  with a gradient scaler); CPU runs in float32.
* **Data-parallel under torchrun**: when ``WORLD_SIZE`` > 1 in the environment (set by
  ``torchrun``), the process group is initialised (NCCL on CUDA, gloo on CPU), the model is
  wrapped in ``DistributedDataParallel``, each rank takes its shard of every epoch (the same
  permutation on every rank, sharded like ``DistributedSampler``), ``batch_size`` stays the
  GLOBAL batch (split over the ranks, so the recipe does not change with the number of GPUs),
  validation is sharded and gathered, BatchNorm buffers are broadcast from rank 0 before every
  validation, and only rank 0 writes checkpoints. Every rank takes the same early-stopping
  decision because every rank sees the same gathered validation result.
* **Resumable**: at the end of every ``checkpoint_every`` epochs, rank 0 writes
  ``<checkpoint>.safetensors`` (model, optimizer, best model, RNG states) and
  ``<checkpoint>.json`` (epoch, iteration, history, best epoch, configuration) — tensors and
  JSON only, never pickle. ``resume=`` continues at the next epoch with identical results.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from app.errors import HCCError, InputError
from app.inference.config import ModelConfig
from app.progress import NULL_PROGRESS, Progress
from app.training import checkpoint as ckpt
from app.training.augment import AugmentConfig, augment_batch
from app.training.cohort import phase_indices
from app.training.dataset import SliceSet, SplitData
from app.training.lesion_loss import lesion_loss
from app.training.phantom_init import INIT_CHOICES, load_phantom_init
from app.training.scoring import SliceScores, amp_dtype, predict_scores, val_metrics

log = logging.getLogger(__name__)

EARLY_STOP_METRICS: tuple[str, ...] = ("loss", "accuracy", "auc")


class TrainError(HCCError):
    """Training could not run (e.g. a damaged checkpoint, a diverged loss)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (written into the model description).

    Attributes
    ----------
    model:
        Architecture and preprocessing (:class:`app.inference.config.ModelConfig`).
    max_iterations:
        Upper bound on optimizer steps (paper: 13,000).
    max_epochs:
        Optional upper bound on epochs (None: only the iteration bound).
    max_minutes:
        Optional wall-clock budget of the training loop (preparation not counted): no epoch is
        started that would, at the pace of the last one, end after it. Stopping at an epoch's
        end keeps model selection on validated epochs; the stop is recorded as "time budget".
    batch_size:
        Global batch of slice triplets (paper: 20); split across ranks under DDP.
    lr, lr_halve_every_epochs:
        Adam learning rate (paper 1e-4) and its halving period in epochs (paper 50).
    weight_decay:
        Adam weight decay (paper: none stated, 0).
    early_stop_on, patience_epochs, min_epochs:
        Validation metric for early stopping and model selection (``loss`` = slice-level
        cross-entropy, the paper's; ``accuracy`` = slice-level; ``auc`` = patient-level AUC of
        the mean probability), epochs without improvement before stopping, and epochs that
        always run.
    class_weighting:
        Weight the loss by inverse class frequency (off in the paper; responders are ~28 %).
    augment:
        Augmentation ranges (:class:`AugmentConfig`).
    device:
        ``auto`` (CUDA if available), ``cpu``, ``cuda`` or ``cuda:N``.
    amp, channels_last:
        Mixed precision and channels-last memory format; only effective on CUDA.
    seed:
        Seed of initialisation, epoch order and augmentation.
    checkpoint_every:
        Write a checkpoint every this many epochs (when a checkpoint path is given).
    eval_batch_size:
        Batch size of validation forward passes.
    slices_per_patient:
        None (paper): an epoch is every training triplet once. k: an epoch draws k triplets per
        patient afresh (seeded), so that a short budget sees every patient often instead of
        every slice of few patients — neighbouring slices are nearly redundant.
    val_slices_per_patient:
        None: validate on every triplet. k: on k evenly spaced triplets per patient (fixed),
        which cuts the validation cost on slow hardware.
    soft_target_column:
        Name of the cohort CSV's probability column to train towards (``SliceSet.target``,
        a probability of response per patient), with cross-entropy against ``[1 - t, t]``
        instead of the 0/1 label (not in the paper); None: the 0/1 label. Validation and model
        selection still use the 0/1 label. The name travels with the recipe into checkpoints
        and the model description.
    seg_weight:
        Weight of the segmentation loss of a lesion-head model (:mod:`app.training.lesion_loss`);
        unused by the paper's head.
    init:
        ``random`` (torchvision's initialisation) or ``phantom``: trunk and extra layers from the
        shipped demo model (:mod:`app.training.phantom_init`).
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    max_iterations: int = 13000
    max_epochs: int | None = None
    max_minutes: float | None = None
    batch_size: int = 20
    lr: float = 1e-4
    lr_halve_every_epochs: int = 50
    weight_decay: float = 0.0
    early_stop_on: str = "loss"
    patience_epochs: int = 20
    min_epochs: int = 1
    class_weighting: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    seed: int = 0
    checkpoint_every: int = 1
    eval_batch_size: int = 64
    slices_per_patient: int | None = None
    val_slices_per_patient: int | None = None
    soft_target_column: str | None = None
    seg_weight: float = 1.0
    init: str = "random"

    @property
    def soft_targets(self) -> bool:
        """True when training towards a probability column instead of the 0/1 label."""
        return self.soft_target_column is not None

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise InputError("batch size must be at least 2 (BatchNorm needs two samples)")
        if self.max_iterations < 1:
            raise InputError("max_iterations must be at least 1")
        if self.max_epochs is not None and self.max_epochs < 1:
            raise InputError("max_epochs must be at least 1")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise InputError("the time budget must be a positive number of minutes")
        if self.lr <= 0:
            raise InputError("learning rate must be positive")
        if self.init not in INIT_CHOICES:
            raise InputError(f"init must be one of {', '.join(INIT_CHOICES)}, not {self.init!r}")
        if self.early_stop_on not in EARLY_STOP_METRICS:
            raise InputError(f"early_stop_on must be one of {', '.join(EARLY_STOP_METRICS)}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        d["augment"] = self.augment.as_dict()
        return d


@dataclass
class EpochRecord:
    """Metrics of one epoch (validation fields are None without a validation set)."""

    epoch: int
    iteration: int
    lr: float
    train_loss: float
    train_accuracy: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    val_patient_auc: float | None = None
    val_patient_accuracy: float | None = None
    seconds: float = 0.0


@dataclass
class TrainResult:
    """What :func:`train` returns (on every rank; only rank 0 should write files).

    ``model`` is the unwrapped network on CPU in eval mode with the weights of ``best_epoch``.
    """

    model: nn.Module
    config: TrainConfig
    history: list[EpochRecord]
    best_epoch: int
    best_metric: float | None
    iterations: int
    stopped: str
    seconds: float
    device: str
    world_size: int
    rank: int
    data_summary: dict[str, Any]
    triplets_per_second: float

    def summary(self) -> dict[str, Any]:
        best = next((h for h in self.history if h.epoch == self.best_epoch), None)
        return {"best_epoch": self.best_epoch, "best_metric": self.best_metric,
                "early_stop_on": self.config.early_stop_on,
                "epochs_run": len(self.history), "iterations": self.iterations,
                "stopped": self.stopped, "seconds": round(self.seconds, 1),
                "device": self.device, "world_size": self.world_size,
                "triplets_per_second": round(self.triplets_per_second, 2),
                "best_epoch_metrics": asdict(best) if best else None}


# --------------------------------------------------------------------------------------------
# devices and distributed set-up


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; refuse CUDA when there is none."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("CUDA was asked for but no CUDA device is available")
    return dev


@dataclass
class _Dist:
    world: int = 1
    rank: int = 0
    local_rank: int = 0
    owns_group: bool = False

    @property
    def active(self) -> bool:
        return self.world > 1


def _init_distributed(device_name: str) -> tuple[_Dist, torch.device]:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1), pick the device."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist(), resolve_device(device_name)
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    dev = resolve_device(device_name)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        owns = True
    return _Dist(dist.get_world_size(), dist.get_rank(), local, owns), dev


# --------------------------------------------------------------------------------------------
# the loop


def _set_determinism(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def _epoch_indices(group: torch.Tensor, seed: int, epoch: int, dist_: _Dist,
                   per_patient: int | None) -> torch.Tensor:
    """This rank's shard of the epoch's permutation (same permutation on every rank).

    With ``per_patient`` = k, the epoch holds k randomly chosen triplets of every patient.
    """
    g = torch.Generator().manual_seed(seed * 100003 + epoch)
    n = int(group.numel())
    if per_patient is None:
        perm = torch.randperm(n, generator=g)
    else:
        keys = torch.rand(n, generator=g)
        # rank each slice within its patient by a random key; keep the first k of each patient
        order = torch.argsort(group.double() * 2.0 + keys.double())
        grp_sorted = group[order]
        first = torch.searchsorted(grp_sorted, grp_sorted, right=False)
        within = torch.arange(n) - first
        chosen = order[within < per_patient]
        perm = chosen[torch.randperm(chosen.numel(), generator=g)]
        n = int(perm.numel())
    if dist_.active:
        # pad to a multiple of the world size like DistributedSampler, then stride
        total = int(math.ceil(n / dist_.world)) * dist_.world
        perm = torch.cat([perm, perm[: total - n]])
        perm = perm[dist_.rank::dist_.world]
    return perm


def subsample_evenly(vs: SliceSet, k: int) -> SliceSet:
    """The same set with at most ``k`` evenly spaced triplets per patient (deterministic)."""
    keep: list[int] = []
    g = vs.group.numpy()
    for pi in range(vs.n_patients):
        idx = np.flatnonzero(g == pi)
        if idx.size > k:
            idx = idx[np.round(np.linspace(0, idx.size - 1, k)).astype(int)]
        keep.extend(idx.tolist())
    sel = torch.tensor(keep, dtype=torch.int64)
    return SliceSet(vs.x.index_select(0, sel), vs.y.index_select(0, sel),
                    vs.group.index_select(0, sel), vs.patient_ids, vs.patient_labels,
                    vs.target.index_select(0, sel) if vs.target is not None else None,
                    vs.seg.index_select(0, sel) if vs.seg is not None else None)


def _better(metric: str, new: float, best: float | None) -> bool:
    if not math.isfinite(new):
        return False
    if best is None:
        return True
    return new < best - 1e-6 if metric == "loss" else new > best + 1e-6


def train(config: TrainConfig, data: SplitData, progress: Progress = NULL_PROGRESS, *,
          checkpoint: str | Path | None = None, resume: str | Path | None = None
          ) -> TrainResult:
    """Train a multi-pathway model on slice triplets.

    Parameters
    ----------
    config:
        The recipe (:class:`TrainConfig`).
    data:
        Training and (optional) validation slice sets, split by patient.
    progress:
        Receives ``(fraction of max iterations, "epoch e · it i/N · loss · ETA")``; cancelling
        stops after the current batch with :class:`app.errors.Cancelled` (the last checkpoint
        stays usable for ``resume``).
    checkpoint:
        Where to write the checkpoint (rank 0 only); None: no checkpoints.
    resume:
        A checkpoint to continue from; its model configuration must equal ``config.model``.

    Returns
    -------
    TrainResult
        The model of the best validation epoch (the last epoch without validation).
    """
    from app.inference.model import build_model

    t0 = time.monotonic()
    dist_, device = _init_distributed(config.device)
    try:
        return _train(config, data, progress, dist_, device, t0, build_model,
                      Path(checkpoint) if checkpoint else None, Path(resume) if resume else None)
    finally:
        if dist_.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()


@dataclass
class _TrainState:
    """Everything a checkpoint holds and ``resume`` restores.

    The weights, the optimizer, the augmentation generator, the history and the model-selection
    bookkeeping travel together, so that a resumed run continues exactly where the straight run
    would be (the resume test compares weights bit for bit).
    """

    model: nn.Module
    opt: torch.optim.Optimizer
    gen: torch.Generator
    history: list[EpochRecord] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    best_metric: float | None = None
    best_epoch: int = 0
    epoch: int = 0  # the last finished epoch
    iteration: int = 0
    since_best: int = 0

    def restore(self, path: Path, config: TrainConfig, device: torch.device) -> None:
        """Continue from the checkpoint at ``path`` (same model configuration only)."""
        tensors, meta = ckpt.load_checkpoint(path)
        if meta.get("model_config") != config.model.to_dict():
            raise ckpt.CheckpointError("the checkpoint was made with another model configuration")
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items()
                                    if k.startswith("model.")})
        self.best_state = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
        ckpt.restore_optimizer(self.opt, tensors, meta["optimizer_param_groups"], device)
        torch.set_rng_state(tensors["rng.torch"])
        self.gen.set_state(tensors["rng.augment"])
        self.history = [EpochRecord(**h) for h in meta["history"]]
        self.best_metric = meta["best_metric"]
        self.best_epoch = int(meta["best_epoch"])
        self.epoch = int(meta["epoch"])
        self.iteration = int(meta["iteration"])
        self.since_best = int(meta["since_best"])

    def save(self, path: Path, config: TrainConfig) -> None:
        ckpt.save_checkpoint(path, self.model, self.opt, self.best_state, self.gen, {
            "epoch": self.epoch, "iteration": self.iteration, "best_metric": self.best_metric,
            "best_epoch": self.best_epoch, "since_best": self.since_best,
            "history": [asdict(h) for h in self.history],
            "model_config": config.model.to_dict(), "train_config": config.to_dict()})

    def select(self, metric_name: str, metric: float) -> None:
        """Keep the current weights when ``metric`` beats the best validated epoch so far."""
        if _better(metric_name, metric, self.best_metric):
            self.best_metric, self.best_epoch, self.since_best = metric, self.epoch, 0
            self.best_state = {k: v.detach().cpu().clone()
                               for k, v in self.model.state_dict().items()}
        else:
            self.since_best += 1

    def final_model(self) -> nn.Module:
        """A CPU copy in eval mode with the weights of the best epoch."""
        final = copy.deepcopy(self.model).cpu()
        if self.best_state is not None:
            final.load_state_dict(self.best_state)
        final.eval()
        return final


@dataclass
class _Batches:
    """The training tensors where the loop reads them, and the fixed shape of an epoch."""

    x: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor | None  # soft targets, per triplet
    seg: torch.Tensor | None  # ground-truth segmentation, per triplet (lesion head)
    group: torch.Tensor
    phase_idx: torch.Tensor
    class_weights: torch.Tensor | None
    per_rank_batch: int
    steps_per_epoch: int

    @classmethod
    def place(cls, config: TrainConfig, tr: SliceSet, device: torch.device, dist_: _Dist
              ) -> _Batches:
        """Keep the training tensor on the GPU when it fits comfortably; else pinned memory."""
        x = tr.x
        if device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(device)
            x = x.to(device) if x.numel() * x.element_size() < 0.3 * free else x.pin_memory()
        target: torch.Tensor | None = None
        if config.soft_targets:
            if tr.target is None:
                raise InputError("soft targets were asked for but the training set has none")
            target = tr.target.to(device)
        seg: torch.Tensor | None = None
        if config.model.head == "lesion":
            if tr.seg is None:
                raise InputError("the lesion head learns from label maps, and some training "
                                 "studies have none (write them with demo-data --label-maps)")
            if config.augment.enabled and tuple(config.augment.rotation_deg) != (0.0, 0.0):
                raise InputError("the lesion head is trained without rotation (the label maps "
                                 "would not follow it): use --no-augment")
            seg = tr.seg.to(x.device)
        weights = None
        if config.class_weighting:
            counts = torch.bincount(tr.y, minlength=2).float()
            weights = (counts.sum() / (2.0 * counts.clamp_min(1.0))).to(device)
        per_rank = max(2, config.batch_size // dist_.world)
        n_tr = len(tr)
        if config.slices_per_patient is not None:
            counts = torch.bincount(tr.group, minlength=tr.n_patients)
            n_tr = int(counts.clamp(max=config.slices_per_patient).sum())
        steps = max(1, (int(math.ceil(n_tr / dist_.world))) // per_rank)
        return cls(x, tr.y.to(device), target, seg, tr.group,
                   torch.tensor(phase_indices(config.model.phases), device=x.device), weights,
                   per_rank, steps)


@dataclass
class _Loop:
    """The fixed circumstances of one training run, shared by its epochs."""

    config: TrainConfig
    dist_: _Dist
    device: torch.device
    t0: float
    max_epochs: int
    total_iters: int
    use_amp: bool
    amp_dtype: torch.dtype
    scaler: torch.amp.GradScaler

    def lr_at(self, epoch: int) -> float:
        """The paper's schedule: halved every ``lr_halve_every_epochs`` epochs."""
        c = self.config
        return c.lr * 0.5 ** ((epoch - 1) // max(c.lr_halve_every_epochs, 1))


def _train(config: TrainConfig, data: SplitData, progress: Progress, dist_: _Dist,
           device: torch.device, t0: float, build_model: Any, ckpt_path: Path | None,
           resume: Path | None) -> TrainResult:
    """Set up, then run epochs until an iteration, epoch, patience or time bound stops it."""
    import torch.distributed as dist

    _set_determinism(config.seed)
    cuda = device.type == "cuda"
    model: nn.Module = build_model(config.model)
    if config.init == "phantom" and resume is None:
        log.info("%s", load_phantom_init(model).describe())  # type: ignore[arg-type]
    model = model.to(device)
    if cuda and config.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    tr = data.train
    if tr.x.shape[-1] != config.model.input_size:
        raise InputError(f"prepared slices are {tr.x.shape[-1]} px but the model expects "
                         f"{config.model.input_size} px (prepare the cohort with the same "
                         "input size)")
    batches = _Batches.place(config, tr, device, dist_)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator(device=device).manual_seed(config.seed * 7919 + 17 + dist_.rank)
    use_amp = cuda and config.amp
    dtype_amp = amp_dtype(device)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and dtype_amp == torch.float16)
    state = _TrainState(model, opt, gen)
    if resume is not None:
        state.restore(resume, config, device)

    ddp_model = model
    if dist_.active:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ddp_model = DDP(model, device_ids=[device.index] if cuda else None)
    if data.val is not None and config.val_slices_per_patient is not None:
        data = SplitData(data.train, subsample_evenly(data.val, config.val_slices_per_patient),
                         data.how)
    max_epochs_by_it = int(math.ceil(config.max_iterations / batches.steps_per_epoch))
    max_epochs = min(max_epochs_by_it, config.max_epochs or max_epochs_by_it)
    loop = _Loop(config, dist_, device, t0, max_epochs,
                 min(config.max_iterations, max_epochs * batches.steps_per_epoch),
                 use_amp, dtype_amp, scaler)

    stopped = "max_epochs" if config.max_epochs and max_epochs == config.max_epochs \
        else "max_iterations"
    seen_triplets = 0
    t_train = 0.0
    for epoch in range(state.epoch + 1, max_epochs + 1):
        if state.iteration >= config.max_iterations:
            stopped = "max_iterations"
            break
        te = time.monotonic()
        ran = _run_epoch(loop, state, ddp_model, batches, epoch, progress)
        if ran is None:
            break
        rec, n_seen = ran
        seen_triplets += n_seen * dist_.world
        t_train += time.monotonic() - te
        state.epoch = epoch
        if data.val is not None:
            _validate(loop, state, data.val, rec)
        else:
            state.best_epoch = epoch
        rec.seconds = time.monotonic() - te
        state.history.append(rec)
        log.info("epoch %d: %s", epoch, rec)

        if ckpt_path is not None and dist_.rank == 0 and (
                epoch % max(config.checkpoint_every, 1) == 0 or epoch == max_epochs):
            state.save(ckpt_path, config)
        if dist_.active:
            dist.barrier()
        if data.val is not None and epoch >= config.min_epochs and \
                state.since_best >= config.patience_epochs:
            stopped = f"early stop: no better validation {config.early_stop_on} for " \
                      f"{config.patience_epochs} epochs"
            break
        if epoch < max_epochs and _out_of_time(config.max_minutes, t0, rec.seconds, dist_, device):
            stopped = f"time budget of {config.max_minutes:g} min"
            break
    progress.update(1.0, f"trained {state.iteration} iterations")

    return TrainResult(
        model=state.final_model(), config=config, history=state.history,
        best_epoch=state.best_epoch, best_metric=state.best_metric, iterations=state.iteration,
        stopped=stopped, seconds=time.monotonic() - t0, device=str(device),
        world_size=dist_.world, rank=dist_.rank, data_summary=data.summary(),
        triplets_per_second=seen_triplets / t_train if t_train > 0 else 0.0)


def _run_epoch(loop: _Loop, state: _TrainState, ddp_model: nn.Module, batches: _Batches,
               epoch: int, progress: Progress) -> tuple[EpochRecord, int] | None:
    """One pass over this rank's shard of the epoch: the record (training loss and accuracy,
    gathered over the ranks) and the triplets this rank saw; None when no step ran.

    Raises :class:`TrainError` when the loss is no longer finite.
    """
    config, device, b = loop.config, loop.device, batches
    for gparam in state.opt.param_groups:
        gparam["lr"] = loop.lr_at(epoch)
    ddp_model.train()
    order = _epoch_indices(b.group, config.seed, epoch, loop.dist_, config.slices_per_patient)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    n_seen = 0
    for s in range(b.steps_per_epoch):
        if state.iteration >= config.max_iterations:
            break
        progress.check()
        idx = order[s * b.per_rank_batch:(s + 1) * b.per_rank_batch]
        xb = b.x.index_select(0, idx.to(b.x.device)).index_select(1, b.phase_idx)
        xb = xb.to(device, non_blocking=True).float().unsqueeze(2)
        yb = b.y.index_select(0, idx.to(b.y.device))
        target: torch.Tensor = yb
        if b.target is not None:
            tb = b.target.index_select(0, idx.to(b.target.device))
            target = torch.stack([1.0 - tb, tb], 1)  # class probabilities
        xb = augment_batch(xb, state.gen, config.augment)
        with torch.autocast(device_type=device.type, dtype=loop.amp_dtype, enabled=loop.use_amp):
            if b.seg is not None:
                sb = b.seg.index_select(0, idx.to(b.seg.device)).index_select(1, b.phase_idx.to(b.seg.device))
                out = ddp_model(xb, details=True)
                logits = out.logits
                loss = lesion_loss(out, target, sb.to(device, non_blocking=True), b.class_weights,
                                   config.seg_weight)
            else:
                logits = ddp_model(xb)
                loss = F.cross_entropy(logits.float(), target, weight=b.class_weights)
        state.opt.zero_grad(set_to_none=True)
        loop.scaler.scale(loss).backward()
        loop.scaler.step(state.opt)
        loop.scaler.update()
        state.iteration += 1
        loss_sum += loss.detach() * yb.numel()
        correct += (logits.detach().argmax(1) == yb).sum()
        n_seen += yb.numel()
        if state.iteration % 5 == 0 or s == b.steps_per_epoch - 1:
            el = time.monotonic() - loop.t0
            done = state.iteration / max(loop.total_iters, 1)
            eta = el / max(done, 1e-9) * (1 - done) if done > 0 else 0.0
            progress.update(done, f"epoch {epoch} it {state.iteration}/{loop.total_iters} "
                                  f"loss {loss.item():.3f} ETA {eta / 60:.0f} min")
    if n_seen == 0:
        return None
    tr_loss = float(loss_sum) / n_seen
    tr_acc = float(correct) / n_seen
    if loop.dist_.active:
        import torch.distributed as dist

        red = torch.tensor([tr_loss * n_seen, tr_acc * n_seen, n_seen], dtype=torch.float64)
        dist.all_reduce(red)
        tr_loss, tr_acc = float(red[0] / red[2]), float(red[1] / red[2])
    if not math.isfinite(tr_loss):
        raise TrainError(f"the training loss diverged (epoch {epoch}); lower the learning rate")
    return EpochRecord(epoch, state.iteration, loop.lr_at(epoch), tr_loss, tr_acc), n_seen


def _validate(loop: _Loop, state: _TrainState, val: SliceSet, rec: EpochRecord) -> None:
    """Fill the validation fields of ``rec`` and let the state keep the best epoch.

    Under DDP the BatchNorm buffers are broadcast from rank 0 first, so that every rank
    validates the same network and takes the same early-stopping decision.
    """
    if loop.dist_.active:
        import torch.distributed as dist

        for buf in state.model.buffers():
            dist.broadcast(buf, src=0)
    probs, areas = _sharded_predict(state.model, val, phase_indices(loop.config.model.phases), loop.device,
                                    loop.config, loop.dist_)
    vm = val_metrics(probs, val, areas, loop.config.model.aggregation)
    rec.val_loss, rec.val_accuracy = vm["loss"], vm["accuracy"]
    rec.val_patient_auc, rec.val_patient_accuracy = vm["auc"], vm["patient_accuracy"]
    state.select(loop.config.early_stop_on, vm[loop.config.early_stop_on])


def _out_of_time(max_minutes: float | None, t0: float, epoch_seconds: float, dist_: _Dist,
                 device: torch.device) -> bool:
    """True when another epoch as long as the last one would end after the time budget.

    Under DDP rank 0's clock decides for all ranks, so that every rank stops at the same epoch.
    """
    if max_minutes is None:
        return False
    late = time.monotonic() - t0 + epoch_seconds > 60.0 * max_minutes
    if dist_.active:
        import torch.distributed as dist

        flag = torch.tensor([1.0 if late else 0.0], device=device)  # NCCL needs it on the GPU
        dist.broadcast(flag, src=0)
        late = bool(flag.item() > 0.5)
    return late


def _sharded_predict(model: nn.Module, vs: SliceSet, phase_idx: list[int], device: torch.device,
                     config: TrainConfig, dist_: _Dist) -> tuple[np.ndarray, np.ndarray | None]:
    """Validation probabilities (and lesion areas); under DDP each rank predicts a contiguous
    shard, gathered."""
    if not dist_.active:
        scores = predict_scores(model, vs.x, phase_idx, device, config.eval_batch_size, config.amp)
        return scores.probs, scores.areas
    import torch.distributed as dist

    n = len(vs)
    bounds = np.linspace(0, n, dist_.world + 1).astype(int)
    lo, hi = int(bounds[dist_.rank]), int(bounds[dist_.rank + 1])
    mine = predict_scores(model, vs.x[lo:hi], phase_idx, device, config.eval_batch_size,
                          config.amp) if hi > lo else SliceScores(np.empty(0))
    parts: list[Any] = [None] * dist_.world
    dist.all_gather_object(parts, mine)
    probs = np.concatenate([p.probs for p in parts])
    has_areas = any(p.areas is not None for p in parts)
    areas = np.concatenate([p.areas if p.areas is not None else np.empty(0) for p in parts]) if has_areas else None
    return probs, areas


def with_overrides(config: TrainConfig, **kw: Any) -> TrainConfig:
    """A copy of ``config`` with fields replaced (``model=...`` or model fields by name)."""
    model_fields = set(config.model.to_dict())
    mkw = {k: kw.pop(k) for k in list(kw) if k in model_fields}
    model = replace(config.model, **mkw) if mkw else config.model
    return replace(config, model=model, **kw)
