"""Real file-system faults for tests: a read-only bind mount and a small tmpfs that is filled.

Simulated faults (a ``max_page_count``, a read-only SQLite flag) do not behave like real ones:
a WAL database on read-only media cannot even build its index, a full disk fails while
creating ``-shm``. These fixtures make the real thing with ``mount`` (root on Linux, as in CI)
and skip with the reason where the machine does not allow it. Every mount is undone at the end
of the test, lazily if something still holds it.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@functools.cache
def mount_unavailable() -> str | None:
    """Why real mounts cannot be made here (None: they can)."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "real file-system faults need Linux mounts"
    if os.geteuid() != 0:
        return "real file-system faults need root (mount); CI runs as root"
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "mount/umount are not installed"
    import tempfile

    probe = Path(tempfile.mkdtemp(prefix="hcc-mount-probe-"))
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            return f"mount -t tmpfs is not permitted here: {r.stderr.strip()}"
        subprocess.run(["umount", str(probe)], capture_output=True, timeout=30)
        return None
    finally:
        probe.rmdir()


def _run(*cmd: str) -> None:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[list[Path]]:
    """Mount points made by a test; each is unmounted at the end (lazily if still busy)."""
    reason = mount_unavailable()
    if reason is not None:
        pytest.skip(reason)
    made: list[Path] = []
    yield made
    for point in reversed(made):
        r = subprocess.run(["umount", str(point)], capture_output=True, timeout=30)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=30)


@pytest.fixture
def read_only_view(mounts: list[Path], tmp_path: Path) -> Callable[[Path], Path]:
    """``read_only_view(folder)``: the same folder seen through a read-only bind mount."""

    def make(folder: Path) -> Path:
        point = tmp_path / f"ro-view-{len(mounts)}"
        point.mkdir()
        _run("mount", "--bind", str(folder), str(point))
        mounts.append(point)
        _run("mount", "-o", "remount,ro,bind", str(point))
        return point

    return make


@pytest.fixture
def small_disk(mounts: list[Path], tmp_path: Path) -> Callable[[int], Path]:
    """``small_disk(kib)``: an empty tmpfs of that size (fill it with :func:`fill_disk`)."""

    def make(kib: int) -> Path:
        point = tmp_path / f"disk-{len(mounts)}"
        point.mkdir()
        _run("mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(point))
        mounts.append(point)
        return point

    return make


def fill_disk(folder: Path) -> Path:
    """Write a filler file into ``folder`` until the file system is full; returns it."""
    filler = folder / "filler.bin"
    block = b"\0" * 4096
    with filler.open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(block)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    # a last partial block may still fit
    with filler.open("ab", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 512)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    assert os.statvfs(folder).f_bavail == 0
    return filler
