"""Ground-truth label maps of the generator: files, their agreement with the DICOM pixels, and
their alignment with the network input (:mod:`app.synthetic.labelmaps`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest

from app.cli import main
from app.dicom.assembly import assemble_folder
from app.dicom.types import AssembledStudy
from app.inference.config import ModelConfig
from app.inference.preprocess import preprocess_study
from app.synthetic import labelmaps as lm
from app.synthetic.options import StudyOptions
from app.synthetic.outcome import LatentFeatures
from app.synthetic.study import build_patient, write_study

#: One large lesion with a clear, known contrast; no capsule/oil/thrombus to blur the measurement.
PLAIN_LESION = LatentFeatures(largest_diameter_mm=70.0, n_lesions=1, necrosis_fraction=0.3,
                              arterial_enhancement_hu=70.0, washout_hu=30.0, heterogeneity=0.1,
                              capsule=False, tace_oil=False, pvtt=False)
#: Every tumour component the renderer knows.
FULL_LESION = LatentFeatures(largest_diameter_mm=80.0, n_lesions=3, necrosis_fraction=0.4,
                             arterial_enhancement_hu=60.0, washout_hu=25.0, heterogeneity=0.5,
                             capsule=True, tace_oil=True, pvtt=True)
OPTS = StudyOptions(matrix=96, convention="siemens", label_maps=True)


def _write(tmp: Path, features: LatentFeatures, options: StudyOptions = OPTS, index: int = 0) -> tuple[Path, dict]:
    draw = build_patient(31, index, options, features=features)
    study_dir = tmp / draw.patient_id
    truth = write_study(draw, options, study_dir)
    return study_dir, truth


def _assemble(study_dir: Path) -> AssembledStudy:
    _scan, studies = assemble_folder(study_dir, keep_volumes=True)
    assert len(studies) == 1
    outcome = studies[0][1]
    assert isinstance(outcome, AssembledStudy), outcome
    return outcome


@pytest.fixture(scope="module")
def plain_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, AssembledStudy]:
    study_dir, truth = _write(tmp_path_factory.mktemp("lm"), PLAIN_LESION)
    return study_dir, truth, _assemble(study_dir)


@pytest.fixture(scope="module")
def full_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    opts = replace(OPTS, coronal=True, localizer=True, dose_report=True, thin_recon=True)
    return _write(tmp_path_factory.mktemp("lm-full"), FULL_LESION, opts)


def test_one_file_per_axial_series_matching_the_dicom_slices(full_study: tuple[Path, dict]) -> None:
    study_dir, truth = full_study
    maps = lm.read_label_maps(study_dir)
    axial = {uid for uid, s in truth["series"].items() if s["kind"] == "axial"}
    others = {uid for uid, s in truth["series"].items() if s["kind"] != "axial"}
    assert others, "the study should have a coronal, a localizer and a dose report"
    assert set(maps) == axial  # thin reconstructions included, no reformat/scout/dose report
    for uid, vol in maps.items():
        s = truth["series"][uid]
        assert s["label_map"] == f"labels/{uid}.npz"
        assert vol.labels.shape == (s["n_images"], 96, 96)
        assert vol.codes == lm.CODES
        for k, rel in enumerate(s["files"]):
            ds = pydicom.dcmread(study_dir / rel, stop_before_pixels=True)
            assert ds.SOPInstanceUID == vol.sop_uids[k]
            assert float(ds.ImagePositionPatient[2]) == vol.z[k]


def test_every_tumour_component_has_its_code(full_study: tuple[Path, dict]) -> None:
    study_dir, truth = full_study
    main_series = truth["phases"]["portal"]
    labels = lm.read_label_maps(study_dir)[main_series].labels
    present = set(np.unique(labels).tolist())
    assert present == set(lm.CODES), f"missing codes {set(lm.CODES) - present}"
    # liver pixels per slice agree with the truth's liver area (same definition: the outline)
    area = np.isin(labels, (*lm.LIVER_CODES, lm.THROMBUS)).sum(axis=(1, 2))
    px_mm2 = (truth["anatomy"]["fov_mm"] / 96) ** 2
    assert np.allclose(area * px_mm2, truth["series"][main_series]["liver_area_mm2"], atol=0.1)


def test_option_changes_no_dicom_file(tmp_path: Path) -> None:
    on_dir, _ = _write(tmp_path / "on", PLAIN_LESION, replace(OPTS, matrix=48))
    off_dir, _ = _write(tmp_path / "off", PLAIN_LESION, replace(OPTS, matrix=48, label_maps=False))
    assert not (off_dir / lm.LABELS_DIR).exists()
    assert lm.read_label_maps(off_dir) == {} and not lm.has_label_maps(off_dir)

    def digests(d: Path) -> dict[str, str]:
        return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(d.rglob("*.dcm"))}

    assert digests(on_dir) == digests(off_dir) != {}


def _median_hu(hu: np.ndarray, labels: np.ndarray, code: int) -> float:
    vals = hu[labels == code]
    assert vals.size > 20, f"too few pixels of code {code}"
    return float(np.median(vals))


def test_dicom_hu_under_the_labels_match_the_truth(plain_study: tuple[Path, dict, AssembledStudy]) -> None:
    study_dir, truth, study = plain_study
    maps = lm.read_label_maps(study_dir)
    les = truth["lesions"][0]
    expected = {"plain": -12.0, "arterial": les["arterial_enhancement_hu"], "portal": -les["washout_hu"]}
    for phase, diff in expected.items():
        vol = study.volumes[phase]
        labels = lm.slices_for_volume(maps, vol.sop_instance_uids, phase)
        liver = _median_hu(vol.hu, labels, lm.LIVER)
        assert liver == pytest.approx(truth["hu_targets"][phase]["liver"], abs=6.0)
        assert _median_hu(vol.hu, labels, lm.LESION) - liver == pytest.approx(diff, abs=8.0)
        assert _median_hu(vol.hu, labels, lm.NECROSIS) == pytest.approx(18.0, abs=8.0)


@pytest.mark.parametrize("crop, size", [("none", 64), ("body", 64), ("body", 96), ("fov", 48)])
def test_labels_align_with_the_network_input(plain_study: tuple[Path, dict, AssembledStudy],
                                             crop: str, size: int) -> None:
    study_dir, truth, study = plain_study
    cfg = ModelConfig(backbone="tiny", input_size=size, crop=crop)
    x = preprocess_study(study, cfg).x[:, :, 0].numpy()
    labels = lm.labels_for_inputs(study, cfg, lm.read_label_maps(study_dir))
    assert labels.shape == x.shape and labels.dtype == np.uint8
    width = cfg.window[0]
    aphe = truth["lesions"][0]["arterial_enhancement_hu"]
    a = cfg.phases.index("arterial")
    # input intensity (window units → HU) under the labels: the lesion is brighter than the
    # liver by the truth's APHE, less what resizing blends in at the lesion's border
    diff = (_median_hu(x[:, a], labels[:, a], lm.LESION) - _median_hu(x[:, a], labels[:, a], lm.LIVER)) * width
    assert 0.7 * aphe < diff < 1.1 * aphe
    # alignment to the pixel: of the lesion masks shifted by up to two input pixels either way,
    # the unshifted one covers the brightest input (the enhancing tumour, not its surroundings)
    def brightness(dy: int, dx: int) -> float:
        moved = np.roll(labels[:, a], (dy, dx), axis=(-2, -1))
        return float(x[:, a][moved == lm.LESION].mean())

    scores = {(dy, dx): brightness(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}
    assert max(scores, key=lambda k: scores[k]) == (0, 0), scores
    # outside the body (air, 0 after windowing) there is no label
    assert not labels[x < 1e-4].any()


def test_subset_of_pairs_gives_the_same_rows(plain_study: tuple[Path, dict, AssembledStudy]) -> None:
    study_dir, _truth, study = plain_study
    cfg = ModelConfig(backbone="tiny", input_size=64, crop="body")
    maps = lm.read_label_maps(study_dir)
    full = lm.labels_for_inputs(study, cfg, maps)
    some = [len(study.pairs) - 1, 0, len(study.pairs) // 2]
    assert np.array_equal(lm.labels_for_inputs(study, cfg, maps, pair_indices=some), full[some])


def test_resample_nearest_identity_and_padding() -> None:
    from app.inference.preprocess import CropBox

    labels = np.arange(16, dtype=np.uint8).reshape(1, 4, 4)
    assert np.array_equal(lm.resample_nearest(labels, CropBox.whole(4, 4), 4), labels)
    # a box reaching one pixel beyond each side, same size: shifted copy with background border
    out = lm.resample_nearest(labels, CropBox(-1, -1, 6, 6, 4, 4), 6)
    assert np.array_equal(out[0, 1:5, 1:5], labels[0]) and out[0, 0].sum() == 0 and out[0, :, 5].sum() == 0
    # halving: output pixel i takes box pixel 2i + 1 (its centre rounds down at 2i + 1)
    assert np.array_equal(lm.resample_nearest(labels, CropBox.whole(4, 4), 2)[0], labels[0][1::2, 1::2])


def test_without_coronal_and_localizer(tmp_path: Path) -> None:
    study_dir, truth = _write(tmp_path, PLAIN_LESION, replace(OPTS, matrix=64))
    assert {s["kind"] for s in truth["series"].values()} == {"axial"}
    study = _assemble(study_dir)
    labels = lm.labels_for_inputs(study, ModelConfig(backbone="tiny", input_size=32, crop="body"),
                                  lm.read_label_maps(study_dir))
    assert labels.shape == (len(study.pairs), 3, 32, 32) and (labels == lm.LESION).any()


def test_missing_or_foreign_label_maps_are_refused(tmp_path: Path) -> None:
    study_dir, truth = _write(tmp_path, PLAIN_LESION, replace(OPTS, matrix=48))
    study = _assemble(study_dir)
    cfg = ModelConfig(backbone="tiny", input_size=32)
    maps = lm.read_label_maps(study_dir)
    arterial = truth["phases"]["arterial"]
    without = {k: v for k, v in maps.items() if k != arterial}
    with pytest.raises(lm.LabelMapError, match="arterial series .* slices have no label map"):
        lm.labels_for_inputs(study, cfg, without)
    lm.label_path(study_dir, arterial).write_bytes(b"not a zip file")
    with pytest.raises(lm.LabelMapError, match="cannot read label maps"):
        lm.read_label_maps(study_dir)


def test_demo_data_cli_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cohort"
    args = ["demo-data", str(out), "--patients", "1", "--seed", "3", "--matrix", "40", "--workers", "1"]
    assert main([*args, "--label-maps"]) == 0
    study_dir = out / "SYN3-0001"
    truth = json.loads((study_dir / "truth.json").read_text())
    assert truth["options"]["label_maps"] is True
    assert set(lm.read_label_maps(study_dir)) == set(truth["phases"].values())
    assert main(args) == 0  # rewriting the cohort without the flag leaves no label maps behind
    assert not lm.has_label_maps(study_dir)
