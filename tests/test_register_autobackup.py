"""Automatic, rotated backups of the case register (app.register.autobackup): when they are due,
what they hold, what is pruned and what is left alone, how a failure reads, and the command line
a task scheduler calls."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from app.backup_policy import BackupPolicy, BackupPolicyError
from app.case.records import scheduled_backup
from app.cli import main
from app.register import Register, RegisterError, open_register
from app.register.autobackup import backup_due, run_scheduled_backup, scheduled_backups
from app.register.samples import sample_record
from app.settings import Settings, load_settings, save_settings

T0 = dt.datetime(2026, 12, 6, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def reg(tmp_path: Path) -> Register:
    r = open_register(tmp_path / "register.sqlite")
    yield r
    r.close()


def _policy(tmp_path: Path, **kw: object) -> BackupPolicy:
    return BackupPolicy(folder=str(tmp_path / "backups"), **kw)  # type: ignore[arg-type]


def test_due_daily_with_a_copy_that_verifies_and_an_audit_event(reg: Register, tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    skipped = run_scheduled_backup(reg, policy, T0)
    assert skipped.path is None and "no prediction recorded yet" in skipped.message
    assert not (tmp_path / "backups").exists()  # an empty register is not backed up
    case_id = reg.add_prediction(sample_record(1))

    first = run_scheduled_backup(reg, policy, T0)
    assert first.path == tmp_path / "backups" / "register-backup-20261206T080000Z.sqlite"
    with open_register(first.path, read_only=True) as copy:
        assert copy.verify().ok
        assert copy.get_prediction(case_id).record == reg.get_prediction(case_id).record
    assert reg.events(kind="backup")[-1].payload["path"] == str(first.path)

    later = T0 + dt.timedelta(hours=23, minutes=59)
    assert not backup_due(policy, later)
    assert run_scheduled_backup(reg, policy, later).path is None
    assert "not due (last 2026-12-06 08:00 UTC)" in run_scheduled_backup(reg, policy, later).message
    assert backup_due(policy, T0 + dt.timedelta(hours=24))
    assert run_scheduled_backup(reg, policy, T0 + dt.timedelta(hours=24)).path is not None
    assert run_scheduled_backup(reg, policy, later, force=True).path is not None  # forced: always
    assert len(scheduled_backups(tmp_path / "backups")) == 3
    assert not backup_due(BackupPolicy(enabled=False, folder=policy.folder), T0 + dt.timedelta(days=9))


def test_oldest_beyond_keep_are_pruned_and_other_files_left_alone(reg: Register, tmp_path: Path) -> None:
    reg.add_prediction(sample_record(1))
    policy = _policy(tmp_path, keep=2, interval_hours=1.0)
    folder = tmp_path / "backups"
    folder.mkdir()
    mine = folder / "notes.txt"
    mine.write_text("the site's own file")
    lookalike = folder / "register-backup-old.sqlite"  # not our time stamp: not ours
    lookalike.write_bytes(b"x")
    made = [run_scheduled_backup(reg, policy, T0 + dt.timedelta(hours=h)) for h in range(4)]
    kept = [p for _t, p in scheduled_backups(folder)]
    assert kept == [made[2].path, made[3].path]
    assert made[3].pruned == [made[1].path] and "1 older removed" in made[3].message
    assert not made[0].path.exists() and mine.exists() and lookalike.exists()  # type: ignore[union-attr]


def test_two_backups_in_one_second_do_not_collide(reg: Register, tmp_path: Path) -> None:
    reg.add_prediction(sample_record(1))
    policy = _policy(tmp_path)
    a = run_scheduled_backup(reg, policy, T0, force=True).path
    b = run_scheduled_backup(reg, policy, T0, force=True).path
    assert a != b and a is not None and b is not None and a.exists() and b.exists()
    assert b.name == "register-backup-20261206T080000Z-2.sqlite"


def test_an_unwritable_backup_folder_says_what_failed_and_where_to_change_it(
        reg: Register, tmp_path: Path) -> None:
    reg.add_prediction(sample_record(1))
    blocker = tmp_path / "share"
    blocker.write_text("a file where the folder should be")
    policy = BackupPolicy(folder=str(blocker / "backups"))
    with pytest.raises(RegisterError) as err:
        scheduled_backup(reg, policy)
    assert err.value.message.startswith("The automatic register backup failed: ")
    assert "Settings → Register backups" in err.value.message and "unharmed" in err.value.message
    assert blocker.read_text() == "a file where the folder should be"
    assert reg.events(kind="backup") == []  # no event for a backup that does not exist


@pytest.mark.parametrize("kw", [{"keep": 0}, {"keep": 1.5}, {"keep": True}, {"interval_hours": 0},
                                {"interval_hours": -1}, {"interval_hours": 24 * 366}])
def test_bad_policy_values_are_refused_by_name(kw: dict[str, object]) -> None:
    with pytest.raises(BackupPolicyError, match=next(iter(kw)).split("_")[0]):
        BackupPolicy(**kw)  # type: ignore[arg-type]


def test_settings_keep_the_policy_and_a_bad_one_costs_only_itself(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    policy = BackupPolicy(enabled=True, folder="/mnt/share/hcc", keep=30, interval_hours=12.0)
    save_settings(Settings(register_backup=policy, device="cpu"), path)
    assert load_settings(path).register_backup == policy
    doc = json.loads(path.read_text())
    doc["register_backup"] = {"enabled": "yes", "keep": 0}
    path.write_text(json.dumps(doc))
    loaded = load_settings(path)
    assert loaded.register_backup == BackupPolicy() and loaded.device == "cpu"


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_scheduled_backup_for_a_task_scheduler(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from app import paths

    rc, _out, err = _cli(capsys, "register", "backup", "--scheduled")
    assert rc == 2 and "no case register at" in err and "nothing to back up yet" in err
    assert not paths.default_register_path().exists()  # never a new, empty register
    db = tmp_path / "site" / "register.sqlite"
    with open_register(db) as r:
        r.add_prediction(sample_record(1))
    save_settings(Settings(register_path=str(db), register_backup=BackupPolicy(folder=str(tmp_path / "b"))))
    rc, out, _ = _cli(capsys, "register", "backup", "--scheduled", "--json")
    doc = json.loads(out)
    assert rc == 0 and Path(doc["backup"]).parent == tmp_path / "b" and doc["pruned"] == []
    rc, out, _ = _cli(capsys, "register", "backup", "--scheduled")
    assert rc == 0 and out.startswith("register backup not due")
    rc, out, _ = _cli(capsys, "register", "backup", "--scheduled", "--force")
    assert rc == 0 and out.startswith("register backed up to ")
    assert len(scheduled_backups(tmp_path / "b")) == 2
    for argv, words in ((("register", "backup"), "needs a FILE, or --scheduled"),
                        (("register", "backup", str(tmp_path / "x.sqlite"), "--scheduled"), "not both"),
                        (("register", "backup", str(tmp_path / "x.sqlite"), "--force"), "--force goes with")):
        rc, _out, err = _cli(capsys, *argv)
        assert rc == 2 and words in err, (argv, err)
    save_settings(Settings(register_path=str(db), register_backup=BackupPolicy(enabled=False)))
    rc, _out, err = _cli(capsys, "register", "backup", "--scheduled")
    assert rc == 2 and "turned off in the settings" in err
