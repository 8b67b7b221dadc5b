"""The predictor: per-slice results in study order, majority vote and tie rule, progress and
cancellation per batch, refusals, and the GPU → smaller batch → CPU fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.errors import Cancelled
from app.inference.arrays import study_from_arrays
from app.inference.config import ModelConfig
from app.inference.device import DeviceChoice
from app.inference.model import MultiPhaseNet, build_model
from app.inference.predictor import predict
from app.inference.preprocess import StudyInputError, preprocess_slices
from app.inference.result import NON_RESPONDER, RESPONDER, TIE_RULE, majority_vote
from app.inference.weights import (
    WEIGHTS_SYNTHETIC,
    ModelDescription,
    create_random_model,
    load_model,
    wrap_model,
)
from app.progress import ProgressState

torch.set_num_threads(2)


pytestmark = pytest.mark.usefixtures("torch_one_thread")
CFG = ModelConfig(backbone="tiny", input_size=32, extra_channels=16, hidden=16)


class BrightnessNet(MultiPhaseNet):
    """Responder logit rises with the mean brightness of the PLAIN phase: a model whose answer
    for each slice is known from the input, so the bookkeeping around it can be checked."""

    calls: list[int]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(int(x.shape[0]))
        m = x.mean(dim=(2, 3, 4))[:, 0]
        return torch.stack([torch.zeros_like(m), 20.0 * (m - 0.5)], dim=1)


def _brightness_model() -> tuple[BrightnessNet, object]:
    net = BrightnessNet(CFG)
    net.calls = []
    desc = ModelDescription(name="bright", version="1", weights_kind=WEIGHTS_SYNTHETIC,
                            architecture=CFG.to_dict())
    return net, wrap_model(net, desc)


def _study(bright: list[bool], size: int = 32):
    """A study whose plain slice k is bright (+150 HU) or dark (−150 HU) as given."""
    n = len(bright)
    plain = np.stack([np.full((size, size), 150.0 if b else -150.0, np.float32) for b in bright])
    rng = np.random.default_rng(0)
    other = {p: rng.normal(40, 30, (n, size, size)).astype(np.float32) for p in ("arterial", "portal")}
    return study_from_arrays({"plain": plain, **other})


def test_vote_rule_and_tie_rule() -> None:
    assert majority_vote([0.2, 0.9, 0.8, 0.7, 0.1]).label == RESPONDER  # the paper's 0,1,1,1,0 → 1
    v = majority_vote([0.9, 0.1, 0.2])
    assert (v.label, v.responder_votes, v.total_votes, v.tie) == (NON_RESPONDER, 1, 3, False)
    tie_r = majority_vote([0.95, 0.3])  # 1:1, mean 0.625
    assert (tie_r.label, tie_r.tie) == (RESPONDER, True)
    tie_n = majority_vote([0.6, 0.1, 0.7, 0.2])  # 2:2, mean 0.4
    assert (tie_n.label, tie_n.tie, tie_n.vote_fraction) == (NON_RESPONDER, True, 0.5)
    assert majority_vote([0.5]).label == NON_RESPONDER  # exactly 0.5 is not a responder
    assert majority_vote([0.5, 0.5]).label == NON_RESPONDER
    with pytest.raises(ValueError):
        majority_vote([])


def test_predict_slices_in_study_order_and_vote() -> None:
    pattern = [False, True, True, False, True]
    net, loaded = _brightness_model()
    res = predict(_study(pattern), loaded, batch_size=2)
    assert [s.label == RESPONDER for s in res.slices] == pattern
    assert (res.label, res.responder_votes, res.total_votes, res.tie) == (RESPONDER, 3, 5, False)
    assert res.vote_fraction == pytest.approx(0.6)
    assert res.mean_probability == pytest.approx(np.mean([s.probability for s in res.slices]))
    assert [s.z_ref for s in res.slices] == sorted(s.z_ref for s in res.slices)
    assert res.slices[1].index_by_phase == {"plain": 1, "arterial": 1, "portal": 1}
    assert net.calls == [2, 2, 1]  # batches of 2
    assert res.tie_rule == TIE_RULE and res.batch_size == 2
    assert set(res.timings) == {"preprocess", "forward", "total"}
    assert res.device == "cpu" and res.precision == "fp32"
    assert res.model_sha256 == loaded.sha256
    assert res.to_dict()["phases"] == ["plain", "arterial", "portal"]
    from app import __version__

    assert res.software_version == __version__
    assert res.warnings == []  # trained weights, clear vote, confirmed study


def test_tie_is_flagged_and_decided_by_mean() -> None:
    _, loaded = _brightness_model()
    res = predict(_study([True, False, True, False]), loaded)
    assert res.tie and res.responder_votes == 2
    # bright slices are far more certain (p≈1) than dark ones are below 0.5 (p≈0), mean ≈ 0.5:
    assert res.label == (RESPONDER if res.mean_probability > 0.5 else NON_RESPONDER)
    assert any("tied" in w for w in res.warnings)


def test_probabilities_equal_the_network_on_independently_preprocessed_slices() -> None:
    torch.manual_seed(1)
    loaded = wrap_model(build_model(CFG))
    study = _study([True, False, True])
    res = predict(study, loaded, batch_size=1)
    x = torch.stack([preprocess_slices(study.volumes[p].hu, CFG) for p in CFG.phases], dim=1)
    with torch.inference_mode():
        expected = torch.softmax(loaded.model(x), 1)[:, 1]
    np.testing.assert_allclose([s.probability for s in res.slices], expected.numpy(), rtol=1e-5, atol=1e-6)
    # batch size does not change the answer (eval-mode BatchNorm)
    res16 = predict(study, loaded, batch_size=16)
    np.testing.assert_allclose([s.probability for s in res16.slices], [s.probability for s in res.slices],
                               rtol=1e-5, atol=1e-6)


def test_random_weights_and_unconfirmed_study_are_said(tmp_path) -> None:
    path = tmp_path / "random.safetensors"
    create_random_model(path, CFG)
    loaded = load_model(path)
    study = _study([True, False, False])
    study.needs_confirmation = True
    study.confirmation_reasons = ["two series claim the arterial phase"]
    res = predict(study, loaded)
    assert any("meaningless" in w for w in res.warnings)
    assert any("two series claim the arterial phase" in w for w in res.warnings)
    assert res.weights_kind.startswith("random")


def test_model_reading_fewer_phases_than_the_study_has() -> None:
    cfg = ModelConfig(backbone="tiny", input_size=32, phases=("arterial", "portal"), extra_channels=16)
    res = predict(_study([True, False, True]), wrap_model(build_model(cfg)))
    assert res.phases == ("arterial", "portal")
    assert set(res.series_uids) == {"arterial", "portal"}
    assert set(res.slices[0].index_by_phase) == {"arterial", "portal"}


def test_studies_the_model_cannot_read_are_refused() -> None:
    _, loaded = _brightness_model()
    rng = np.random.default_rng(0)
    two = study_from_arrays({p: rng.normal(0, 50, (3, 32, 32)) for p in ("plain", "portal")})
    with pytest.raises(StudyInputError, match="no arterial series"):
        predict(two, loaded)
    empty = _study([True, False])
    empty.pairs = []
    with pytest.raises(StudyInputError, match="no paired liver slices"):
        predict(empty, loaded)
    broken = _study([True, False])
    broken.pairs[1].index["portal"] = 7
    with pytest.raises(StudyInputError, match="portal slice 7"):
        predict(broken, loaded)


def test_progress_per_batch_and_cancel_between_batches() -> None:
    net, loaded = _brightness_model()
    seen: list[float] = []
    predict(_study([True] * 6), loaded, progress=ProgressState(lambda f, t: seen.append(f), min_step=0.0),
            batch_size=2)
    assert seen[-1] == 1.0 and seen == sorted(seen)
    assert len({round(f, 3) for f in seen if f > 0.02}) >= 3  # one step per batch

    net.calls.clear()
    state = ProgressState(min_step=0.0)

    def cancel_after_first_batch(fraction: float, text: str) -> None:
        if net.calls:
            state.cancel()

    state._callback = cancel_after_first_batch
    with pytest.raises(Cancelled):
        predict(_study([True] * 6), loaded, progress=state, batch_size=2)
    assert net.calls == [2]  # stopped before the second batch


def test_gpu_out_of_memory_shrinks_batches_then_falls_back_to_cpu(monkeypatch) -> None:
    """The GPU branch with the CPU standing in (real placement and autocast code, nothing
    monkeypatched but the model's memory): out of memory on batches larger than 2, then on
    every batch."""
    from app.inference.device import gpu_branch_on_cpu

    net, loaded = _brightness_model()
    study = _study([True, False, True, True, False, False, True])
    reference = predict(study, loaded)
    limit = {"max": 2}
    real_forward = net.forward

    def oom_forward(x: torch.Tensor) -> torch.Tensor:
        if loaded.device_choice.is_cuda and x.shape[0] > limit["max"]:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(x)

    monkeypatch.setattr(net, "forward", oom_forward)
    loaded.device_choice = gpu_branch_on_cpu()
    res = predict(study, loaded, batch_size=8, precision="fp32")
    assert res.batch_size == 2 and not res.device_fallback
    assert [s.probability for s in res.slices] == [s.probability for s in reference.slices]
    assert any("batch size reduced to 2" in w for w in res.warnings)

    limit["max"] = 0  # out of memory even for one slice: continue on the CPU
    loaded.device_choice = gpu_branch_on_cpu()
    res = predict(study, loaded, batch_size=4)
    assert res.device == "cpu" and res.device_fallback
    assert "CUDA failed during" in res.device_reason and "out of memory" in res.device_reason
    assert [s.probability for s in res.slices] == [s.probability for s in reference.slices]


def test_broken_gpu_falls_back_to_cpu_without_faking_tensors() -> None:
    """Here the 'GPU' is really absent: moving tensors to it raises torch's own error, which
    must be recognised as a CUDA failure and end on the CPU with the same answer."""
    _, loaded = _brightness_model()
    study = _study([True, False, True])
    reference = predict(study, loaded)
    loaded.device_choice = DeviceChoice(torch.device("cuda"), "cuda", "pretend GPU")
    res = predict(study, loaded)
    assert res.device == "cpu" and res.device_fallback
    assert [s.label for s in res.slices] == [s.label for s in reference.slices]


def test_requesting_cuda_without_a_gpu_runs_on_cpu_and_says_so(monkeypatch) -> None:
    _, loaded = _brightness_model()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the probe itself will fail
    res = predict(_study([True, False, True]), loaded, device="cuda")
    assert res.device == "cpu" and res.device_fallback
    assert "not working" in res.device_reason
    assert any("not working" in w for w in res.warnings)


def test_crop_uses_one_box_per_phase_from_all_paired_slices() -> None:
    """With a field-of-view crop, every slice of a phase is cropped alike (the box comes from
    all paired slices and the volume's pixel spacing), whether predicted alone or in batches."""
    from app.inference.arrays import phantom_arrays
    from app.inference.preprocess import crop_box

    cfg = ModelConfig(backbone="tiny", input_size=32, extra_channels=16, crop="fov", crop_fov_mm=60.0)
    study = study_from_arrays(phantom_arrays(4, 96, seed=3), pixel_spacing=(0.5, 0.5))
    torch.manual_seed(2)
    loaded = wrap_model(build_model(cfg))
    res = predict(study, loaded, batch_size=3)
    boxes = {p: crop_box(study.volumes[p].hu, cfg, (0.5, 0.5)) for p in cfg.phases}
    assert all((b.height, b.width) == (120, 120) for b in boxes.values())  # 60 mm at 0.5 mm
    x = torch.stack([preprocess_slices(study.volumes[p].hu, cfg, box=boxes[p]) for p in cfg.phases], 1)
    with torch.inference_mode():
        expected = torch.softmax(loaded.model(x), 1)[:, 1].numpy()
    np.testing.assert_allclose([s.probability for s in res.slices], expected, rtol=1e-5, atol=1e-6)
