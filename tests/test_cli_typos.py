"""Mistyped command-line input is refused with exit 2, never silently accepted (issue 17, item 8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dicom_factory import synthetic_patient

from app.cli import main
from app.register import open_register
from app.register.samples import sample_record


@pytest.fixture(scope="module")
def one_patient(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_patient(tmp_path_factory.mktemp("typo-cli"), seed=31, matrix=64)


def test_malformed_sha256_is_named_as_such(one_patient: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from app.inference.weights import default_model_path

    rc = main(["predict", str(one_patient), "--quiet", "--model", str(default_model_path()),
               "--sha256", "abc", "--confirm"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "not a SHA-256" in err and "changed" not in err


def test_sha256_without_model_checks_the_bundled_model(one_patient: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["predict", str(one_patient), "--quiet", "--sha256", "0" * 64, "--confirm"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "bundled model" in err and "--sha256" in err


def test_sha256_without_model_accepts_the_bundled_hash(one_patient: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from app.inference.weights import default_model_path, sha256_file

    sha = sha256_file(default_model_path()).upper()  # case does not matter
    rc = main(["predict", str(one_patient), "--quiet", "--sha256", sha, "--confirm", "--json"])
    assert rc == 0, capsys.readouterr().err


def test_register_typo_is_refused_and_creates_nothing(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    typo = tmp_path / "typo.sqlite"
    rc = main(["register", "--register", str(typo), "list"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "no case register" in err and str(typo) in err
    assert not typo.exists()


def test_existing_register_still_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "reg.sqlite"
    with open_register(db) as reg:
        reg.add_prediction(sample_record(0, n_patients=1))
    assert main(["register", "--register", str(db), "list"]) == 0


def test_readme_command_options_exist() -> None:
    """Issue 17 item 11: every option the README shows for a command is one that command takes."""
    import re

    from app.cli import build_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    checked = 0
    for line in readme.splitlines():
        # the whole line: a table row names the command in one cell and its options in another
        for command in re.findall(r"hcc-response (\w[\w-]*)", line)[:1]:
            rest = line.split("#", 1)[0] if line.lstrip().startswith("hcc-response") else line
            if command not in sub.choices:
                continue
            known = {o for a in sub.choices[command]._actions for o in a.option_strings}
            for sp in sub.choices[command]._actions:
                if sp.__class__.__name__ == "_SubParsersAction":
                    for p in sp.choices.values():
                        known |= {o for a in p._actions for o in a.option_strings}
            for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest):
                assert option in known, f"README: hcc-response {command} {option}"
                checked += 1
    assert checked >= 10
