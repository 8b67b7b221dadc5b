"""Data-parallel training: two CPU processes (gloo) run the unchanged ``train()`` as torchrun
would start it (WORLD_SIZE/RANK/MASTER_* in the environment); both ranks must end with identical
weights, and only rank 0 may write files."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from app.training.dataset import split_prepared
from app.training.trainer import train


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, out: str) -> None:
    # what torchrun sets for each process
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "WORLD_SIZE": str(world), "RANK": str(rank), "LOCAL_RANK": str(rank),
                       "GLOO_SOCKET_IFNAME": "lo"})
    torch.set_num_threads(1)
    from safetensors.torch import save_file
    from test_training import tiny_config, toy_cohort

    data = split_prepared(toy_cohort(12, 3, n_slices=4), 0.4, seed=0)
    res = train(tiny_config(max_iterations=12, batch_size=8), data,
                checkpoint=Path(out) / f"ck_rank{rank}")
    save_file({k: v.contiguous() for k, v in res.model.state_dict().items()},
              str(Path(out) / f"weights_rank{rank}.safetensors"))
    (Path(out) / f"summary_rank{rank}.txt").write_text(
        f"{res.world_size} {res.rank} {res.iterations} {res.best_epoch}")


@pytest.mark.slow
def test_ddp_two_cpu_ranks_identical_weights_rank0_writes(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method="spawn")
    w0 = load_file(str(tmp_path / "weights_rank0.safetensors"))
    w1 = load_file(str(tmp_path / "weights_rank1.safetensors"))
    assert w0.keys() == w1.keys() and len(w0) > 10
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    s0 = (tmp_path / "summary_rank0.txt").read_text().split()
    s1 = (tmp_path / "summary_rank1.txt").read_text().split()
    assert s0[:2] == ["2", "0"] and s1[:2] == ["2", "1"]
    assert s0[2:] == s1[2:]  # same iterations and the same early-stopping choice
    # The global batch of 8 is split into 4 per rank: 7 training patients × 4 slices = 28
    # triplets → 14 per rank → 3 steps per epoch, 12 iterations = 4 epochs.
    assert s0[2] == "12"
    assert (tmp_path / "ck_rank0.safetensors").is_file()
    assert not (tmp_path / "ck_rank1.safetensors").exists()
    assert not (tmp_path / "ck_rank1.json").exists()
