"""`hcc-response register …`: actions, JSON output and exit codes (DESIGN.md contract)."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest

from app.cli import main
from app.register import open_register
from app.register.samples import sample_record


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "reg.sqlite"
    with open_register(path) as reg:
        for i in range(6):
            reg.add_prediction(sample_record(i, n_patients=4))
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["register", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_list_and_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "--register", str(db), "list")
    assert rc == 0 and "6 of 6 case(s)" in out and "PAT00000003" in out
    rc, out, _ = _run(capsys, "list", "--register", str(db), "--json", "--search", "PAT00000001",
                      "--sort", "id", "--ascending")
    doc = json.loads(out)
    assert rc == 0 and doc["total"] == 2
    assert [c["id"] for c in doc["cases"]] == [2, 6]
    assert doc["cases"][0]["vote_split"].endswith("/30")


def test_outcome_show_and_corrections(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "--register", str(db), "outcome", "3", "pr", "--date", "2025-04-01",
                "--by", "dr x")[0] == 0
    rc, out, _ = _run(capsys, "--register", str(db), "outcome", "3", "PD", "--by", "dr y")
    assert rc == 0 and "corrects outcome 1" in out
    rc, out, _ = _run(capsys, "--register", str(db), "show", "3")
    assert rc == 0 and "PR on 2025-04-01 entered by dr x" in out and "(corrected)" in out
    assert "PD on" in out and "(current)" in out
    rc, out, _ = _run(capsys, "--register", str(db), "show", "3", "--json")
    doc = json.loads(out)
    assert [o["category"] for o in doc["outcomes"]] == ["PR", "PD"]
    assert len(doc["record"]["slice_results"]) == 30


@pytest.mark.parametrize("argv, message", [
    (["show", "99"], "no case with id 99"),
    (["outcome", "1", "XY"], "unknown RECIST category"),
    (["outcome", "1", "PR", "--date", "31/12/2025"], "not a date"),
    (["list", "--outcome", "maybe"], "unknown outcome filter"),
    (["export", "x.csv", "--key-file", "k"], "--pseudonymise"),
])
def test_bad_input_exits_2_with_one_line(db: Path, capsys: pytest.CaptureFixture[str],
                                         argv: list[str], message: str) -> None:
    rc, out, err = _run(capsys, "--register", str(db), *argv)
    assert rc == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_newer_register_exits_2(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    con = sqlite3.connect(db)
    con.execute("UPDATE alembic_version SET version_num = '0999'")
    con.commit()
    con.close()
    rc, _, err = _run(capsys, "--register", str(db), "list")
    assert rc == 2 and "newer version" in err


def test_verify_ok_then_tampered_exits_1(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "--register", str(db), "verify")
    assert rc == 0 and "register OK" in out and "chain head" in out
    head = out.split("chain head ")[1].split()[0]
    assert _run(capsys, "--register", str(db), "verify", "--head", head)[0] == 0
    rc, out, _ = _run(capsys, "--register", str(db), "verify", "--head", "f" * 64)
    assert rc == 1 and "rewritten" in out
    con = sqlite3.connect(db)
    con.execute("DROP TRIGGER predictions_no_update")
    con.execute("UPDATE predictions SET label = 'responder', score = 0.9 WHERE id = 2")
    con.commit()
    con.close()
    rc, out, _ = _run(capsys, "--register", str(db), "verify")
    assert rc == 1 and "case 2 was altered" in out
    rc, out, _ = _run(capsys, "--register", str(db), "verify", "--json")
    assert rc == 1 and json.loads(out)["ok"] is False


def test_export_backup_stats(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "site.key"
    key.write_text("a-site-wide-secret-key-of-enough-length\n")
    for i, cat in zip(range(1, 7), ["CR", "PD", "PR", "SD", "PR", "PD"], strict=True):
        assert _run(capsys, "--register", str(db), "outcome", str(i), cat)[0] == 0
    rc, out, _ = _run(capsys, "--register", str(db), "export", str(tmp_path / "p.csv"),
                      "--pseudonymise", "--key-file", str(key))
    assert rc == 0 and "wrote 6 case(s)" in out and "pseudonymised" in out
    rows = list(csv.DictReader((tmp_path / "p.csv").open(encoding="utf-8")))
    assert len(rows) == 6 and "patient_name" not in rows[0] and rows[0]["patient_key"]
    rc, out, _ = _run(capsys, "--register", str(db), "backup", str(tmp_path / "b.sqlite"))
    assert rc == 0 and (tmp_path / "b.sqlite").exists()
    rc, _, err = _run(capsys, "--register", str(db), "backup", str(tmp_path / "b.sqlite"))
    assert rc == 2 and "exists" in err
    rc, out, _ = _run(capsys, "--register", str(db), "stats")
    assert rc == 0 and "n = 6" in out and "0.802" in out
    rc, out, _ = _run(capsys, "--register", str(db), "stats", "--json")
    doc = json.loads(out)
    assert doc["counts"]["cases_with_outcome"] == 6
    assert doc["performance"][0]["n"] == 6 and doc["performance"][0]["auc"] is not None


def test_action_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["register"])
    assert exc.value.code == 2


def test_show_and_export_say_how_the_score_was_made(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from dataclasses import replace

    path = tmp_path / "reg.sqlite"
    with open_register(path) as reg:
        old = reg.add_prediction(sample_record(0))
        new = reg.add_prediction(replace(sample_record(1), decided_by="patient_head"))
    rc, out, _ = _run(capsys, "--register", str(path), "show", str(new))
    assert rc == 0 and "(patient-level model on the tumour's measures)" in out
    rc, out, _ = _run(capsys, "--register", str(path), "show", str(old))
    assert rc == 0 and "score " in out and "patient-level" not in out and "(mean" not in out
    csv_path = tmp_path / "cases.csv"
    assert _run(capsys, "--register", str(path), "export", str(csv_path))[0] == 0
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        rows = {r["prediction_id"]: r["decided_by"] for r in csv.DictReader(fh)}
    assert rows == {str(old): "", str(new): "patient_head"}
