"""The register on real faults (issue 19): read-only media, a full disk, damaged pages.

Mounts come from :mod:`fs_faults` (root; skipped with the reason elsewhere). Damage is real
too: bytes of the register file itself are overwritten, as a failing disk or a bad copy would.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import fs_faults
import pytest
from fs_faults import fill_disk

from app.cli import main
from app.register import RegisterDamagedError, open_register
from app.register.samples import sample_record

# the real-fault fixtures of fs_faults, used by name below
mounts = fs_faults.mounts
read_only_view = fs_faults.read_only_view
small_disk = fs_faults.small_disk



def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def _make_register(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "r.sqlite"
    with open_register(path) as reg:
        for i in range(n):
            reg.add_prediction(sample_record(i))
    return path


def _events(path: Path, kind: str) -> int:
    with open_register(path, read_only=True) as reg:
        return len(reg.events(kind=kind))


# ------------------------------------------------------------------------------------------------
# read-only media (issue 19, fault 3; and fault 2 for export/backup)


def test_read_only_media_can_be_read_but_not_changed(
        tmp_path: Path, read_only_view: Callable[[Path], Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    src = _make_register(tmp_path / "src")
    before = src.read_bytes()
    ro = read_only_view(src.parent) / "r.sqlite"

    for action in (["list"], ["show", "2"], ["verify"], ["stats"]):
        rc, out, err = _cli(capsys, "register", "--register", str(ro), *action)
        assert rc == 0, (action, err)
    rc, out, _ = _cli(capsys, "register", "--register", str(ro), "list", "--json")
    assert json.loads(out)["total"] == 3
    with open_register(ro, read_only=True) as reg:  # the library call the docstring promises
        assert reg.count_cases() == 3 and reg.verify().ok

    rc, _, err = _cli(capsys, "register", "--register", str(ro), "outcome", "2", "PR")
    assert rc == 1 and "read-only file system" in err

    # export and backup: refused without an audit event possible, and nothing written
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for action in (["export", str(out_dir / "x.csv")], ["backup", str(out_dir / "b.sqlite")]):
        rc, _, err = _cli(capsys, "register", "--register", str(ro), *action)
        assert rc == 1 and "--read-only" in err, err
        assert list(out_dir.iterdir()) == []
    # with --read-only the user accepts that the archive copy's trail cannot record it
    rc, _, err = _cli(capsys, "register", "--register", str(ro), "--read-only", "export",
                      str(out_dir / "x.csv"))
    assert rc == 0, err
    assert len((out_dir / "x.csv").read_text().splitlines()) == 4
    assert src.read_bytes() == before
    assert sorted(p.name for p in src.parent.iterdir()) == ["r.sqlite"]


# ------------------------------------------------------------------------------------------------
# a full disk (fault 4)


def test_full_disk_reads_and_leaves_no_debris(
        tmp_path: Path, small_disk: Callable[[int], Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    src = _make_register(tmp_path / "src")
    disk = small_disk(512)
    path = disk / "r.sqlite"
    shutil.copy(src, path)
    fill_disk(disk)

    for action in (["list"], ["show", "1"], ["verify"], ["stats"]):
        rc, _, err = _cli(capsys, "register", "--register", str(path), *action)
        assert rc == 0, (action, err)
    rc, _, err = _cli(capsys, "register", "--register", str(path), "outcome", "1", "PR")
    assert rc == 1 and "disk is full" in err
    # no 3-byte -shm, no empty -wal: the failed attempts cleaned up after themselves
    assert sorted(p.name for p in disk.iterdir()) == ["filler.bin", "r.sqlite"]
    assert path.read_bytes() == src.read_bytes()


def test_export_and_backup_to_a_full_disk_name_the_file_and_write_nothing(
        tmp_path: Path, small_disk: Callable[[int], Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    path = _make_register(tmp_path / "src", n=30)
    disk = small_disk(64)
    fill_disk(disk)
    for action, name in (("export", "cases.csv"), ("backup", "copy.sqlite")):
        rc, _, err = _cli(capsys, "register", "--register", str(path), action, str(disk / name))
        assert rc == 1, err
        assert "disk is full" in err and str(disk / name) in err and "None" not in err
        assert sorted(p.name for p in disk.iterdir()) == ["filler.bin"]
        assert _events(path, action) == 0  # a command that failed left no event either


def test_export_and_backup_that_succeed_record_their_event(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _make_register(tmp_path / "src")
    rc, _, _ = _cli(capsys, "register", "--register", str(path), "export", str(tmp_path / "a.csv"))
    assert rc == 0 and _events(path, "export") == 1
    rc, _, _ = _cli(capsys, "register", "--register", str(path), "backup",
                    str(tmp_path / "b.sqlite"))
    assert rc == 0 and _events(path, "backup") == 1
    assert not list(tmp_path.glob("*.partial"))


# ------------------------------------------------------------------------------------------------
# damaged pages (fault 5)


def _damage_predictions_page(path: Path) -> None:
    """Overwrite 40 bytes of record content in the ``predictions`` table's root page."""
    con = sqlite3.connect(path)
    root, page_size = con.execute(
        "SELECT rootpage, (SELECT page_size FROM pragma_page_size) FROM sqlite_master "
        "WHERE name = 'predictions'").fetchone()
    con.close()
    data = bytearray(path.read_bytes())
    rng = random.Random(1)
    offset = (root - 1) * page_size + page_size - 600
    for i in range(40):
        data[offset + i] = rng.randrange(32, 127)
    path.write_bytes(bytes(data))


def test_damaged_register_is_refused_for_writing_with_the_backup_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _make_register(tmp_path / "src")
    backup = tmp_path / "elsewhere" / "monday.sqlite"
    with open_register(path) as reg:
        reg.backup(backup)  # recorded in the audit trail: found even away from the register
    _damage_predictions_page(path)
    damaged = path.read_bytes()

    rc, _, err = _cli(capsys, "register", "--register", str(path), "outcome", "2", "SD")
    assert rc == 2
    assert "damaged" in err and str(backup) in err
    assert path.read_bytes() == damaged  # nothing written
    # the export that used to say "malformed" and still write its CSV writes nothing now
    csv_file = tmp_path / "cases.csv"
    rc, _, err = _cli(capsys, "register", "--register", str(path), "export", str(csv_file))
    assert rc == 2 and "damaged" in err
    assert not csv_file.exists() and not list(tmp_path.glob("*.partial"))

    with pytest.raises(RegisterDamagedError) as info:
        open_register(path)
    assert info.value.backup == backup

    # show of the damaged record: the same clear message, never the stored bytes or a traceback
    rc, out, err = _cli(capsys, "register", "--register", str(path), "show", "2")
    assert rc == 2 and out == ""
    assert "damaged" in err and "Traceback" not in err and "escape" not in err
    assert len(err.strip().splitlines()) == 1


def test_damaged_register_without_backup_says_so(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = _make_register(tmp_path / "src")
    _damage_predictions_page(path)
    rc, _, err = _cli(capsys, "register", "--register", str(path), "outcome", "2", "SD")
    assert rc == 2 and "no backup of it was found" in err
