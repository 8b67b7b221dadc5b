"""The lesion head (not the paper's): segmentation, lesion-masked pooling, lesion-weighted
aggregation, its loss, and the phantom initialisation of a site's model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from app.inference.config import ConfigError, ModelConfig
from app.inference.model import build_model, connected_to_liver, fold_batchnorm
from app.inference.result import RESPONDER, aggregate, majority_vote
from app.training.lesion_loss import lesion_loss

pytestmark = pytest.mark.usefixtures("torch_one_thread")
CFG = ModelConfig(backbone="small", input_size=32, extra_channels=16, hidden=16, dropout=0.0,
                  shared_trunk=True, head="lesion", aggregation="lesion_weighted")


def _batch(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Slices with a bright disc (the 'lesion', class 2) inside a mid-grey square (the 'liver',
    class 1) on some rows; ground truth in SEG_CLASSES codes for every phase."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 3, 1, 32, 32), 0.1)
    seg = torch.zeros((n, 3, 32, 32), dtype=torch.uint8)
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    for i in range(n):
        x[i, :, 0, 6:26, 6:26] = 0.5
        seg[i, :, 6:26, 6:26] = 1
        if i % 2 == 0:
            cy, cx = (int(v) for v in torch.randint(10, 22, (2,), generator=g))
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= 9
            x[i, 1, 0][disc] = 0.9  # arterial enhancement
            seg[i, :, disc] = 2
    return x, seg


def test_config_needs_the_lesion_head_for_lesion_weighting() -> None:
    with pytest.raises(ConfigError, match="lesion_weighted"):
        ModelConfig(aggregation="lesion_weighted")
    with pytest.raises(ConfigError, match="unknown head"):
        ModelConfig(head="magic")
    assert ModelConfig.from_dict(CFG.to_dict()) == CFG


def test_outputs_and_folding() -> None:
    torch.manual_seed(0)
    model = build_model(CFG).eval()
    x, _ = _batch(4)
    out = model(x, details=True)
    assert out.logits.shape == (4, 2) and out.seg_logits.shape == (4, 4, 8, 8)
    assert out.lesion_area.shape == (4,) and bool((out.lesion_area >= 0).all())
    assert torch.equal(model(x), out.logits)
    fold_batchnorm(model)
    torch.testing.assert_close(model(x), out.logits, atol=1e-5, rtol=1e-4)
    assert set(model.pathway_layers()) == set(CFG.phases)
    assert all(type(m).__name__ == "LesionGate" for m in model.pathway_layers().values())


def _liver_with_blobs() -> tuple[torch.Tensor, torch.Tensor]:
    """Feature-grid probabilities ``[2, 8, 8]``: slice 0 has a liver (rows 1-4, cols 1-4) with
    a tumour inside (2, 2), a tumour on its edge running out of it (rows 2-3, cols 4-5) and a
    tumour-like blob apart from it (rows 6-7, cols 6-7); slice 1 has the blob but no liver."""
    liver = torch.zeros(2, 8, 8)
    lesion = torch.zeros(2, 8, 8)
    liver[0, 1:5, 1:5] = 0.9
    for y, x in _TUMOUR_IN_LIVER:
        liver[0, y, x], lesion[0, y, x] = 0.05, 0.9
    lesion[:, 6:8, 6:8] = 0.9
    return liver, lesion


_TUMOUR_IN_LIVER = [(2, 2), (2, 4), (3, 4), (2, 5), (3, 5)]


def test_the_liver_gate_keeps_tumour_connected_to_the_liver_only() -> None:
    liver, lesion = _liver_with_blobs()
    gate = connected_to_liver(liver, lesion)
    assert gate.shape == (2, 8, 8) and set(gate.unique().tolist()) <= {0.0, 1.0}
    assert all(gate[0, y, x] == 1 for y, x in _TUMOUR_IN_LIVER)  # inside and on the edge
    assert gate[0, 6, 7] == 0 and gate[0, 0, 0] == 1  # the blob apart is cut; one cell of margin
    assert float(gate[1].sum()) == 0.0  # no liver on the slice: no tumour either


def test_a_gated_model_neither_pools_nor_measures_nor_weighs_blobs_outside_the_liver() -> None:
    """Same weights and the same segmentation, with and without the gate: the gated network's
    tumour area, tumour measures and lesion-masked maps (what Grad-CAM explains) leave out the
    blob apart from the liver."""
    liver, lesion = _liver_with_blobs()
    probs = torch.stack([1 - liver - lesion, liver, lesion, torch.zeros_like(liver)], dim=1)
    seg_logits = torch.log(probs.clamp_min(1e-7))

    class FixedSegmentation(torch.nn.Module):
        def forward(self, _: torch.Tensor) -> torch.Tensor:
            return seg_logits

    x = torch.rand(2, 3, 1, 32, 32)
    outs, maps = {}, {}
    for gated in (False, True):
        torch.manual_seed(0)
        model = build_model(dataclasses.replace(CFG, liver_gate=gated)).eval()
        model.seg = FixedSegmentation()
        layer = model.pathway_layers()["arterial"]
        handle = layer.register_forward_hook(lambda _m, _i, out, g=gated: maps.__setitem__(g, out))
        with torch.no_grad():
            outs[gated] = model(x, details=True)
        handle.remove()
    assert outs[True].liver_gate is not None and outs[False].liver_gate is None
    cell = 16.0  # input pixels per cell of the small trunk (stride 4)
    assert float(outs[False].lesion_area[1]) == pytest.approx(4 * 0.9 * cell, rel=1e-3)
    assert float(outs[True].lesion_area[1]) == 0.0  # the blob alone no longer makes a tumour slice
    assert float(outs[False].lesion_area[0] - outs[True].lesion_area[0]) == pytest.approx(4 * 0.9 * cell, rel=1e-3)
    n_lesion = 2 * len(CFG.phases)  # the measures' lesion pixel count
    assert float(outs[False].measures[1, n_lesion]) > 0 and float(outs[True].measures[1, n_lesion]) == 0.0
    assert float(outs[True].measures[0, n_lesion]) < float(outs[False].measures[0, n_lesion])
    assert float(maps[False][0, :, 6, 7].abs().sum()) > 0 and float(maps[True][0, :, 6, 7].abs().sum()) == 0.0
    assert torch.equal(maps[False][0, :, 2, 2], maps[True][0, :, 2, 2])  # the tumour in the liver is untouched


def test_the_liver_gate_is_recorded_and_needs_the_lesion_head() -> None:
    gated = dataclasses.replace(CFG, liver_gate=True)
    assert ModelConfig.from_dict(gated.to_dict()) == gated and gated.to_dict()["liver_gate"] is True
    assert "liver_gate" not in CFG.to_dict()  # ungated files read the same in older versions
    with pytest.raises(ConfigError, match="liver_gate"):
        ModelConfig(liver_gate=True)


def test_the_loss_teaches_segmentation_and_response() -> None:
    """A few hundred steps on planted discs: the segmentation finds them and the response
    follows the disc (the target here is 'a disc is present')."""
    torch.manual_seed(1)
    model = build_model(CFG)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, seg = _batch(16)
    target = torch.tensor([1 if i % 2 == 0 else 0 for i in range(16)])
    first = None
    for _ in range(80):
        out = model(x, details=True)
        loss = lesion_loss(out, target, seg, None, 1.0)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first
    model.eval()
    with torch.no_grad():
        out = model(x, details=True)
    area = out.lesion_area.numpy()
    assert area[::2].min() > 2 * max(area[1::2].max(), 1.0)  # discs seen where they are
    pred = out.seg_logits.argmax(1)
    assert (pred[0] == 2).any() and not (pred[1] == 2).any()


def test_gradcam_heat_lies_under_the_lesion_mask() -> None:
    from app.inference.arrays import study_from_arrays
    from app.inference.gradcam import gradcam_study
    from app.inference.weights import wrap_model

    torch.manual_seed(2)
    model = build_model(CFG)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, seg = _batch(16, seed=3)
    target = torch.tensor([1 if i % 2 == 0 else 0 for i in range(16)])
    for _ in range(80):
        loss = lesion_loss(model(x, details=True), target, seg, None, 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    loaded = wrap_model(model)
    loaded.model.requires_grad_(False)
    hu = {p: (x[:4, j, 0].numpy() * 400.0 - 200.0) for j, p in enumerate(CFG.phases)}
    study = study_from_arrays(hu)
    cams = gradcam_study(loaded, study)
    heat = cams.maps["arterial"]
    lesion = seg[:4, 1].numpy() == 2
    inside = heat[lesion].sum() / max(heat.sum(), 1e-9)
    assert inside > 3 * lesion.mean()  # concentrated on the planted lesions
    assert heat[1].max() < 0.2 and heat[3].max() < 0.2  # slices without lesion stay cold

    # only the slices that took part in the decision are shown, and they set the scale
    from app.inference.predictor import predict

    res = predict(study, loaded)
    assert cams.shown == [s.votes for s in res.slices]
    assert cams.lesion_areas == pytest.approx([s.lesion_area for s in res.slices], rel=1e-4)
    assert cams.lesion_areas[0] > cams.lesion_areas[1] and cams.lesion_areas[2] > cams.lesion_areas[3]
    shown_max = max(float(cams.maps[p][k].max()) for p in cams.maps for k, on in enumerate(cams.shown) if on)
    assert shown_max == pytest.approx(1.0)
    assert all(float(cams.maps[p][k].max()) == 0.0 for p in cams.maps for k, on in enumerate(cams.shown) if not on)


def test_maps_of_slices_that_did_not_vote_are_hidden_and_do_not_set_the_scale() -> None:
    from app.inference.gradcam import hide_unused, shown_slices
    from app.inference.weights import wrap_model

    loaded = wrap_model(build_model(CFG))
    # the model saw tumour on slices 1 and 2 only (areas below a quarter of the largest elsewhere)
    assert shown_slices(loaded, [0.5] * 4, [2.0, 40.0, 30.0, 9.0]) == [False, True, True, False]
    assert shown_slices(loaded, [0.5] * 4, None) == [True] * 4  # no lesion head: all vote
    paper = wrap_model(build_model(ModelConfig(backbone="tiny", input_size=32)))
    assert shown_slices(paper, [0.5] * 4, [2.0, 40.0, 30.0, 9.0]) == [True] * 4  # the paper's vote
    maps = {"arterial": np.array([[[5.0]], [[0.4]], [[0.8]], [[3.0]]]), "portal": np.full((4, 1, 1), 0.1)}
    scale = hide_unused(maps, [False, True, True, False])
    assert scale == pytest.approx(0.8)  # the bright maps of slices 0 and 3 no longer set it
    assert maps["arterial"][:, 0, 0].tolist() == [0.0, 0.4, 0.8, 0.0] and maps["portal"][0, 0, 0] == 0.0


def test_lesion_weighted_aggregation() -> None:
    probs = [0.2, 0.9, 0.8, 0.3, 0.1]
    areas = [0.0, 40.0, 30.0, 5.0, 0.0]
    agg = aggregate(probs, areas, "lesion_weighted")
    assert agg.voting == (False, True, True, False, False)
    assert agg.vote.label == RESPONDER and (agg.vote.responder_votes, agg.vote.total_votes) == (2, 2)
    assert agg.vote.mean_probability == pytest.approx((0.9 * 40 + 0.8 * 30 + 0.3 * 5) / 75)
    assert majority_vote(probs).label != RESPONDER  # the paper's vote over all slices differs
    none = aggregate(probs, [0.0] * 5, "lesion_weighted")
    assert none.rule == "vote" and "no tumour" in none.note
    assert aggregate(probs).vote == majority_vote(probs)
    with pytest.raises(ValueError):
        aggregate(probs, [1.0], "lesion_weighted")


def test_predict_reports_lesion_areas_and_voting_slices() -> None:
    from app.inference.arrays import study_from_arrays
    from app.inference.predictor import predict
    from app.inference.weights import wrap_model

    torch.manual_seed(3)
    loaded = wrap_model(build_model(CFG))
    x, _ = _batch(5)
    hu = {p: (x[:, j, 0].numpy() * 400.0 - 200.0) for j, p in enumerate(CFG.phases)}
    res = predict(study_from_arrays(hu), loaded)
    assert all(s.lesion_area is not None and s.lesion_area >= 0 for s in res.slices)
    assert res.total_votes == sum(s.votes for s in res.slices) or any("no tumour" in w for w in res.warnings)
    weights = np.array([s.lesion_area for s in res.slices])
    if weights.sum() >= 4:
        expected = float((weights * [s.probability for s in res.slices]).sum() / weights.sum())
        assert res.mean_probability == pytest.approx(expected, rel=1e-5)


def test_phantom_init_copies_the_trunk_by_phase(tmp_path) -> None:
    from app.inference.weights import (
        WEIGHTS_SYNTHETIC,
        ModelDescription,
        save_model,
        write_sha256_file,
    )
    from app.training.phantom_init import PhantomInitError, load_phantom_init

    torch.manual_seed(4)
    source = build_model(CFG)
    for m in source.modules():  # distinct BN statistics per phase, to see the mapping
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
    path = tmp_path / "demo.safetensors"
    save_model(source, CFG, ModelDescription(name="demo", version="1", weights_kind=WEIGHTS_SYNTHETIC,
                                             architecture=CFG.to_dict()), path)
    write_sha256_file(path)
    portal_only = ModelConfig(**{**CFG.to_dict(), "phases": ("portal",), "aggregation": "vote",
                                 "window": tuple(CFG.window)})
    target = build_model(portal_only)
    info = load_phantom_init(target, path)
    assert info.tensors > 0
    src, dst = source.state_dict(), target.state_dict()
    bn_src = [k for k in src if ".bns.2." in k and k.endswith("running_mean")][0]
    torch.testing.assert_close(dst[bn_src.replace(".bns.2.", ".")], src[bn_src])  # plain BN
    torch.testing.assert_close(dst["extras.0.0.weight"], src["extras.2.0.weight"])
    other = build_model(ModelConfig(backbone="tiny", input_size=32, extra_channels=16, hidden=16))
    with pytest.raises(PhantomInitError, match="backbone"):
        load_phantom_init(other, path)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(PhantomInitError, match="changed"):
        load_phantom_init(build_model(CFG), path)


def test_threshold_is_chosen_for_a_balanced_patient_call() -> None:
    """Calibrated probabilities around a 30 % response rate: at 0.5 every patient is a
    non-responder; the chosen threshold separates them, and predict-style calls follow it."""
    from app.training.evaluate import ScoredCohort
    from app.training.threshold import choose_threshold

    rng = np.random.default_rng(0)
    labels = np.array([1] * 30 + [0] * 70)
    groups, probs = [], []
    for i, y in enumerate(labels):
        centre = 0.38 if y else 0.22
        probs += list(np.clip(rng.normal(centre, 0.05, 6), 0.01, 0.99))
        groups += [i] * 6
    scored = ScoredCohort([f"p{i}" for i in range(100)], labels, np.array(probs), np.array(groups))
    assert scored.patient_call.sum() == 0  # the paper's 0.5: nobody responds
    choice = choose_threshold(scored, "test patients")
    assert 0.22 < choice.threshold < 0.38
    assert min(choice.sensitivity, choice.specificity) > 0.8
    from dataclasses import replace

    calls = replace(scored, threshold=choice.threshold).patient_call
    assert calls[:30].mean() > 0.8 and calls[30:].mean() < 0.2
    with pytest.raises(ValueError):
        choose_threshold(ScoredCohort(["a"], np.array([1]), np.array([0.3]), np.array([0])), "x")
    assert majority_vote([0.3, 0.35, 0.1], threshold=0.25).label == RESPONDER
    with pytest.raises(ConfigError, match="threshold"):
        ModelConfig(threshold=1.5)


def test_a_lesion_models_study_scale_is_robust_to_one_bright_slice() -> None:
    """The tumour's edge slice peaked 6-7x its centre on the demo study, whose heat then fell
    below the overlay's transparency: the scale of a lesion-head model is the 90th percentile of
    the shown maps' peaks (stronger heat clipped), the paper's model keeps the maximum."""
    from app.inference.gradcam import DISPLAY_SCALE_PERCENTILE, display_scale

    peaks = [1.0, 0.15, 0.14, 0.15, 0.16, 0.2, 0.18, 0.14, 0.15, 0.17, 3.0]
    maps = {"arterial": np.array(peaks, dtype=np.float32)[:, None, None] * np.ones((1, 4, 4), np.float32)}
    shown = [True] * 10 + [False]  # the last slice did not vote: neither max nor percentile sees it
    assert display_scale(maps, shown, robust=False) == pytest.approx(1.0)
    robust = display_scale(maps, shown, robust=True)
    assert robust == pytest.approx(float(np.percentile(peaks[:10], DISPLAY_SCALE_PERCENTILE)))
    assert 0.15 / robust > 0.3  # the centre slices' heat is now well inside the visible ramp
    assert display_scale({"arterial": np.zeros((2, 3, 3))}, [True, True], robust=True) == 0.0
