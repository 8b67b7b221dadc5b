"""Checks, before Qt starts, that its X11 (xcb) platform plugin can load on this Linux machine.

Why: Qt aborts the process (SIGABRT, no Python exception) when its platform plugin cannot be
loaded, and its message names one library ("xcb-cursor0 or libxcb-cursor0 is needed") even
when that one is installed and another is missing — on a fresh Ubuntu the missing ones were
``libxcb-icccm4`` and ``libxcb-keysyms1`` (issue 17). PySide6's wheels bundle Qt but not these
system libraries. So ``run.sh`` and ``hcc-response gui`` ask the dynamic linker (``ldd``) which
shared objects of the bundled ``libqxcb.so`` are missing and print the exact package names for
Debian/Ubuntu and RHEL/Fedora, instead of letting Qt abort.

Qt-free on purpose: it must run before PySide6 is imported (importing PySide6 itself is fine,
starting a QApplication is what aborts), and it only finds the plugin file through
``importlib``.

Run as ``python -m app.platform_check``: exit 0 when the plugin can load (or the check does not
apply: not Linux, offscreen, no ``ldd``), 2 with the install command when it cannot.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from app.errors import InputError

#: soname → (Debian/Ubuntu package, RHEL/Fedora package) for everything ``libqxcb.so`` of
#: PySide6 6.x links against outside the wheel (``ldd`` on the plugin, Qt 6.5 – 6.8).
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libSM.so.6": ("libsm6", "libSM"),
    "libICE.so.6": ("libice6", "libICE"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
}

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)


@dataclass(frozen=True)
class PlatformReport:
    """What the check found.

    Attributes
    ----------
    applies:
        False when there is nothing to check (not Linux, an offscreen/Wayland/VNC platform, no
        ``ldd``, or PySide6's plugin not found); ``missing`` is then empty.
    plugin:
        The ``libqxcb.so`` that was checked.
    missing:
        Sonames the dynamic linker could not find, in ``ldd``'s order.
    """

    applies: bool
    plugin: Path | None = None
    missing: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when Qt's xcb plugin can load (or the check does not apply)."""
        return not self.missing

    def debian_packages(self) -> list[str]:
        """Debian/Ubuntu package names for :attr:`missing` (unknown sonames listed as is)."""
        return _unique(PACKAGES.get(s, (s, s))[0] for s in self.missing)

    def rhel_packages(self) -> list[str]:
        """RHEL/Fedora package names for :attr:`missing`."""
        return _unique(PACKAGES.get(s, (s, s))[1] for s in self.missing)

    def message(self) -> str:
        """What to install, as a user reads it (empty when nothing is missing)."""
        if self.ok:
            return ""
        return (
            "The Qt X11 platform plugin cannot start: these system libraries are missing: "
            f"{', '.join(self.missing)}.\n"
            "Install them, then start again:\n"
            f"  Debian/Ubuntu: sudo apt-get install {' '.join(self.debian_packages())}\n"
            f"  RHEL/Fedora:   sudo dnf install {' '.join(self.rhel_packages())}\n"
            "(or start without a window: QT_QPA_PLATFORM=offscreen)"
        )


def find_xcb_plugin() -> Path | None:
    """PySide6's ``libqxcb.so`` (without importing Qt), or None when not installed."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        for candidate in (
            Path(root) / "Qt" / "plugins" / "platforms" / "libqxcb.so",
            Path(root) / "plugins" / "platforms" / "libqxcb.so",
        ):
            if candidate.is_file():
                return candidate
    return None


def missing_libraries(ldd_output: str) -> tuple[str, ...]:
    """Sonames that ``ldd`` reported as ``not found`` (each once, in order)."""
    return tuple(_unique(_NOT_FOUND.findall(ldd_output)))


def uses_xcb(environ: dict[str, str] | None = None, platform: str | None = None) -> bool:
    """True when Qt would start its xcb plugin: Linux, a ``DISPLAY``, no other platform chosen."""
    env = os.environ if environ is None else environ
    if (platform or sys.platform) != "linux":
        return False
    chosen = env.get("QT_QPA_PLATFORM", "").strip().lower()
    if chosen:
        return chosen.startswith("xcb")
    if env.get("WAYLAND_DISPLAY") and not env.get("DISPLAY"):
        return False
    return bool(env.get("DISPLAY"))


def check(plugin: Path | None = None, environ: dict[str, str] | None = None) -> PlatformReport:
    """Ask ``ldd`` which libraries of the xcb plugin are missing (when the plugin will be used)."""
    if not uses_xcb(environ):
        return PlatformReport(applies=False)
    plugin = plugin or find_xcb_plugin()
    ldd = shutil.which("ldd")
    if plugin is None or ldd is None:
        return PlatformReport(applies=False, plugin=plugin)
    try:
        out = subprocess.run(
            [ldd, str(plugin)], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return PlatformReport(applies=False, plugin=plugin)
    return PlatformReport(applies=True, plugin=plugin, missing=missing_libraries(out))


def require_platform(environ: dict[str, str] | None = None) -> None:
    """Raise :class:`InputError` (exit code 2) with the install command when xcb cannot load."""
    report = check(environ=environ)
    if not report.ok:
        # The whole text is the message: the CLI prints only the message, and the package
        # names are what the user needs.
        raise InputError(report.message())


def _unique(items: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen
