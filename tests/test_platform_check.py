"""run.sh / ``hcc-response gui`` check Qt's xcb plugin libraries before Qt can abort (issue 17).

The real fault of issue 17 (``libxcb-icccm4``, ``libxcb-keysyms1`` missing) is checked against
``ldd`` on the machine's own PySide6 plugin where present; the parsing and the package
mapping are checked on ``ldd`` output captured from that machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app import platform_check as pc
from app.errors import InputError

#: ``ldd .venv/.../platforms/libqxcb.so`` on the machine of issue 17 (excerpt).
LDD_ISSUE_17 = """\
\tlinux-vdso.so.1 (0x00007ffd1b9e5000)
\tlibQt6XcbQpa.so.6 => /x/PySide6/Qt/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x00007f)
\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x00007fcd040b6000)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007fcd04049000)
"""


def test_missing_libraries_and_package_names() -> None:
    missing = pc.missing_libraries(LDD_ISSUE_17)
    assert missing == ("libxcb-icccm.so.4", "libxcb-keysyms.so.1")
    report = pc.PlatformReport(applies=True, missing=missing)
    assert not report.ok
    assert report.debian_packages() == ["libxcb-icccm4", "libxcb-keysyms1"]
    assert report.rhel_packages() == ["xcb-util-wm", "xcb-util-keysyms"]
    text = report.message()
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1" in text
    assert "sudo dnf install xcb-util-wm xcb-util-keysyms" in text


def test_nothing_missing_is_ok() -> None:
    assert pc.missing_libraries("\tlibxcb.so.1 => /lib/libxcb.so.1 (0x1)\n") == ()
    assert pc.PlatformReport(applies=True).message() == ""


@pytest.mark.parametrize(
    ("env", "platform", "expected"),
    [
        ({"DISPLAY": ":0"}, "linux", True),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux", False),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, "linux", True),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", False),
        ({}, "linux", False),
        ({"DISPLAY": ":0"}, "darwin", False),
    ],
)
def test_when_the_check_applies(env: dict[str, str], platform: str, expected: bool) -> None:
    assert pc.uses_xcb(env, platform) is expected


def test_offscreen_start_is_never_refused() -> None:
    env = {"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}
    assert not pc.check(environ=env).applies
    pc.require_platform(env)  # and the start-up check lets it through


@pytest.mark.skipif(sys.platform != "linux" or shutil.which("ldd") is None, reason="needs ldd")
def test_this_machine_agrees_with_ldd() -> None:
    """The module's verdict on this machine's own plugin is ``ldd``'s (real libraries)."""
    plugin = pc.find_xcb_plugin()
    if plugin is None:
        pytest.skip("PySide6 without the xcb plugin")
    ldd = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, check=False).stdout
    truly_missing = {line.split()[0] for line in ldd.splitlines() if "not found" in line}
    env = {**os.environ, "DISPLAY": ":99"}
    env.pop("QT_QPA_PLATFORM", None)
    report = pc.check(environ=env)
    assert report.applies and set(report.missing) == truly_missing
    proc = subprocess.run([sys.executable, "-m", "app.commands.check_platform"], env=env,
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == (2 if truly_missing else 0)
    for package in report.debian_packages():
        assert package in proc.stderr


def test_gui_command_refuses_with_exit_2_instead_of_a_qt_abort(monkeypatch: pytest.MonkeyPatch) -> None:
    """``hcc-response gui`` says what to install (exit 2) when the plugin cannot load."""
    from app.ui import application

    report = pc.PlatformReport(applies=True, missing=("libxcb-keysyms.so.1",))
    monkeypatch.setattr(pc, "check", lambda environ=None: report)
    with pytest.raises(InputError) as err:
        application.run_gui(offer_demo=False, exit_after=0.1)
    assert err.value.exit_code == 2
    assert "apt-get install libxcb-keysyms1" in err.value.message


def test_run_sh_calls_the_check_before_starting() -> None:
    run_sh = (Path(__file__).resolve().parents[1] / "run.sh").read_text()
    check_at = run_sh.index("python -m app.commands.check_platform")
    assert check_at < run_sh.index("exec .venv/bin/hcc-response gui")
