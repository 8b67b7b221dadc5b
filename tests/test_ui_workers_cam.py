"""The Grad-CAM job: viewed slice first, then the levels around the view, one study scale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ui_fixtures as fx

from app.case.model import ModelHolder
from app.progress import ProgressState
from app.ui.jobs import CAM_CHUNK, SliceCam, ViewedSlice, cam_job, cam_order


class Recording(ProgressState):
    """A progress that records what the job publishes and can move the view meanwhile."""

    def __init__(self, on_publish: Any = None) -> None:
        super().__init__()
        self.published: list[SliceCam] = []
        self._on_publish = on_publish

    def publish(self, obj: SliceCam) -> None:
        self.published.append(obj)
        if self._on_publish is not None:
            self._on_publish(obj)


def test_cam_order_prefers_the_neighbourhood_of_the_view() -> None:
    assert cam_order(10, {0}, centre=0, chunk=3) == [1, 2, 3]
    assert cam_order(10, {0}, centre=9, chunk=3) == [7, 8, 9]
    assert cam_order(10, {4, 5}, centre=5, chunk=4) == [2, 3, 6, 7]
    assert cam_order(3, {0, 1, 2}, centre=1) == []


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import torch

    from app.inference.weights import load_model

    torch.set_num_threads(1)  # tiny model: per-op overhead dominates, one thread is fastest
    path: Path = tmp_path_factory.mktemp("cam-model") / "tiny.safetensors"
    fx.create_tiny_model(path)
    return load_model(path, "cpu")


def test_viewed_slice_first_then_around_the_view_with_one_study_scale(loaded: Any) -> None:
    from app.inference.gradcam import gradcam_study

    study = fx.constructed_study(n_pairs=10, size=64)
    viewed = ViewedSlice(0)

    def user_scrolls(obj: SliceCam) -> None:
        viewed.index = 9  # right after the first heatmap appears, the user jumps to the end

    progress = Recording(user_scrolls)
    result = cam_job(study, ModelHolder(), loaded, 0, viewed)(progress)
    order = [sc.pair_index for sc in progress.published]
    assert order[0] == 0
    assert sorted(order[1 : 1 + CAM_CHUNK]) == [6, 7, 8, 9]
    assert sorted(order) == list(range(10))
    # the final maps are normalised once for the whole study, exactly like gradcam_study
    reference = gradcam_study(loaded, study)
    assert result.pair_indices == list(range(10))
    for phase in reference.maps:
        assert result.maps[phase].shape == (10, 64, 64)
        np.testing.assert_allclose(result.maps[phase], reference.maps[phase], atol=1e-4)
    assert result.global_max == pytest.approx(reference.global_max, rel=1e-4)
    assert result.device == reference.device


def test_cam_job_stops_when_cancelled(loaded: Any) -> None:
    from app.errors import Cancelled

    study = fx.constructed_study(n_pairs=10, size=64)
    progress = Recording(lambda obj: progress.cancel())
    with pytest.raises(Cancelled):
        cam_job(study, ModelHolder(), loaded, 3)(progress)
    assert [sc.pair_index for sc in progress.published] == [3]


def test_gui_leaves_one_core_to_the_event_loop() -> None:
    from app.ui.jobs import gui_torch_threads

    assert gui_torch_threads(1) == 1
    assert gui_torch_threads(2) == 1
    assert gui_torch_threads(8) == 7


def test_lesion_model_job_shows_only_the_voting_slices_like_gradcam_study(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GUI's chunked job ends exactly as the whole-study Grad-CAM: the maps of the slices
    that did not take part in the lesion-weighted decision are empty and the scale is theirs."""
    import torch

    from app.inference import result as result_module
    from app.inference.config import ModelConfig
    from app.inference.gradcam import gradcam_study
    from app.inference.model import build_model
    from app.inference.weights import wrap_model

    # a random model sees "tumour" of similar size on every slice: let only slices within
    # 0.1 % of the largest area vote, so that some maps must be hidden
    monkeypatch.setattr(result_module, "LESION_VOTE_SHARE", 0.999)
    torch.manual_seed(5)
    cfg = ModelConfig(backbone="small", input_size=32, extra_channels=16, hidden=16, dropout=0.0,
                      shared_trunk=True, head="lesion", aggregation="lesion_weighted")
    loaded = wrap_model(build_model(cfg))
    loaded.model.requires_grad_(False)
    from app.inference.arrays import study_from_arrays

    rng = np.random.default_rng(5)  # slices that differ, so that the model's 'tumour' areas do
    study = study_from_arrays({p: rng.normal(40.0, 60.0, (10, 64, 64)).astype(np.float32)
                               for p in ("plain", "arterial", "portal")})
    result = cam_job(study, ModelHolder(), loaded, 0, ViewedSlice(0))(Recording(lambda obj: None))
    reference = gradcam_study(loaded, study)
    assert result.shown == reference.shown and len(result.shown) == 10
    assert 0 < sum(result.shown) < 10
    for phase in reference.maps:
        np.testing.assert_allclose(result.maps[phase], reference.maps[phase], atol=1e-4)
        assert all(result.maps[phase][k].max() == 0 for k, on in enumerate(result.shown) if not on)
    assert result.global_max == pytest.approx(reference.global_max, rel=1e-4)
