"""Model files: round trip, identity, and every refusal of RELIABILITY.md 16–18 with its message."""

from __future__ import annotations

import ast
import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save

from app.inference.config import ModelConfig
from app.inference.model import build_model
from app.inference.weights import (
    FORMAT,
    WEIGHTS_RANDOM,
    WEIGHTS_SYNTHETIC,
    ModelDescription,
    ModelFileError,
    create_random_model,
    default_model_path,
    load_bundled_model,
    load_model,
    read_description,
    save_model,
    sha256_file,
    write_sha256_file,
)

torch.set_num_threads(2)


pytestmark = pytest.mark.usefixtures("torch_one_thread")
CFG = ModelConfig(backbone="tiny", input_size=32, extra_channels=16, hidden=16)


def _saved(tmp_path: Path, **kw) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_model(CFG).eval()
    desc = ModelDescription(name="t", version="1", weights_kind=WEIGHTS_SYNTHETIC,
                            metrics={"auc": 0.8}, training_data={"patients": 12})
    path = tmp_path / "m.safetensors"
    save_model(model, CFG, desc, path, **kw)
    return path, model


def _rewrite(src: Path, dst: Path, edit_tensors=None, edit_meta=None) -> Path:
    """Re-save a model file with its tensors and/or metadata edited (a damaged or forged file)."""
    from safetensors import safe_open

    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    if edit_tensors:
        edit_tensors(tensors)
    if edit_meta:
        edit_meta(meta)
    dst.write_bytes(st_save(tensors, metadata=meta))
    return dst


def test_round_trip_same_outputs_and_card(tmp_path: Path) -> None:
    path, model = _saved(tmp_path)
    loaded = load_model(path, device="cpu")
    x = torch.rand(2, 3, 1, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(x), model(x))
    assert loaded.config == CFG
    assert loaded.sha256 == sha256_file(path)
    d = loaded.description
    assert (d.name, d.weights_kind, d.metrics, d.training_data) == ("t", WEIGHTS_SYNTHETIC, {"auc": 0.8}, {"patients": 12})
    assert d.architecture == CFG.to_dict() and d.phases == list(CFG.phases)
    assert d.preprocessing["window"]["width"] == 400.0
    assert d.is_trained
    assert not loaded.model.training and loaded.model.folded
    assert not any(p.requires_grad for p in loaded.model.parameters())
    # the folded network is for inference only: it cannot be saved as if it were the trained one
    with pytest.raises(ModelFileError, match="folded for inference"):
        save_model(loaded.model, CFG, d, tmp_path / "again.safetensors")
    unfolded = load_model(path, fold=False)
    assert not unfolded.model.folded and unfolded.sha256 == loaded.sha256
    save_model(unfolded.model, CFG, d, tmp_path / "again.safetensors")  # fine-tuning path
    assert read_description(path).to_dict() == d.to_dict()
    # no pickle anywhere: the file is a safetensors file with our metadata
    assert json.loads(path.read_bytes()[8:8 + int.from_bytes(path.read_bytes()[:8], "little")])["__metadata__"]["format"] == FORMAT


def test_half_precision_file_is_smaller_and_loads_as_float32(tmp_path: Path) -> None:
    full, _ = _saved(tmp_path)
    size_full = full.stat().st_size
    half, model = _saved(tmp_path, half=True)
    assert half.stat().st_size < 0.6 * size_full
    loaded = load_model(half)
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    x = torch.rand(2, 3, 1, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(x), model(x), rtol=2e-2, atol=2e-2)


def test_shipped_configuration_fits_30_mb_in_half_precision(tmp_path: Path) -> None:
    path = tmp_path / "shipped.safetensors"
    create_random_model(path, ModelConfig(shared_trunk=True), half=True)
    assert path.stat().st_size < 30e6


def test_identity_changes_with_one_weight_and_with_the_card(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    sha = sha256_file(path)
    assert load_model(path, expected_sha256=sha).sha256 == sha

    def bump(t):
        t["head.4.bias"] = t["head.4.bias"] + 1e-3

    w = _rewrite(path, tmp_path / "w.safetensors", edit_tensors=bump)
    with pytest.raises(ModelFileError, match="has changed"):
        load_model(w, expected_sha256=sha)

    def relabel(meta):
        d = json.loads(meta["description"])
        d["weights_kind"] = "site-trained"
        meta["description"] = json.dumps(d)

    c = _rewrite(path, tmp_path / "c.safetensors", edit_meta=relabel)
    assert sha256_file(c) != sha
    with pytest.raises(ModelFileError, match="has changed"):
        load_model(c, expected_sha256=sha)


def test_empty_truncated_and_foreign_files_are_refused(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    blob = path.read_bytes()
    cases = {
        "missing.safetensors": (None, "not found"),
        "empty.safetensors": (b"", "is empty"),
        "short.safetensors": (blob[:5], "truncated"),
        "cut-header.safetensors": (blob[:100], "truncated"),
        "cut-data.safetensors": (blob[: len(blob) - 100], "truncated: the tensors need"),
        "jpeg.safetensors": (b"\xff\xd8\xff\xe0" + bytes(4000), "not a safetensors"),
        "text.safetensors": (b"\x10\x00\x00\x00\x00\x00\x00\x00" + b"not json at all!", "header is not JSON"),
    }
    for name, (content, message) in cases.items():
        p = tmp_path / name
        if content is not None:
            p.write_bytes(content)
        with pytest.raises(ModelFileError, match=message):
            load_model(p)
    plain = tmp_path / "plain.safetensors"
    plain.write_bytes(st_save({"a": torch.zeros(2)}))
    with pytest.raises(ModelFileError, match="not an HCC Response model file"):
        load_model(plain)


def test_bad_descriptions_are_refused(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)

    def set_meta(**kw):
        return lambda meta: meta.update(kw)

    def set_desc(**kw):
        def edit(meta):
            d = json.loads(meta["description"])
            d.update(kw)
            meta["description"] = json.dumps(d)
        return edit

    cases = [
        (set_meta(description="{not json"), "not valid JSON"),
        (set_meta(format_version="2"), "newer version"),
        (set_desc(weights_kind="magic"), "unknown weights_kind"),
        (set_desc(architecture={**CFG.to_dict(), "backbone": "resnet101"}), "unknown backbone"),
        (set_desc(architecture={**CFG.to_dict(), "depth": 3}), "unknown model configuration key"),
    ]
    for i, (edit, message) in enumerate(cases):
        bad = _rewrite(path, tmp_path / f"bad{i}.safetensors", edit_meta=edit)
        with pytest.raises(ModelFileError, match=message):
            load_model(bad)
    nodesc = _rewrite(path, tmp_path / "nodesc.safetensors",
                      edit_meta=lambda m: m.update(description=json.dumps({"name": "x"})))
    with pytest.raises(ModelFileError, match="lacks version, weights_kind, architecture"):
        load_model(nodesc)


def test_tensor_mismatches_are_refused_by_name(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)

    def drop(t):
        del t["extras.1.0.weight"]

    def extra(t):
        t["extras.9.0.weight"] = torch.zeros(3)

    def reshape(t):
        t["head.4.weight"] = torch.zeros(3, 16)

    def as_int(t):
        t["head.4.bias"] = torch.zeros(2, dtype=torch.int32)

    def nan(t):
        t["extras.2.0.weight"][0, 0, 0, 0] = float("nan")

    def inf(t):
        t["head.1.weight"][0, 0] = float("inf")

    cases = [
        (drop, r"missing tensor\(s\) \(extras\.1\.0\.weight\)"),
        (extra, r"unexpected tensor\(s\) \(extras\.9\.0\.weight\)"),
        (reshape, r"head\.4\.weight has shape \[3, 16\], the architecture needs \[2, 16\]"),
        (as_int, r"head\.4\.bias has dtype I32; weights must be float16"),
        (nan, r"NaN or infinite values in tensor\(s\) extras\.2\.0\.weight"),
        (inf, r"NaN or infinite values in tensor\(s\) head\.1\.weight"),
    ]
    for i, (edit, message) in enumerate(cases):
        bad = _rewrite(path, tmp_path / f"bad{i}.safetensors", edit_tensors=edit)
        with pytest.raises(ModelFileError, match=message):
            load_model(bad)
    # a description that asks for another architecture than the tensors hold
    wider = _rewrite(path, tmp_path / "wider.safetensors", edit_meta=lambda m: m.update(
        description=json.dumps({**json.loads(m["description"]),
                                "architecture": {**CFG.to_dict(), "hidden": 32}})))
    with pytest.raises(ModelFileError, match="head.1.weight has shape"):
        load_model(wider)


def test_random_demo_model_says_what_it_is_and_bundled_hash_is_enforced(tmp_path: Path) -> None:
    path = tmp_path / "models" / "demo.safetensors"
    sha = create_random_model(path, CFG)
    loaded = load_bundled_model("cpu", path)
    assert loaded.sha256 == sha
    assert loaded.description.weights_kind == WEIGHTS_RANDOM
    assert not loaded.description.is_trained
    assert "random" in loaded.description.notes.lower()
    # the file changes after its hash was recorded: refused
    other = tmp_path / "other.safetensors"
    create_random_model(other, CFG, seed=1, record_sha256=False)
    path.write_bytes(other.read_bytes())
    with pytest.raises(ModelFileError, match="has changed"):
        load_bundled_model("cpu", path)
    with pytest.raises(ModelFileError, match="no recorded SHA-256"):
        load_bundled_model("cpu", other)
    assert default_model_path().name == "demo-model.safetensors"


# --- RELIABILITY 16: tensors only, never a pickle ----------------------------------------------


class _TouchOnUnpickle:
    """Unpickling this creates ``marker`` (a stand-in for code a pickle would run on load)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def _state(marker: Path | None = None) -> dict[str, object]:
    torch.manual_seed(0)
    state: dict[str, object] = dict(build_model(CFG).state_dict())
    if marker is not None:
        state["extra"] = _TouchOnUnpickle(marker)
    return state


def test_torch_save_file_named_safetensors_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    torch.save(_state(), path)  # a zip of pickles, whatever its name says
    assert path.read_bytes()[:4] == b"PK\x03\x04"
    with pytest.raises(ModelFileError, match=r"^model\.safetensors is not a safetensors model file "
                                             r"\(implausible header size \d+\)$"):
        load_model(path)
    with pytest.raises(ModelFileError, match=r"^model\.safetensors is not a safetensors model file$"):
        read_description(path)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_pickle_is_refused(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "weights.safetensors"
    state = {k: v.tolist() for k, v in build_model(CFG).state_dict().items()}
    path.write_bytes(pickle.dumps(state, protocol=protocol))
    with pytest.raises(ModelFileError, match=r"^weights\.safetensors is not a safetensors model file "
                                             r"\(implausible header size \d+\)$"):
        load_model(path)
    with pytest.raises(ModelFileError, match=r"^weights\.safetensors is not a safetensors model file$"):
        read_description(path)


def test_refused_pickles_are_never_unpickled(tmp_path: Path) -> None:
    # the payload works: unpickling it creates its marker
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_TouchOnUnpickle(control)))
    assert control.exists()
    writers = {
        "torch-save.safetensors": lambda p, m: torch.save(_state(m), p),
        "pickle.safetensors": lambda p, m: p.write_bytes(pickle.dumps(_state(m))),
        "pickle.pt": lambda p, m: p.write_bytes(pickle.dumps(_state(m))),
    }
    for name, write in writers.items():
        marker = tmp_path / f"{name}.unpickled"
        path = tmp_path / name
        write(path, marker)
        write_sha256_file(path)  # as if bundled with its hash: the hash passes, the format not
        for load in (load_model, read_description, lambda p: load_bundled_model("cpu", p)):
            with pytest.raises(ModelFileError, match="is not a safetensors model file"):
                load(path)
        assert not marker.exists(), f"{name} was unpickled"


_PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve"}
_PICKLE_LOADERS = {"torch.load", "torch.serialization.load", "torch.hub.load",
                   "torch.hub.load_state_dict_from_url", "torch.utils.model_zoo.load_url"}


def _pickle_loads_in(source: str) -> list[str]:
    """Every way ``source`` could unpickle: pickle-family imports, torch's pickle loaders (as
    called or referenced, through import aliases) and ``np.load(..., allow_pickle=True)``."""
    tree = ast.parse(source)
    alias: dict[str, str] = {}
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                alias[(a.asname or a.name).split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
                if a.name.split(".")[0] in _PICKLE_MODULES:
                    found.append(f"line {node.lineno}: import {a.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in _PICKLE_MODULES:
                found.append(f"line {node.lineno}: from {node.module} import")
            for a in node.names:
                alias[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute | ast.Name):
            parts: list[str] = []
            cur: ast.expr = node
            while isinstance(cur, ast.Attribute):
                parts.insert(0, cur.attr)
                cur = cur.value
            if not isinstance(cur, ast.Name):
                continue
            dotted = ".".join([alias.get(cur.id, cur.id), *parts])
            if dotted in _PICKLE_LOADERS and (isinstance(node, ast.Attribute) or cur.id in alias):
                found.append(f"line {node.lineno}: {dotted}")
        if isinstance(node, ast.Call) and any(
                k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                for k in node.keywords):
            found.append(f"line {node.lineno}: allow_pickle")
    return found


def test_guard_finds_every_way_to_unpickle() -> None:
    bad = [
        "import torch\ntorch.load('m.pt')",
        "import torch\nload = torch.load",
        "import torch as t\nt.load('m.pt', weights_only=True)",
        "from torch import load\nload('m.pt')",
        "from torch import load as tl\ntl('m.pt')",
        "import torch.serialization\ntorch.serialization.load('m.pt')",
        "from torch.hub import load_state_dict_from_url as f\nf('http://x')",
        "import torch\ntorch.hub.load_state_dict_from_url('http://x')",
        "import pickle\npickle.load(open('m', 'rb'))",
        "from pickle import loads",
        "import joblib",
        "import numpy as np\nnp.load('a.npy', allow_pickle=True)",
    ]
    for source in bad:
        assert _pickle_loads_in(source), source
    fine = "import numpy as np\nimport torch\nnp.load('a.npz', allow_pickle=False)\ntorch.nn.Linear(2, 2)\n" \
           "from safetensors.torch import load\nload(b'')\n'''torch.load is never used'''"
    assert _pickle_loads_in(fine) == []


def test_app_never_unpickles() -> None:  # RELIABILITY 16
    app_dir = Path(__file__).resolve().parents[1] / "app"
    files = sorted(app_dir.rglob("*.py"))
    assert len(files) > 50 and app_dir / "inference" / "weights.py" in files
    found = [f"{p.relative_to(app_dir.parent)} {hit}"
             for p in files for hit in _pickle_loads_in(p.read_text(encoding="utf-8"))]
    assert found == []
