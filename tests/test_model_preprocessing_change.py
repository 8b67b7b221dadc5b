"""A model that prepares images differently from the last one used is shown before use (issue
19, fault 7): same name and version, another input size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dicom_factory import synthetic_patient

from app import model_history
from app.cli import main


@pytest.fixture(scope="module")
def one_patient(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_patient(tmp_path_factory.mktemp("model-change"), seed=31, matrix=96)


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two model files with the same name and version whose cards state other input sizes."""
    from app.inference.config import ModelConfig
    from app.inference.weights import create_random_model, read_description

    folder = tmp_path_factory.mktemp("models")
    small, large = folder / "a.safetensors", folder / "b.safetensors"
    create_random_model(small, ModelConfig(input_size=64), seed=1, record_sha256=False)
    create_random_model(large, ModelConfig(input_size=96), seed=1, record_sha256=False)
    da, db = read_description(small), read_description(large)
    assert (da.name, da.version) == (db.name, db.version)
    return small, large


def _predict(folder: Path, model: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    rc = main(["predict", str(folder), "--json", "--quiet", "--device", "cpu", "--model",
               str(model), "--confirm"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out), out.err


@pytest.mark.usefixtures("torch_one_thread")
def test_a_changed_input_size_is_shown_before_use(one_patient: Path,
                                                  two_models: tuple[Path, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    small, large = two_models
    doc, err = _predict(one_patient, small, capsys)
    assert doc["model_change"] is None and "prepares the images differently" not in err

    doc, err = _predict(one_patient, large, capsys)
    assert doc["model_change"] == ["input size (px): 64 → 96"]
    assert "prepares the images differently" in err and "64 → 96" in err

    doc, err = _predict(one_patient, large, capsys)  # the same model again: nothing to say
    assert doc["model_change"] is None


def test_compare_ignores_the_fov_while_no_crop_uses_it(tmp_path: Path) -> None:
    from dataclasses import dataclass, field

    from app.inference.config import ModelConfig

    @dataclass
    class Desc:
        name: str = "m"
        version: str = "1"

    @dataclass
    class Loaded:
        config: ModelConfig
        description: Desc = field(default_factory=Desc)
        sha256: str = "ab" * 32

    model_history.remember(Loaded(ModelConfig(crop="none", crop_fov_mm=300.0)))
    assert model_history.compare(Loaded(ModelConfig(crop="none", crop_fov_mm=350.0))) is None
    change = model_history.compare(Loaded(ModelConfig(crop="fov", crop_fov_mm=350.0,
                                                      window=(350.0, 40.0))))
    assert change is not None
    assert change.differences == ["HU window (width, level): 400, 0 → 350, 40",
                                  "crop: none → fov", "crop field of view (mm): 300 → 350"]
