"""The command-line contract: --version, --help, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app import __version__
from app.cli import COMMANDS, build_parser, main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_every_command() -> None:
    text = build_parser().format_help()
    for name, _module, _help in COMMANDS:
        assert name in text


def test_python_dash_m_app_is_the_same_entry() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app", "--version"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0
    assert out.stdout.strip() == f"hcc-response {__version__}"


def test_bad_input_exits_2_with_one_line(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "does-not-exist"
    rc = main(["scan", str(missing)])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
