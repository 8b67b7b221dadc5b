"""The core never imports Qt (DESIGN.md layers, STYLE.md 1)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import app

CORE_PACKAGES = ("app.dicom", "app.inference", "app.training", "app.register", "app.synthetic",
                 "app.export", "app.dicomnet")

_PROBE = r"""
import importlib, pkgutil, sys

class _BlockQt:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("PySide6", "pyqtgraph", "shiboken6", "PyQt5", "PyQt6"):
            raise ImportError(f"Qt is not allowed below app.ui: {name}")
        return None

sys.meta_path.insert(0, _BlockQt())
import app
names = []
for pkg in %r:
    mod = importlib.import_module(pkg)
    names.append(pkg)
    for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
        importlib.import_module(info.name)
        names.append(info.name)
for extra in ("app.errors", "app.progress", "app.paths", "app.cli", "app.logsetup"):
    importlib.import_module(extra)
    names.append(extra)
print(len(names))
"""


def test_core_imports_without_qt() -> None:
    """Import every core module in a fresh interpreter where Qt cannot be imported."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE % (CORE_PACKAGES,)],
        capture_output=True,
        text=True,
        cwd=Path(app.__file__).parent.parent,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    # every core module was found and imported (the walk is not vacuous)
    expected = sum(
        1 + len(list(pkgutil.walk_packages(__import__(p, fromlist=["x"]).__path__, p + ".")))
        for p in CORE_PACKAGES
    )
    assert int(out.stdout.strip()) == expected + 5


def test_qt_block_actually_blocks() -> None:
    """The probe's import blocker is real: importing app.ui under it fails."""
    probe = _PROBE.replace("%r", "('app.ui',)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "Qt is not allowed" in out.stderr
