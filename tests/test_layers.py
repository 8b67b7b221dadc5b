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


# -- the order of the core ---------------------------------------------------------------------

APP_DIR = Path(app.__file__).parent

#: The core's layers, bottom first (DESIGN.md "Layers", the ``app`` package docstring). A package
#: may import its own layer and the layers below it, never one above; the app-wide modules
#: (``app.errors``, ``app.progress``, ``app.paths``, ``app.parallel``, ``app.stats`` ...) are
#: below all of them. ``app.commands``, ``app.cli`` and ``app.ui`` are above the core.
CORE_LAYERS: tuple[tuple[str, ...], ...] = (
    ("app.dicom",),
    ("app.register",),
    ("app.inference",),
    # the generator's label maps are aligned with the model's input (app.synthetic.labelmaps
    # uses app.inference.preprocess), so the synthetic data sits above inference
    ("app.synthetic",),
    ("app.training",),
    ("app.case", "app.casework"),
)
ABOVE_THE_CORE = ("app.commands", "app.cli", "app.ui")
#: Third-party packages a layer must not import (the register stays light: the register CLI
#: and the result types must not load torch).
FORBIDDEN_LIBRARIES = {"app.register": ("torch",), "app.dicom": ("torch",),
                       "app.synthetic": ("torch",)}


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(APP_DIR.parent).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports at run time, at any depth (lazy imports in functions
    included), ``if TYPE_CHECKING:`` blocks excluded."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names}
            modules = {s for s in subs if (APP_DIR.parent / (s.replace(".", "/") + ".py")).is_file()}
            found.update(modules)
            if len(modules) < len(subs):
                found.add(node.module)
    return found


def _layer_of(module: str) -> int | None:
    for level, packages in enumerate(CORE_LAYERS):
        if any(module == p or module.startswith(p + ".") for p in packages):
            return level
    return None


def _all_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in APP_DIR.rglob("*.py")}


def test_core_layers_import_only_downwards() -> None:
    """register imports neither torch nor inference, dicom no inference, training no case ..."""
    problems = []
    for module, path in _all_modules().items():
        level = _layer_of(module)
        if level is None:
            continue
        for imported in _imports(path):
            top = imported.split(".")[0]
            if any(imported == a or imported.startswith(a + ".") for a in ABOVE_THE_CORE):
                problems.append(f"{module} imports {imported} (above the core)")
            target = _layer_of(imported)
            if target is not None and target > level:
                problems.append(f"{module} imports {imported} (a higher layer)")
            for package, libraries in FORBIDDEN_LIBRARIES.items():
                if (module == package or module.startswith(package + ".")) and top in libraries:
                    problems.append(f"{module} imports {top}")
    assert not problems, "\n".join(sorted(problems))


def test_no_import_cycles_between_app_modules() -> None:
    """No two modules of the app import each other, however indirectly (lazy imports count:
    ``training.cohort`` and ``training._pipeline`` used to)."""
    modules = _all_modules()
    graph = {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}
    # Tarjan's strongly connected components, iteratively
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    assert not cycles, cycles


def test_layer_check_sees_a_violation(tmp_path: Path) -> None:
    """The import scan is not vacuous: it finds lazy imports and skips typing-only ones."""
    path = tmp_path / "probe.py"
    path.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch\n"
                    "def f():\n    from app.inference import predictor\n    import app.ui.jobs\n",
                    encoding="utf-8")
    assert _imports(path) == {"typing", "app.inference.predictor", "app.ui.jobs"}


_LIGHT_PROBE = r"""
import importlib, pkgutil, sys
import app.register
for info in pkgutil.walk_packages(app.register.__path__, "app.register."):
    importlib.import_module(info.name)
import app.inference.result, app.casework, app.case.records, app.case.model
heavy = [m for m in ("torch", "app.inference.predictor", "app.inference.weights") if m in sys.modules]
print(",".join(heavy))
"""


def test_register_and_result_types_load_without_torch() -> None:
    """The register, the result types and the register adapter import without torch."""
    out = subprocess.run([sys.executable, "-c", _LIGHT_PROBE], capture_output=True, text=True,
                         cwd=APP_DIR.parent, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
