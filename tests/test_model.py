"""The multi-pathway network: every configuration builds and runs, the shared trunk is small,
grey first convolutions are exact, ImageNet initialisation comes only from local files, and a
tiny model learns a task whose signal sits in one phase only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from app.inference.config import (
    BACKBONES,
    PHASE_COMBINATIONS,
    ConfigError,
    ModelConfig,
)
from app.inference.model import (
    ImageNetInitError,
    PhaseBatchNorm2d,
    _grey_conv,
    build_model,
    count_parameters,
    fold_batchnorm,
    load_imagenet_init,
    torchvision_cache_file,
)

torch.set_num_threads(2)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.mark.parametrize("phases", PHASE_COMBINATIONS)
@pytest.mark.parametrize("shared", [False, True])
def test_every_phase_combination_gives_two_logits(phases: tuple[str, ...], shared: bool) -> None:
    # ResNet-18 for the shared variant (the shipped one); separate ResNet-18 pathways are built in
    # the backbone and parameter tests, here the tiny trunk keeps 7 x 3 trunk builds cheap
    cfg = ModelConfig(phases=phases, backbone="resnet18" if shared else "tiny", shared_trunk=shared,
                      input_size=64, attention=len(phases) != 2)  # attention on and off both covered
    model = build_model(cfg).eval()
    assert tuple(model.pathway_layers()) == phases
    assert len(model.trunks) == (1 if shared else len(phases))
    x = torch.rand(3, len(phases), 1, 64, 64)
    with torch.inference_mode():
        y = model(x)
    assert y.shape == (3, 2)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_builds_and_runs(backbone: str) -> None:
    cfg = ModelConfig(backbone=backbone, input_size=64)
    model = build_model(cfg).eval()
    with torch.inference_mode():
        maps = model.pathway_maps(torch.rand(2, 3, 1, 64, 64))
        y = model.head_from_maps(maps)
    assert y.shape == (2, 2)
    assert [m.shape[:2] for m in maps] == [(2, cfg.extra_channels)] * 3
    # the first convolution takes ONE grey channel
    first = next(m for m in model.trunks[0].modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == 1


def test_wrong_input_layout_is_refused() -> None:
    model = build_model(ModelConfig(backbone="tiny", phases=("arterial", "portal"), input_size=32))
    with pytest.raises(ValueError, match="arterial"):
        model(torch.rand(2, 3, 1, 32, 32))  # three phases for a two-phase model
    with pytest.raises(ValueError):
        model(torch.rand(2, 2, 32, 32))


def test_shared_trunk_has_about_a_third_of_the_parameters() -> None:
    separate = count_parameters(build_model(ModelConfig(shared_trunk=False)))
    shared = count_parameters(build_model(ModelConfig(shared_trunk=True)))
    assert 0.30 < shared / separate < 0.38, (shared, separate)
    # and fp16 storage of the shared model fits the 30 MB budget of the shipped file
    assert shared * 2 < 30e6


def test_attention_off_has_no_attention_parameters() -> None:
    on = build_model(ModelConfig(backbone="tiny", attention=True))
    off = build_model(ModelConfig(backbone="tiny", attention=False))
    assert any(n.startswith("attn.") for n, _ in on.named_parameters())
    assert not any(n.startswith("attn.") or n == "phase_embed" for n, _ in off.named_parameters())


def test_config_canonical_order_round_trip_and_refusals() -> None:
    cfg = ModelConfig(phases=("portal", "plain"), backbone="tiny", window=(350, 40))
    assert cfg.phases == ("plain", "portal")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown phase"):
        ModelConfig(phases=("delayed",))
    with pytest.raises(ConfigError, match="backbone"):
        ModelConfig(backbone="resnet101")
    with pytest.raises(ConfigError, match="at least one phase"):
        ModelConfig(phases=())
    with pytest.raises(ConfigError, match="unknown model configuration key"):
        ModelConfig.from_dict({**cfg.to_dict(), "depth": 3})
    with pytest.raises(ConfigError, match="must divide"):
        ModelConfig(extra_channels=30, attention_heads=4)


def test_grey_conv_equals_replicated_rgb_input() -> None:
    rgb = nn.Conv2d(3, 8, 7, stride=2, padding=3, bias=False)
    grey = _grey_conv(rgb)
    x = torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(grey(x), rgb(x.repeat(1, 3, 1, 1)), rtol=1e-5, atol=1e-5)


def test_phase_batchnorm_keeps_separate_statistics() -> None:
    bn = PhaseBatchNorm2d(3, nn.BatchNorm2d(4))
    x = torch.cat([torch.randn(8, 4, 5, 5) + shift for shift in (0.0, 5.0, -5.0)])
    bn.train()
    bn(x)
    means = [float(b.running_mean.mean()) for b in bn.bns]  # type: ignore[union-attr]
    assert means[1] > means[0] > means[2]


def _tv_resnet18_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    return torchvision.models.resnet18(weights=None).state_dict()


def _convert_pth(src):  # type: ignore[no-untyped-def]
    """Run scripts/convert_imagenet_weights.py on a torchvision-style .pth file."""
    import runpy

    script = Path(__file__).resolve().parents[1] / "scripts" / "convert_imagenet_weights.py"
    return runpy.run_path(str(script))["convert"](src)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize("shared", [False, True])
def test_imagenet_init_from_a_local_file(tmp_path, suffix: str, shared: bool) -> None:
    state = _tv_resnet18_state()
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        # the app refuses the pickle; the conversion script turns it into tensors
        torch.save(state, str(path))
        with pytest.raises(ImageNetInitError, match="pickle"):
            load_imagenet_init(build_model(ModelConfig(phases=("portal",))), path)
        path = _convert_pth(path)
    model = build_model(ModelConfig(shared_trunk=shared, phases=("arterial", "portal")))
    info = load_imagenet_init(model, path)
    assert info.path == path and info.backbone == "resnet18"
    for trunk in model.trunks:
        sd = trunk.state_dict()
        torch.testing.assert_close(sd["0.weight"], state["conv1.weight"].sum(1, keepdim=True))
        torch.testing.assert_close(sd["4.0.conv1.weight"], state["layer1.0.conv1.weight"])
        bn_key = "4.0.bn1.bns.1.running_var" if shared else "4.0.bn1.running_var"
        torch.testing.assert_close(sd[bn_key], state["layer1.0.bn1.running_var"])


def test_imagenet_init_never_downloads(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    model = build_model(ModelConfig(phases=("portal",)))
    expected = torchvision_cache_file("resnet18")
    assert expected is not None and expected.parent == tmp_path / "hub" / "checkpoints"
    with pytest.raises(ImageNetInitError, match="nothing is downloaded"):
        load_imagenet_init(model)
    assert not (tmp_path / "hub").exists()
    # torchvision's pickle in the cache is refused, its converted copy is used
    expected.parent.mkdir(parents=True)
    torch.save(_tv_resnet18_state(), str(expected))
    with pytest.raises(ImageNetInitError, match="convert_imagenet_weights"):
        load_imagenet_init(model)
    converted = _convert_pth(expected)
    assert load_imagenet_init(model).path == converted
    # a file that does not fit the backbone is refused by name
    bad = tmp_path / "bad.safetensors"
    save_file({"conv1.weight": torch.zeros(3, 3)}, str(bad))
    with pytest.raises(ImageNetInitError, match="does not fit"):
        load_imagenet_init(model, bad)
    with pytest.raises(ImageNetInitError, match="no ImageNet weights"):
        load_imagenet_init(build_model(ModelConfig(backbone="tiny")))


# --------------------------------------------------------------------------- learning signal


def _one_phase_task(n: int, signal_phase: int, size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise in every phase; responders carry a bright blob in ONE phase only."""
    x = torch.rand(n, 3, 1, size, size, generator=gen) * 0.5
    y = torch.randint(0, 2, (n,), generator=gen)
    for i in torch.nonzero(y).flatten().tolist():
        r, c = torch.randint(0, size - 8, (2,), generator=gen).tolist()
        x[i, signal_phase, 0, r : r + 8, c : c + 8] = 1.0
    return x, y


@pytest.mark.parametrize("signal_phase", [0, 1, 2])
def test_tiny_model_learns_a_signal_in_any_one_phase(signal_phase: int) -> None:
    torch.manual_seed(signal_phase)
    gen = torch.Generator().manual_seed(100 + signal_phase)
    model = build_model(ModelConfig(backbone="tiny", input_size=32, extra_channels=32, hidden=32))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(60):
        x, y = _one_phase_task(32, signal_phase, 32, gen)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, y = _one_phase_task(200, signal_phase, 32, gen)
    with torch.inference_mode():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.9, acc


@pytest.mark.parametrize("shared", [False, True])
def test_gradient_reaches_every_pathway_and_the_attention(shared: bool) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="tiny", input_size=32, shared_trunk=shared,
                                    extra_channels=16, hidden=16, dropout=0.0))
    model.train()
    x, y = _one_phase_task(8, 1, 32, torch.Generator().manual_seed(1))
    nn.functional.cross_entropy(model(x), y).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or float(p.grad.abs().sum()) == 0.0]
    assert dead == []
    names = {n for n, _ in model.named_parameters()}
    assert {"phase_embed", "attn.in_proj_weight", "attn.out_proj.weight"} <= names
    for i in range(3):
        assert f"extras.{i}.0.weight" in names
        if shared:
            assert f"trunks.0.1.bns.{i}.weight" in names
        else:
            assert f"trunks.{i}.0.weight" in names


@pytest.mark.parametrize(("backbone", "shared"), [("resnet18", False), ("resnet18", True),
                                                   ("mobilenet_v3_small", False), ("tiny", True)])
def test_folding_batchnorm_keeps_the_outputs(backbone: str, shared: bool) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone=backbone, shared_trunk=shared, input_size=32))
    # non-trivial BatchNorm statistics, as after training
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 3, 1, 32, 32) * 2.0)
    model.eval()
    x = torch.rand(2, 3, 1, 32, 32)
    with torch.inference_mode():
        before = model(x)
    n_bn = sum(type(m) is nn.BatchNorm2d for m in model.modules())
    folded = fold_batchnorm(model)
    assert folded > 0 and model.folded
    left = sum(type(m) is nn.BatchNorm2d for m in model.modules())
    assert left == n_bn - folded
    if not shared:
        assert left == 0  # every BN of a separate-trunk network follows a convolution
    with torch.inference_mode():
        after = model(x)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    with pytest.raises(RuntimeError, match="folded"):
        model.train()
