"""Grad-CAM mass against the label maps: the arithmetic, the placement of the maps on the
input grid, and ``evaluate`` end to end on a small generated cohort with label maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from app.cli import main
from app.inference.config import ModelConfig
from app.inference.gradcam import gradcam_on_inputs, gradcam_study
from app.inference.model import build_model
from app.inference.preprocess import preprocess_study
from app.inference.weights import WEIGHTS_SYNTHETIC, ModelDescription, load_model, save_model
from app.synthetic import labelmaps as lm
from app.synthetic.cohort import generate_cohort
from app.synthetic.options import StudyOptions
from app.training.cam_metrics import patient_cam_mass, summarise
from app.training.ladder import assemble_single

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _labels(s: int = 10) -> np.ndarray:
    """Two slices × one phase: a 6×6 liver with a 2×2 lesion on slice 0 only."""
    lab = np.zeros((2, 1, s, s), dtype=np.uint8)
    lab[:, :, 2:8, 2:8] = lm.LIVER
    lab[0, :, 4:6, 4:6] = lm.LESION
    return lab


def test_mass_shares_of_drawn_maps() -> None:
    lab = _labels()
    uniform = patient_cam_mass(np.ones(lab.shape, dtype=np.float32), lab)
    assert uniform.liver_share == pytest.approx(36 / 100)
    assert uniform.lesion_share == pytest.approx(4 / 100) == uniform.lesion_area_share
    assert (uniform.n_maps, uniform.n_lesion_maps, uniform.n_empty_maps) == (2, 1, 0)

    on_lesion = np.zeros(lab.shape, dtype=np.float32)
    on_lesion[0, 0, 4:6, 4:6] = 3.0
    on_lesion[1, 0, 0, 0] = 1.0  # slice 1: all mass outside the liver
    m = patient_cam_mass(on_lesion, lab)
    assert m.liver_share == pytest.approx(0.5)  # mean of 1.0 and 0.0
    # as displayed (one scale per study): the bright lesion map weighs 12, the faint map 1
    assert m.displayed_liver_share == pytest.approx(12 / 13)
    assert m.displayed_lesion_share == pytest.approx(1.0)
    assert uniform.displayed_liver_share == pytest.approx(72 / 200)
    # only the lesion slice shown (the app hides the maps of slices that did not vote)
    hidden = patient_cam_mass(on_lesion, lab, shown=np.array([True, False]))
    assert hidden.displayed_liver_share == pytest.approx(1.0) and hidden.liver_share == pytest.approx(0.5)
    assert m.lesion_share == pytest.approx(1.0) and m.lesion_area_share == pytest.approx(0.04)
    # only the tumour-free slice shown: the heat a reader sees misses the tumour entirely
    missed = patient_cam_mass(on_lesion, lab, shown=np.array([False, True]))
    assert missed.displayed_lesion_share == 0.0 and missed.displayed_liver_share == 0.0
    nothing = patient_cam_mass(on_lesion, lab, shown=np.array([False, False]))
    assert np.isnan(nothing.displayed_lesion_share) and np.isnan(nothing.displayed_liver_share)
    assert summarise([m, missed, nothing]).displayed_lesion_share == pytest.approx(0.5)  # nothing shown: left out

    empty = np.zeros(lab.shape, dtype=np.float32)
    empty[1, 0, 3, 3] = 1.0
    e = patient_cam_mass(empty, lab)  # the lesion slice has no mass: skipped
    assert e.n_empty_maps == 1 and e.n_lesion_maps == 0 and np.isnan(e.lesion_share)
    assert e.liver_share == pytest.approx(1.0)

    r = summarise([uniform, m, e])
    assert r.n_patients == 3 and r.n_patients_with_lesion_maps == 2
    assert r.liver_share == pytest.approx((0.36 + 0.5 + 1.0) / 3)
    assert r.lesion_share == pytest.approx((0.04 + 1.0) / 2)
    assert r.ratio == pytest.approx(((0.04 + 1.0) / 2) / 0.04)
    assert r.displayed_liver_share == pytest.approx((0.36 + 12 / 13 + 1.0) / 3)
    assert r.displayed_ratio == pytest.approx(((0.04 + 1.0) / 2) / 0.04)
    with pytest.raises(ValueError, match="differ in shape"):
        patient_cam_mass(np.ones((2, 1, 9, 9)), lab)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cam") / "cohort"
    generate_cohort(out, 3, 5, StudyOptions(matrix=48, convention="philips", label_maps=True))
    return out


def test_maps_on_the_input_grid_equal_the_apps_maps_on_the_slice(cohort: Path) -> None:
    # with no crop and an input as large as the slice, the app's Grad-CAM on the slice and the
    # map on the input grid are the same pixels: the placement (stride, offset) is shared
    torch.manual_seed(1)
    cfg = ModelConfig(backbone="tiny", input_size=48, crop="none", extra_channels=16, hidden=16)
    model = build_model(cfg).eval()
    study = assemble_single(cohort / "SYN5-0001")
    path = cohort.parent / "m.safetensors"
    save_model(model, cfg, ModelDescription(name="t", version="1", weights_kind=WEIGHTS_SYNTHETIC), path)
    loaded = load_model(path, device="cpu")
    app_maps = gradcam_study(loaded, study, keep_raw=True)
    x = preprocess_study(study, cfg).x
    ours = gradcam_on_inputs(loaded.model, x, batch_size=5)
    assert app_maps.raw is not None
    for j, phase in enumerate(cfg.phases):
        np.testing.assert_allclose(ours[:, j], app_maps.raw[phase], rtol=1e-4, atol=1e-6)
    assert ours.max() > 0


def _model_file(tmp: Path, input_size: int) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="tiny", input_size=input_size, crop="body", extra_channels=16, hidden=16)
    path = tmp / f"m{input_size}.safetensors"
    save_model(build_model(cfg).eval(), cfg, ModelDescription(name="t", version="1", weights_kind=WEIGHTS_SYNTHETIC),
               path)
    return path


def test_evaluate_prints_and_writes_the_cam_mass(cohort: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    model = _model_file(tmp_path, 32)
    args = ["evaluate", str(cohort / "labels.csv"), "--model", str(model), "--n-boot", "20",
            "--workers", "1", "--cache-dir", str(tmp_path / "cache")]
    assert main([*args, "--out-dir", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "Grad-CAM mass against the label maps (3 patients" in out and "inside the liver" in out
    doc = json.loads((tmp_path / "rep" / "evaluation.json").read_text())
    cam = doc["gradcam_mass"]
    n_slices = doc["slice_level"]["n"]
    assert cam["n_patients"] == 3 and cam["n_maps"] == 3 * n_slices
    assert 0.0 <= cam["liver_share"] <= 1.0 and cam["n_lesion_maps"] > 0
    assert cam["lesion_share"] == pytest.approx(cam["ratio"] * cam["lesion_area_share"])
    assert "Grad-CAM mass" in (tmp_path / "rep" / "evaluation.txt").read_text()
    # a second run reads the aligned label maps from the cache and gives the same figures
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gradcam_mass"] == cam
    # and the figures can be switched off
    assert main([*args, "--json", "--no-cam-mass"]) == 0
    assert json.loads(capsys.readouterr().out)["gradcam_mass"] is None


def test_evaluate_without_label_maps_has_no_cam_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plain"
    generate_cohort(out, 2, 6, StudyOptions(matrix=40, convention="siemens"))
    model = _model_file(tmp_path, 32)
    assert main(["evaluate", str(out / "labels.csv"), "--model", str(model), "--n-boot", "20", "--workers", "1",
                 "--cache-dir", str(tmp_path / "cache"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gradcam_mass"] is None
