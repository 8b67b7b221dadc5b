"""Preprocessing (window, crop, resize) and its inverse for maps put back onto the slice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.inference.config import ConfigError, ModelConfig
from app.inference.preprocess import (
    CropBox,
    crop_box,
    map_to_slice,
    preprocess_slices,
    preprocessing_summary,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _phantom(rows: int = 128, cols: int = 128) -> np.ndarray:
    """Air around an elliptical body of soft tissue (40 HU) with a bright square (180 HU)."""
    yy, xx = np.mgrid[0:rows, 0:cols]
    hu = np.full((rows, cols), -1000.0, dtype=np.float32)
    body = ((yy - rows * 0.55) / (rows * 0.3)) ** 2 + ((xx - cols * 0.5) / (cols * 0.4)) ** 2 <= 1
    hu[body] = 40.0
    hu[60:70, 40:50] = 180.0
    return hu


def test_window_maps_w400_l0_onto_unit_range_and_keeps_input() -> None:
    hu = np.array([[[-1000, -200, 0, 100, 200, 3000]]], dtype=np.int16)
    cfg = ModelConfig(input_size=16, backbone="tiny")
    box = CropBox.whole(1, 6)
    # a 1x6 "slice" resized to 16x16: check values before resizing through a size-preserving box
    out = preprocess_slices(hu.astype(np.float32), ModelConfig(input_size=16), box=box)
    assert out.shape == (1, 1, 16, 16) and out.dtype == torch.float32
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0
    vals = preprocess_slices(np.full((2, 8, 8), 100.0), cfg)
    torch.testing.assert_close(vals, torch.full((2, 1, 16, 16), 0.75))
    src = np.full((1, 8, 8), 100.0, dtype=np.float32)
    preprocess_slices(src, cfg)
    assert float(src[0, 0, 0]) == 100.0  # the caller's volume is never modified


def test_resize_to_input_size_averages_when_shrinking() -> None:
    hu = np.zeros((1, 512, 512), dtype=np.float32)
    hu[0, :, ::2] = 200.0  # stripes one pixel wide: an unfiltered resize would alias them
    out = preprocess_slices(hu, ModelConfig())
    assert out.shape == (1, 1, 224, 224)
    assert abs(float(out.mean()) - 0.75) < 0.01
    assert float(out.std()) < 0.05


def test_crop_policies() -> None:
    hu = _phantom()[None]
    assert crop_box(hu, ModelConfig(crop="none")).is_whole
    body = crop_box(hu, ModelConfig(crop="body"))
    assert body.height == body.width  # square: no stretching of the anatomy
    assert 0.8 * 128 * 0.8 < body.width < 128 * 0.8 * 1.1  # the body is 0.8 of the width
    fov = crop_box(hu, ModelConfig(crop="fov", crop_fov_mm=100.0), pixel_spacing=(0.5, 1.0))
    assert (fov.height, fov.width) == (200, 100)  # 100 mm in rows of 0.5 mm and cols of 1 mm
    assert fov.y0 < 0  # reaches beyond the slice: padded with air
    with pytest.raises(ConfigError, match="pixel spacing"):
        crop_box(hu, ModelConfig(crop="fov"))
    out = preprocess_slices(hu, ModelConfig(crop="fov", crop_fov_mm=100.0, input_size=64),
                            pixel_spacing=(0.5, 1.0))
    assert float(out[0, 0, 0, 32]) == 0.0 and float(out[0, 0, 32, 32]) > 0.5
    # air only: no body to crop to, the whole slice is used
    assert crop_box(np.full((1, 32, 32), -1000.0), ModelConfig(crop="body")).is_whole


@pytest.mark.parametrize("crop", ["none", "body", "fov"])
def test_maps_come_back_onto_the_original_geometry(crop: str) -> None:
    """Preprocess a slice, treat the network input itself as a 'map', and map it back: the bright
    square lands where it is in the original slice."""
    hu = _phantom(128, 160)
    cfg = ModelConfig(crop=crop, crop_fov_mm=120.0, input_size=64, window=(400.0, 80.0))
    box = crop_box(hu[None], cfg, pixel_spacing=(1.0, 1.0))
    x = preprocess_slices(hu, cfg, box=box)[:, 0].numpy()
    back = map_to_slice(x, box)
    assert back.shape == (1, 128, 160)
    r, c = np.unravel_index(int(np.argmax(back[0])), back[0].shape)
    assert 58 <= r <= 71 and 38 <= c <= 51, (r, c)
    single = map_to_slice(x[0], box)
    assert single.shape == (128, 160)
    np.testing.assert_allclose(single, back[0])


def test_summary_names_the_window_and_crop() -> None:
    s = preprocessing_summary(ModelConfig())
    assert s["window"]["hu_range"] == [-200.0, 200.0]
    assert s["crop"] == "none"


def test_feature_cells_are_placed_on_their_receptive_field_centres() -> None:
    """A single hot cell of a stride-32 map lands on input pixel 32·i (+ offset), scaled onto the
    slice; the plain-resize default puts it in the middle of its tile instead."""
    low = np.zeros((7, 7), np.float32)
    low[2, 5] = 1.0
    box = CropBox.whole(448, 448)  # slice twice the 224 input
    placed = map_to_slice(low, box, input_size=224, stride=32, offset=0.0)
    r, c = np.unravel_index(int(np.argmax(placed)), placed.shape)
    # input pixel centre 64 (row) / 160 (col) -> slice pixels 2*64+0.5 ≈ 128.5 / 320.5
    assert abs(r - 128.5) <= 0.5 and abs(c - 320.5) <= 0.5
    plain = map_to_slice(low, box, input_size=224)
    r2, c2 = np.unravel_index(int(np.argmax(plain)), plain.shape)
    assert abs(r2 - (2 * (64 + 15.5) + 0.5)) <= 0.5 and abs(c2 - (2 * (160 + 15.5) + 0.5)) <= 0.5
    assert float(placed.max()) == pytest.approx(1.0, abs=0.05) and float(placed.min()) >= 0.0
