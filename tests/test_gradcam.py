"""Grad-CAM: it points at a planted bright square the model learned to detect, it is mapped
onto the original slice geometry, normalised once per study, and its hooks are always removed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from app.errors import Cancelled
from app.inference.arrays import study_from_arrays
from app.inference.config import BACKBONES, ModelConfig
from app.inference.gradcam import (
    CamHooks,
    export_overlays,
    gradcam_slice,
    gradcam_study,
    overlay_rgb,
    write_png,
)
from app.inference.model import FEATURE_GEOMETRY, build_model
from app.inference.preprocess import preprocess_slices
from app.inference.weights import LoadedModel, wrap_model
from app.progress import ProgressState

torch.set_num_threads(2)


pytestmark = pytest.mark.usefixtures("torch_one_thread")
SIZE = 64
SQ = 14  # side of the planted square (pixels)
# two pathways keep the training fixture cheap; the signal sits in one, the other sees noise
CFG = ModelConfig(backbone="tiny", input_size=SIZE, phases=("arterial", "portal"), extra_channels=32,
                  hidden=32, dropout=0.0)
SIGNAL = "arterial"


def _slices(n: int, squares: list[tuple[int, int] | None], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Soft tissue with noise in every phase; a bright square (300 HU) in the arterial phase of
    the slices that have one (``squares[k]`` = top-left corner, or None)."""
    out = {p: rng.normal(40.0, 40.0, (n, SIZE, SIZE)).astype(np.float32) for p in CFG.phases}
    for k, pos in enumerate(squares):
        if pos is not None:
            r, c = pos
            out[SIGNAL][k, r : r + SQ, c : c + SQ] = 300.0
    return out


def _random_positions(n: int, rng: np.random.Generator) -> list[tuple[int, int] | None]:
    return [tuple(rng.integers(0, SIZE - SQ, 2)) if rng.random() < 0.5 else None for _ in range(n)]


@pytest.fixture(scope="module")
def square_detector() -> LoadedModel:
    """A tiny model trained until it tells slices with the square from slices without."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see torch_one_thread; this fixture is set up before it
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build_model(CFG)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(30):
        pos = _random_positions(16, rng)
        arrays = _slices(16, pos, rng)
        x = torch.stack([preprocess_slices(arrays[p], CFG) for p in CFG.phases], dim=1)
        y = torch.tensor([p is not None for p in pos], dtype=torch.long)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    loaded = wrap_model(model)
    loaded.model.requires_grad_(False)  # as load_model leaves it
    return loaded


def _test_study(rng: np.random.Generator):
    squares: list[tuple[int, int] | None] = [(8, 40), None, (40, 10), (24, 24), None]
    return study_from_arrays(_slices(len(squares), squares, rng)), squares


def test_cam_peaks_inside_the_planted_square(square_detector: LoadedModel) -> None:
    study, squares = _test_study(np.random.default_rng(5))
    cams = gradcam_study(square_detector, study, keep_raw=True)
    assert cams.maps[SIGNAL].shape == (5, SIZE, SIZE)
    hits = 0
    for k, pos in enumerate(squares):
        if pos is None:
            continue
        assert cams.probabilities[k] > 0.5  # the model did learn the square
        m = cams.maps[SIGNAL][k]
        r, c = np.unravel_index(int(np.argmax(m)), m.shape)
        # the tiny trunk's cells are 8 px apart and see 31 px: a detector of the square may fire
        # on the cell next to it, so the peak may lie up to one cell outside the square
        margin = 8
        inside = pos[0] - margin <= r < pos[0] + SQ + margin and pos[1] - margin <= c < pos[1] + SQ + margin
        hits += inside
        square = np.zeros_like(m, dtype=bool)
        square[pos[0] : pos[0] + SQ, pos[1] : pos[1] + SQ] = True
        assert m[square].mean() > 2.0 * m[~square].mean()
    assert hits == 3
    # slices without a square are explained with less heat in the arterial pathway
    with_sq = [cams.maps[SIGNAL][k].max() for k, p in enumerate(squares) if p is not None]
    without = [cams.maps[SIGNAL][k].max() for k, p in enumerate(squares) if p is None]
    assert min(with_sq) > max(without)


def test_one_normalisation_per_study(square_detector: LoadedModel) -> None:
    study, _ = _test_study(np.random.default_rng(6))
    cams = gradcam_study(square_detector, study, keep_raw=True, batch_size=2)
    assert cams.raw is not None
    peak = max(float(a.max()) for a in cams.maps.values())
    assert peak == pytest.approx(1.0)
    assert cams.scale == cams.global_max == pytest.approx(max(float(a.max()) for a in cams.raw.values()))
    for p in cams.phases:
        np.testing.assert_allclose(cams.maps[p], np.clip(cams.raw[p] / cams.global_max, 0, 1), rtol=1e-5, atol=1e-6)
    # per-slice maxima differ: slices were NOT each stretched to 1
    per_slice = [cams.maps[SIGNAL][k].max() for k in range(5)]
    assert min(per_slice) < 0.9


def test_viewed_slice_matches_the_study_computation(square_detector: LoadedModel) -> None:
    study, _ = _test_study(np.random.default_rng(7))
    whole = gradcam_study(square_detector, study)
    one = gradcam_slice(square_detector, study, 3, scale=whole.global_max)
    assert one.pair_indices == [3]
    for p in whole.phases:
        np.testing.assert_allclose(one.maps[p][0], whole.map_for(p, 3), rtol=1e-4, atol=1e-5)
    own = gradcam_slice(square_detector, study, 3)
    assert own.scale == pytest.approx(own.global_max)
    assert max(float(a.max()) for a in own.maps.values()) == pytest.approx(1.0)


def test_predicted_target_explains_each_slices_own_class(square_detector: LoadedModel) -> None:
    study, squares = _test_study(np.random.default_rng(8))
    cams = gradcam_study(square_detector, study, target="predicted")
    expected = ["responder" if p > 0.5 else "non-responder" for p in cams.probabilities]
    assert cams.explained_class == expected
    assert set(expected) == {"responder", "non-responder"}
    resp = gradcam_study(square_detector, study, target="non-responder")
    assert resp.explained_class == ["non-responder"] * len(squares)
    with pytest.raises(ValueError, match="target"):
        gradcam_study(square_detector, study, target="both")  # type: ignore[arg-type]


def test_maps_follow_the_original_geometry_with_a_crop() -> None:
    """Different slice sizes per phase and a body crop: each map has its phase's slice size
    and is zero outside the cropped box."""
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="tiny", input_size=32, phases=("arterial", "portal"), crop="body",
                      extra_channels=16)
    rng = np.random.default_rng(0)
    art = np.full((2, 80, 96), -1000.0, np.float32)
    art[:, 20:60, 30:70] = rng.normal(40, 30, (2, 40, 40))
    por = np.full((2, 64, 64), -1000.0, np.float32)
    por[:, 10:50, 12:52] = rng.normal(60, 30, (2, 40, 40))
    study = study_from_arrays({"arterial": art, "portal": por})
    cams = gradcam_study(wrap_model(build_model(cfg)), study)
    assert cams.maps["arterial"].shape == (2, 80, 96)
    assert cams.maps["portal"].shape == (2, 64, 64)
    assert float(cams.maps["arterial"][:, :, :25].max()) == 0.0  # left of the body box


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks)
               for m in model.modules())


def test_hooks_are_removed_after_use_and_after_errors(square_detector: LoadedModel) -> None:
    model = square_detector.model
    assert _hook_count(model) == 0
    study, _ = _test_study(np.random.default_rng(9))
    gradcam_slice(square_detector, study, 0)
    gradcam_study(square_detector, study)
    assert _hook_count(model) == 0
    with pytest.raises(RuntimeError, match="boom"), CamHooks(model):
        assert _hook_count(model) == CFG.n_phases
        raise RuntimeError("boom")
    assert _hook_count(model) == 0
    state = ProgressState(min_step=0.0)
    state.cancel()
    with pytest.raises(Cancelled):
        gradcam_study(square_detector, study, progress=state)
    assert _hook_count(model) == 0
    # an ordinary forward pass afterwards is not detached or captured
    x = torch.rand(1, CFG.n_phases, 1, SIZE, SIZE)
    with torch.inference_mode():
        model(x)
    assert _hook_count(model) == 0


def test_overlay_and_png(tmp_path) -> None:
    hu = np.linspace(-300, 300, 64 * 64, dtype=np.float32).reshape(64, 64)
    zero = overlay_rgb(hu, np.zeros((64, 64), np.float32))
    grey = np.round(np.clip((hu + 200) / 400, 0, 1) * 255)
    np.testing.assert_array_equal(zero[..., 0], grey.astype(np.uint8))
    assert (zero[..., 0] == zero[..., 2]).all()  # no tint where the map is zero
    full = overlay_rgb(hu, np.ones((64, 64), np.float32), opacity=1.0, colormap="jet")
    np.testing.assert_array_equal(full[0, 0], [128, 0, 0])  # jet at 1.0 is dark red (RGB)
    with pytest.raises(ValueError):
        overlay_rgb(hu, np.zeros((32, 32)))
    import cv2

    path = tmp_path / "cam.png"
    write_png(path, full)
    back = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, full)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_feature_geometry_matches_the_trunks(backbone: str) -> None:
    """Measure where a trunk's feature cell is centred: with positive constant weights (max-pools
    swapped for average pools of the same geometry) the input gradient of cell i is symmetric
    about its receptive field's centre. The input is sized so that the table's centre is the
    image's centre; a wrong table entry pulls the measured centroid away (checked: a ResNet
    measured under the plain-resize assumption gives 38.0 instead of 47.5)."""
    import copy

    stride, offset = FEATURE_GEOMETRY[backbone]
    i = 1
    size = int(round(2 * (stride * i + offset) + 1))
    trunk = copy.deepcopy(build_model(ModelConfig(backbone=backbone, phases=("portal",))).trunks[0]).eval()
    for mod in list(trunk.modules()):
        for name, child in list(mod.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(mod, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding))
    for mod in trunk.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.constant_(mod.weight, 1.0 / mod.weight[0].numel())
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
        elif isinstance(mod, nn.BatchNorm2d):
            mod.reset_running_stats()
            nn.init.ones_(mod.weight)
            nn.init.zeros_(mod.bias)
    trunk.requires_grad_(False)
    x = torch.ones(1, 1, size, size, requires_grad=True)
    y = trunk(x)
    assert y.shape[-1] == 2 * i + 1
    y[0, :, i, i].sum().backward()
    assert x.grad is not None
    g = x.grad[0, 0].abs().double()
    idx = torch.arange(size, dtype=torch.float64)
    cy = float((g.sum(1) * idx).sum() / g.sum())
    cx = float((g.sum(0) * idx).sum() / g.sum())
    assert cy == pytest.approx(stride * i + offset, abs=0.25)
    assert cx == pytest.approx(stride * i + offset, abs=0.25)


def test_export_overlays_writes_one_png_per_slice_and_phase(square_detector: LoadedModel, tmp_path) -> None:
    import cv2

    study, _ = _test_study(np.random.default_rng(10))
    cams = gradcam_study(square_detector, study, pair_indices=[0, 2])
    paths = export_overlays(study, cams, tmp_path / "cams")
    assert [p.name for p in paths] == [
        "pair000_z-100.0_arterial.png", "pair000_z-100.0_portal.png",
        "pair002_z-90.0_arterial.png", "pair002_z-90.0_portal.png"]
    img = cv2.imread(str(paths[0]))
    assert img.shape == (SIZE, SIZE, 3)


def test_gpu_failure_during_gradcam_continues_on_cpu_and_says_so(square_detector: LoadedModel) -> None:
    from app.inference.device import DeviceChoice

    study, _ = _test_study(np.random.default_rng(11))
    reference = gradcam_slice(square_detector, study, 0)
    before = square_detector.device_choice
    square_detector.device_choice = DeviceChoice(torch.device("cuda"), "cuda", "pretend GPU")
    try:
        cams = gradcam_slice(square_detector, study, 0)
    finally:  # the fixture is shared: leave it as it was
        square_detector.device_choice = before
        square_detector.model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    assert cams.device == "cpu" and any("CUDA failed during Grad-CAM" in w for w in cams.warnings)
    np.testing.assert_allclose(cams.maps[SIGNAL], reference.maps[SIGNAL], rtol=1e-4, atol=1e-5)


def test_model_in_training_mode_is_refused() -> None:
    loaded = wrap_model(build_model(CFG))
    loaded.model.train()
    study, _ = _test_study(np.random.default_rng(12))
    with pytest.raises(ValueError, match="eval mode"):
        gradcam_slice(loaded, study, 0)
