"""Synthetic multiphase liver CT generator: outcome model, HU, DICOM output, options, CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest

from app.cli import main as cli_main
from app.synthetic.anatomy import HU_TABLE
from app.synthetic.cohort import (
    LABEL_COLUMNS,
    bayes_auc,
    generate_cohort,
    read_labels,
    sample_patients,
)
from app.synthetic.demo import ensure_demo_study
from app.synthetic.errors import SyntheticInputError
from app.synthetic.options import StudyOptions
from app.synthetic.outcome import LatentFeatures, rank_auc, response_probability
from app.synthetic.render import Grid, add_noise_and_blur, render_clean_slice
from app.synthetic.study import build_patient

# Small studies: 64 px, 10 mm slices over 80 mm unless a test needs more.
SMALL = dict(matrix=64, slice_mm=10.0, z_coverage_mm=80.0)


def _hu(ds: pydicom.Dataset) -> np.ndarray:
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name not in ("truth.json",))


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


# --- outcome model ------------------------------------------------------------------------------


def test_rank_auc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(1)
    scores = np.round(rng.random(60), 1)  # many ties
    labels = rng.random(60) < 0.4
    pos, neg = scores[labels], scores[~labels]
    pairwise = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert rank_auc(scores, labels) == pytest.approx(pairwise)


@pytest.mark.parametrize("seed", [0, 11])
def test_outcome_prevalence_and_bayes_auc_on_1000_patients(seed: int) -> None:
    patients = sample_patients(1000, seed)
    prevalence = np.mean([p.responder for p in patients])
    assert 0.23 <= prevalence <= 0.33
    assert 0.80 <= bayes_auc(patients) <= 0.90
    # RECIST category agrees with the label.
    for p in patients:
        assert p.recist in (("CR", "PR") if p.responder else ("SD", "PD"))


def test_outcome_is_monotone_in_each_feature() -> None:
    base = LatentFeatures(55.0, 1, 0.15, 45.0, 20.0, 0.45, False, False, False)
    p0 = response_probability(base)
    from dataclasses import replace

    assert response_probability(replace(base, arterial_enhancement_hu=80.0)) > p0
    assert response_probability(replace(base, washout_hu=40.0)) > p0
    assert response_probability(replace(base, largest_diameter_mm=110.0)) < p0
    assert response_probability(replace(base, n_lesions=4)) < p0
    assert response_probability(replace(base, necrosis_fraction=0.5)) < p0
    assert response_probability(replace(base, heterogeneity=0.9)) < p0
    assert response_probability(replace(base, capsule=True)) > p0
    assert response_probability(replace(base, tace_oil=True)) > p0
    assert response_probability(replace(base, pvtt=True)) < p0


# --- anatomy and HU -----------------------------------------------------------------------------


def _liver_roi_hu(phase: str, seed: int = 5) -> tuple[float, float, float]:
    """Median HU in small ROIs of aorta, portal vein and liver (noise-free, no lesions)."""
    draw = build_patient(seed, 0, StudyOptions(matrix=256))
    an = draw.anatomy
    g = draw.geometry[phase]
    grid = Grid.square(an.fov_mm, 256)

    def roi(point: tuple[float, float, float]) -> float:
        img, _ = render_clean_slice(an, [], None, phase, g, grid, point[2] + g.shift_mm[2])
        j = int(np.argmin(np.abs(grid.xs - (point[0] + g.shift_mm[0]))))
        i = int(np.argmin(np.abs(grid.ys - (point[1] + g.shift_mm[1]))))
        return float(np.median(img[i - 1 : i + 2, j - 1 : j + 2]))

    aorta = roi((an.aorta.p0[0], an.aorta.p0[1], -100.0))
    mp = an.main_portal
    pv = roi(tuple(0.5 * (mp.p0[k] + mp.p1[k]) for k in range(3)))  # type: ignore[arg-type]
    cx, cy, _, _ = an.liver_sections(-0.2 * an.liver_span_mm)[0]
    liver = roi((cx - 10.0, cy - 15.0, -0.2 * an.liver_span_mm))
    return aorta, pv, liver


@pytest.mark.parametrize(
    ("phase", "aorta", "pv", "liver"),
    [
        ("plain", (30, 50), (30, 50), (38, 70)),
        ("arterial", (220, 400), (60, 190), (55, 100)),
        ("portal", (120, 200), (150, 220), (90, 135)),
        ("delayed", (95, 150), (100, 160), (75, 120)),
    ],
)
def test_vessel_and_liver_hu_per_phase(phase: str, aorta: tuple, pv: tuple, liver: tuple) -> None:
    a, p, lv = _liver_roi_hu(phase)
    assert aorta[0] <= a <= aorta[1]
    assert pv[0] <= p <= pv[1]
    assert liver[0] <= lv <= liver[1]


@pytest.mark.parametrize("convention", ["siemens", "ge", "canon"])  # unsigned -1024, signed -1024, signed 0
def test_written_hu_equal_the_truth_targets(tmp_path: Path, convention: str) -> None:
    """Through DICOM and back: the aorta pixel at its truth landmark has the truth's HU."""
    opts = StudyOptions(matrix=96, slice_mm=10.0, z_coverage_mm=60.0, convention=convention, noise=False)
    generate_cohort(tmp_path, 1, 13, opts)
    study = tmp_path / "SYN13-0001"
    truth = json.loads((study / "truth.json").read_text(encoding="utf-8"))
    for phase, uid in truth["phases"].items():
        # The aorta runs straight through the whole series: any slice shows it at (x, y).
        x, y, _ = truth["landmarks_mm"][phase]["aorta_centre_at_dome_minus_100"]
        ds = pydicom.dcmread(study / truth["series"][uid]["files"][2])
        ox, oy, _ = (float(v) for v in ds.ImagePositionPatient)
        sp = float(ds.PixelSpacing[0])
        value = _hu(ds)[int(round((y - oy) / sp)), int(round((x - ox) / sp))]
        assert value == pytest.approx(truth["hu_targets"][phase]["aorta"], abs=1.0)


def test_hu_table_targets_from_the_issue() -> None:
    # Midway between early and late arterial the table gives the issue's typical values.
    assert np.mean(HU_TABLE["aorta"][1:3]) == pytest.approx(290, abs=15)
    assert np.mean(HU_TABLE["portal"][1:3]) == pytest.approx(110, abs=5)
    assert HU_TABLE["aorta"][3] == pytest.approx(160, abs=5)
    assert HU_TABLE["portal"][3] == pytest.approx(180, abs=5)
    assert HU_TABLE["liver"][3] == pytest.approx(110, abs=5)


def test_noise_has_the_requested_standard_deviation() -> None:
    flat = np.full((128, 128), 40.0, dtype=np.float32)
    noisy = add_noise_and_blur(flat, 0.8, 15.0, 0.5, np.random.default_rng(0))
    assert np.std(noisy) == pytest.approx(15.0, rel=0.15)
    assert np.mean(noisy) == pytest.approx(40.0, abs=1.0)


def test_anatomy_layout_aorta_left_ivc_right_liver_right() -> None:
    for i in range(5):
        an = build_patient(2, i, StudyOptions()).anatomy
        assert an.aorta.p0[0] > 0 > an.ivc.p0[0]  # LPS: +x is the patient's left
        assert an.aorta.p0[1] < an.spine_y  # anterior of the vertebral body
        cx, _, _, _ = an.liver_sections(-0.3 * an.liver_span_mm)[0]
        assert cx < 0  # right upper quadrant
        assert 150 <= an.liver_span_mm <= 200
        assert an.main_portal.p1[0] < an.main_portal.p0[0]  # runs to the right into the hilum
        assert min(k.centre[2] for k in an.kidneys) < -0.5 * an.liver_span_mm  # kidneys lower


# --- a cohort written to disk -------------------------------------------------------------------


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort") / "out"
    generate_cohort(out, 3, 42, StudyOptions(matrix=64, slice_mm=5.0, z_coverage_mm=250.0))
    return out


def test_labels_csv_and_truth(cohort: Path) -> None:
    with (cohort / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0].keys()) == LABEL_COLUMNS
    assert len(rows) == 3
    sampled = sample_patients(3, 42)
    for row, s in zip(rows, sampled, strict=True):
        assert row["patient_id"] == s.patient_id
        assert int(row["responder"]) == s.responder and row["recist"] == s.recist
        assert float(row["p_true"]) == pytest.approx(s.p_true, abs=1e-6)
        truth = json.loads((cohort / row["study_dir"] / "truth.json").read_text(encoding="utf-8"))
        assert truth["p_true"] == pytest.approx(float(row["p_true"]), abs=1e-6)
        assert truth["outcome_model"]["coefficients"]
        assert set(truth["phases"]) == {"plain", "arterial", "portal"}
        assert truth["lesions"][0]["target"] and truth["lesions"][0]["diameter_mm"] >= 15
        assert set(truth["latent_features"]) >= {"largest_diameter_mm", "pvtt", "tace_oil"}
        assert len(truth["lesions"]) == truth["latent_features"]["n_lesions"]
        for phase in ("plain", "arterial", "portal"):
            lo, hi = truth["liver_z_range_mm"][phase]
            assert 120 <= hi - lo <= 210  # a 150–200 mm liver seen on 5 mm slices
            assert abs(truth["breath_hold_shift_mm"][phase][2]) <= 10


def test_every_file_is_a_ct_image_matching_its_truth(cohort: Path) -> None:
    study = cohort / "SYN42-0001"
    truth = json.loads((study / "truth.json").read_text(encoding="utf-8"))
    listed = {f for s in truth["series"].values() for f in s["files"]}
    on_disk = {p.relative_to(study).as_posix() for p in _files(study)}
    assert listed == on_disk
    times = {}
    for uid, s in truth["series"].items():
        first = pydicom.dcmread(study / s["files"][0])
        assert first.SeriesInstanceUID == uid
        assert first.StudyInstanceUID == truth["study_instance_uid"]
        assert first.FrameOfReferenceUID == truth["frame_of_reference_uid"]
        assert first.file_meta.MediaStorageSOPClassUID == pydicom.uid.CTImageStorage
        assert first.Modality == "CT" and list(first.ImageType)[:3] == ["ORIGINAL", "PRIMARY", "AXIAL"]
        for kw in ("PatientID", "PatientName", "StudyDate", "KVP", "Manufacturer", "ManufacturerModelName",
                   "ConvolutionKernel", "SeriesNumber", "SliceThickness", "SpacingBetweenSlices",
                   "PixelSpacing", "ImageOrientationPatient", "RescaleIntercept", "AcquisitionTime"):
            assert kw in first, kw
        times[s["phase"]] = float(first.AcquisitionTime)
        if s["phase"] == "plain":
            assert "ContrastBolusAgent" not in first
        else:
            assert float(first.ContrastBolusStartTime) < float(first.AcquisitionTime)
        zs = [float(pydicom.dcmread(study / f, stop_before_pixels=True).ImagePositionPatient[2]) for f in s["files"]]
        assert np.allclose(np.diff(zs), -5.0)
        lo, hi = s["liver_z_range_mm"]
        assert min(zs) <= lo <= hi <= max(zs)
    assert times["plain"] < times["arterial"] < times["portal"]


def test_liver_range_matches_the_images(cohort: Path) -> None:
    """Slices outside the truth's liver range hold no liver-like tissue at the liver's place."""
    study = cohort / "SYN42-0002"
    truth = json.loads((study / "truth.json").read_text(encoding="utf-8"))
    uid = truth["phases"]["portal"]
    lo, hi = truth["liver_z_range_mm"]["portal"]
    inside = outside = 0
    for f in truth["series"][uid]["files"]:
        ds = pydicom.dcmread(study / f)
        z = float(ds.ImagePositionPatient[2])
        hu = _hu(ds)
        # The right half of the image (patient's right, columns < 1/2) at liver HU (portal ~110).
        liverish = np.mean((hu[:, : hu.shape[1] // 2] > 80) & (hu[:, : hu.shape[1] // 2] < 150))
        if lo + 20 <= z <= hi - 20:
            inside += liverish > 0.08
        elif z > hi + 10:
            outside += liverish > 0.08
    assert inside >= 10 and outside == 0


def test_same_seed_identical_bytes_other_seed_differs(tmp_path: Path) -> None:
    opts = StudyOptions(**SMALL)
    generate_cohort(tmp_path / "a", 1, 9, opts)
    generate_cohort(tmp_path / "b", 1, 9, opts)
    generate_cohort(tmp_path / "c", 1, 10, opts)
    da, db, dc = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert da == db
    assert set(da.values()).isdisjoint(dc.values())


# --- options ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("all") / "out"
    opts = StudyOptions(matrix=64, slice_mm=10.0, z_coverage_mm=40.0, thin_recon=True, coronal=True,
                        localizer=True, dose_report=True, delayed_phase=True, transfer_syntax="rle",
                        shuffle_names=True, flat=True, convention="ge")
    generate_cohort(out, 1, 4, opts)
    return out / "SYN4-0001"


def test_all_options_write_what_they_say(everything: Path) -> None:
    truth = json.loads((everything / "truth.json").read_text(encoding="utf-8"))
    files = _files(everything)
    assert all(p.parent == everything for p in files)  # flat
    assert all("." not in p.name and len(p.name) == 16 for p in files)  # shuffled, no extension
    kinds: dict[str, list[dict]] = {}
    for s in truth["series"].values():
        kinds.setdefault(s["kind"], []).append(s)
    axial = kinds["axial"]
    assert sorted(s["rendered_phase"] for s in axial) == sorted(["plain", "arterial", "portal", "delayed"] * 2)
    delayed = [s for s in axial if s["rendered_phase"] == "delayed"]
    assert all(s["phase"] == "other" for s in delayed)
    thin = [s for s in axial if s["key"].endswith("_thin")]
    assert len(thin) == 4
    for s in thin:
        ds = pydicom.dcmread(everything / s["files"][0], stop_before_pixels=True)
        assert 1.0 <= float(ds.SliceThickness) <= 1.25
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    cor = pydicom.dcmread(everything / kinds["coronal"][0]["files"][0])
    assert [float(v) for v in cor.ImageOrientationPatient] == [1, 0, 0, 0, 0, -1]
    assert "REFORMATTED" in cor.ImageType
    loc = pydicom.dcmread(everything / kinds["localizer"][0]["files"][0])
    assert "LOCALIZER" in loc.ImageType
    dose = pydicom.dcmread(everything / kinds["dose_report"][0]["files"][0])
    assert dose.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert dose.pixel_array.max() == 255  # the text is drawn
    assert all(s["phase"] == "other" for k in ("coronal", "localizer", "dose_report") for s in kinds[k])
    # Scout first, in GE's numbering; dose report as series 999.
    assert kinds["localizer"][0]["series_number"] == 1 and kinds["dose_report"][0]["series_number"] == 999
    assert pydicom.dcmread(everything / axial[0]["files"][0]).Manufacturer == "GE MEDICAL SYSTEMS"


@pytest.mark.parametrize("syntax", ["rle", "jpeg2000"])
def test_compressed_studies_decode_to_the_same_hu(tmp_path: Path, syntax: str) -> None:
    base = dict(matrix=64, slice_mm=10.0, z_coverage_mm=40.0, convention="canon")  # signed, intercept 0
    generate_cohort(tmp_path / "raw", 1, 8, StudyOptions(**base))
    generate_cohort(tmp_path / "cmp", 1, 8, StudyOptions(**base, transfer_syntax=syntax))
    raw = {pydicom.dcmread(p).SOPInstanceUID: p for p in _files(tmp_path / "raw" / "SYN8-0001")}
    cmp_files = _files(tmp_path / "cmp" / "SYN8-0001")
    assert len(cmp_files) == len(raw)
    expected = pydicom.uid.RLELossless if syntax == "rle" else pydicom.uid.JPEG2000Lossless
    for p in cmp_files:
        c = pydicom.dcmread(p)
        assert c.file_meta.TransferSyntaxUID == expected
        assert np.array_equal(_hu(c), _hu(pydicom.dcmread(raw[c.SOPInstanceUID])))


def test_blank_tags_and_chinese_wording(tmp_path: Path) -> None:
    generate_cohort(tmp_path / "blank", 1, 1, StudyOptions(**SMALL, blank_descriptions=True, blank_contrast_tags=True))
    for p in _files(tmp_path / "blank"):
        if p.suffix == ".dcm":
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            assert ds.SeriesDescription == ""
            assert "ContrastBolusAgent" not in ds and "ContrastBolusStartTime" not in ds
    generate_cohort(tmp_path / "zh", 1, 1, StudyOptions(**SMALL, convention="chinese"))
    truth = json.loads((tmp_path / "zh" / "SYN1-0001" / "truth.json").read_text(encoding="utf-8"))
    words = {"plain": ("平扫",), "arterial": ("动脉期",), "portal": ("门脉期", "门静脉期", "静脉期")}
    for phase, uid in truth["phases"].items():
        ds = pydicom.dcmread(tmp_path / "zh" / "SYN1-0001" / truth["series"][uid]["files"][0], stop_before_pixels=True)
        assert ds.SpecificCharacterSet == "ISO_IR 192"
        assert any(w in ds.SeriesDescription for w in words[phase])


def test_conventions_vary_between_patients() -> None:
    vendors = {build_patient(0, i, StudyOptions()).convention.vendor.key for i in range(30)}
    assert len(vendors) >= 4


def test_phases_do_not_line_up_exactly() -> None:
    draw = build_patient(3, 0, StudyOptions())
    starts = {p: draw.geometry[p].z_start for p in ("plain", "arterial", "portal")}
    shifts = {p: draw.geometry[p].breath_hold_mm for p in ("plain", "arterial", "portal")}
    assert len(set(starts.values())) == 3
    assert len({s[2] for s in shifts.values()}) == 3


def test_bad_options_are_refused() -> None:
    with pytest.raises(SyntheticInputError):
        StudyOptions(matrix=5000)
    with pytest.raises(SyntheticInputError):
        StudyOptions(slice_mm=0.0)
    with pytest.raises(SyntheticInputError):
        StudyOptions(convention="toshiba")  # type: ignore[arg-type]


def test_foreign_non_empty_folder_is_refused_and_earlier_output_replaced(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(SyntheticInputError):
        generate_cohort(foreign, 1, 0, StudyOptions(**SMALL))
    assert (foreign / "notes.txt").read_text() == "mine"
    out = tmp_path / "out"
    generate_cohort(out, 2, 0, StudyOptions(**SMALL))
    generate_cohort(out, 1, 0, StudyOptions(**SMALL))
    assert len(read_labels(out / "labels.csv")) == 1
    assert not (out / "SYN0-0002").exists()


def test_progress_is_reported_and_cancel_stops_cleanly(tmp_path: Path) -> None:
    from app.errors import Cancelled
    from app.progress import ProgressState

    seen: list[float] = []
    generate_cohort(tmp_path / "p", 2, 0, StudyOptions(**SMALL), ProgressState(lambda f, _t: seen.append(f)))
    assert seen[-1] == 1.0 and seen == sorted(seen) and len(seen) > 5

    state = ProgressState(lambda f, _t: state.cancel() if f > 0.3 else None)
    with pytest.raises(Cancelled):
        generate_cohort(tmp_path / "c", 3, 0, StudyOptions(**SMALL), state)
    assert list((tmp_path / "c").iterdir()) == []  # nothing partial kept
    generate_cohort(tmp_path / "c", 1, 0, StudyOptions(**SMALL))
    assert len(read_labels(tmp_path / "c" / "labels.csv")) == 1


def test_full_disk_is_refused_up_front_or_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil as _shutil

    from app.synthetic import cohort as cohort_mod
    from app.synthetic.errors import SyntheticError

    real_usage = _shutil.disk_usage
    monkeypatch.setattr(cohort_mod.shutil, "disk_usage", lambda p: real_usage(p)._replace(free=10_000))
    with pytest.raises(SyntheticInputError, match="GB are free"):
        generate_cohort(tmp_path / "small", 1, 0, StudyOptions(**SMALL))
    monkeypatch.setattr(cohort_mod.shutil, "disk_usage", real_usage)

    calls = {"n": 0}
    real_write = cohort_mod.write_study

    def failing_write(*args: object, **kwargs: object) -> dict:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_write(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cohort_mod, "write_study", failing_write)
    with pytest.raises(SyntheticError, match="No space left"):
        generate_cohort(tmp_path / "full", 3, 0, StudyOptions(**SMALL))
    assert list((tmp_path / "full").iterdir()) == []


# --- first-start demo and CLI -------------------------------------------------------------------


def test_ensure_demo_study_is_idempotent(tmp_path: Path) -> None:
    study = ensure_demo_study(tmp_path / "demo")
    truth = json.loads((study / "truth.json").read_text(encoding="utf-8"))
    assert truth["p_true"] > 0.6 and truth["latent_features"]["n_lesions"] == 1
    stamp = {p: p.stat().st_mtime_ns for p in study.rglob("*")}
    assert ensure_demo_study(tmp_path / "demo") == study
    assert {p: p.stat().st_mtime_ns for p in study.rglob("*")} == stamp


def test_cli_demo_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    rc = cli_main(["demo-data", str(out), "--patients", "2", "--seed", "5", "--matrix", "64",
                   "--slice-mm", "10", "--coverage-mm", "60", "--delayed"])
    assert rc == 0
    summary = capsys.readouterr().out
    assert "wrote 2 synthetic patient(s)" in summary
    assert len(read_labels(out / "labels.csv")) == 2
    truth = json.loads((out / "SYN5-0001" / "truth.json").read_text(encoding="utf-8"))
    assert truth["delayed_series"] in truth["series"]
    assert cli_main(["demo-data", str(tmp_path / "bc"), "--patients", "1", "--matrix", "64", "--slice-mm", "10",
                     "--coverage-mm", "40", "--blank-contrast", "--convention", "philips"]) == 0
    for p in _files(tmp_path / "bc" / "SYN0-0001"):
        if p.suffix == ".dcm":
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            assert "ContrastBolusAgent" not in ds and ds.SeriesDescription and ds.Manufacturer == "Philips"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.dcm").write_bytes(b"")
    assert cli_main(["demo-data", str(tmp_path / "other"), "--matrix", "64"]) == 2
    assert cli_main(["demo-data", str(tmp_path / "n0"), "--patients", "0"]) == 2
    assert cli_main(["demo-data", str(tmp_path / "m"), "--matrix", "9999"]) == 2
    err = capsys.readouterr().err
    assert err.count("hcc-response demo-data:") == 3
    assert os.listdir(tmp_path / "other") == ["x.dcm"]
