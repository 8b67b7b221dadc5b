"""Hostile header values (issue 14, items 1–3): each bad file is rejected at scan time with a
reason naming the value, decoding failures become typed per-file refusals, and the geometry
code refuses impossible spacings by itself. Every file is written here with pydicom."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from dicom_factory import SeriesSpec, write_series
from pydicom.uid import JPEG2000Lossless, RLELossless

from app.cli import main
from app.dicom.errors import DicomError, VolumeLoadError
from app.dicom.limits import MAX_ROWS, ImplausibleGeometry
from app.dicom.scan import scan_folder
from app.dicom.volume import load_volume


def _edit(path: Path, **values: Any) -> None:
    """Rewrite one header value (or several) of a written file; None deletes the attribute."""
    ds = pydicom.dcmread(path)
    for key, value in values.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(path)


def _rejected(folder: Path) -> dict[str, str]:
    result = scan_folder(folder)
    return {f.path.name: f.reason for f in result.files if f.status == "rejected"}


# One bad value per case: (attribute edits, words the rejection reason must contain).
CASES: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    ({"Rows": 20000, "Columns": 20000}, ("image size", "20000")),
    ({"Rows": 65535}, ("image size", "65535")),
    ({"NumberOfFrames": 1000000}, ("NumberOfFrames", "1000000")),
    ({"NumberOfFrames": -3}, ("NumberOfFrames", "-3")),
    ({"BitsAllocated": 12}, ("BitsAllocated", "12")),
    ({"BitsStored": 17}, ("BitsStored", "17")),
    ({"SamplesPerPixel": 3}, ("SamplesPerPixel",)),
    ({"PixelSpacing": ["1e308", "1e308"]}, ("PixelSpacing", "1e+308")),
    ({"PixelSpacing": ["0", "0"]}, ("PixelSpacing", "0")),
    ({"PixelSpacing": ["-0.8", "0.8"]}, ("PixelSpacing", "-0.8")),
    ({"PixelSpacing": ["NaN", "0.8"]}, ("PixelSpacing", "nan")),
    ({"SliceThickness": "1e308"}, ("SliceThickness",)),
    ({"SliceThickness": "-5"}, ("SliceThickness", "-5")),
    ({"ImagePositionPatient": ["0", "0", "1e308"]}, ("ImagePositionPatient",)),
    ({"ImageOrientationPatient": ["0"] * 6}, ("ImageOrientationPatient", "unit")),
    ({"ImageOrientationPatient": ["1", "0", "0", "1", "0", "0"]}, ("ImageOrientationPatient",)),
    ({"ImageOrientationPatient": ["2", "0", "0", "0", "2", "0"]}, ("ImageOrientationPatient",)),
    ({"RescaleSlope": "NaN"}, ("RescaleSlope", "nan", "finite")),
    ({"RescaleSlope": "inf"}, ("RescaleSlope", "inf")),
    ({"RescaleIntercept": "1e308"}, ("RescaleIntercept", "1e+308")),
    ({"RescaleIntercept": "-inf"}, ("RescaleIntercept", "-inf")),
    ({"RescaleSlope": "0"}, ("RescaleSlope 0",)),
    ({"RescaleSlope": "1e6"}, ("HU",)),
]


@pytest.mark.parametrize(("edits", "words"), CASES, ids=[
    "-".join(f"{k}={v}" for k, v in e.items())[:40] for e, _ in CASES])
def test_bad_header_value_rejects_the_file_with_its_reason(
        tmp_path: Path, edits: dict[str, Any], words: tuple[str, ...]) -> None:
    paths = write_series(tmp_path, SeriesSpec(n=5))
    _edit(paths[2], **edits)
    rejected = _rejected(tmp_path)
    assert list(rejected) == [paths[2].name], rejected
    reason = rejected[paths[2].name]
    for w in words:
        assert w.lower() in reason.lower(), reason
    # the other files are still used: one bad file costs that file only
    result = scan_folder(tmp_path)
    assert result.counts["used"] == 4


def test_plausible_values_pass(tmp_path: Path) -> None:
    """The limits leave real CT alone: 1024² matrix, 0.3 mm pixels, 12-bit unsigned stored
    values with intercept -1024, thickness 0 (written by some exports), a tilted plane."""
    paths = write_series(tmp_path, SeriesSpec(n=4))
    tilted = ["1", "0", "0", "0", "0.990268", "-0.139173"]
    for p in paths:
        _edit(p, PixelSpacing=["0.3", "0.3"], SliceThickness="0", BitsStored=12,
              ImageOrientationPatient=tilted)
    assert _rejected(tmp_path) == {}


def test_32_bit_stored_values_are_judged_by_the_loader(tmp_path: Path) -> None:
    """32-bit stored values span ±2e9 in theory; real ones are checked after decoding."""
    from app.dicom.limits import rescale_problem

    assert rescale_problem(1.0, -1024.0, 32, True) is None
    assert rescale_problem(1.0, -1024.0, 16, False) is None
    assert rescale_problem(2.0, 0.0, 16, False) is not None  # 0..131070 HU
    assert rescale_problem(float("nan"), 0.0, 32, True) is not None


def test_scan_cli_lists_the_rejections_in_json(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    paths = write_series(tmp_path, SeriesSpec(n=8))
    _edit(paths[0], RescaleSlope="NaN")
    _edit(paths[1], ImageOrientationPatient=["0"] * 6)
    _edit(paths[2], PixelSpacing=["1e308", "1e308"])
    rc = main(["scan", str(tmp_path), "--json", "--no-assemble"])
    out = capsys.readouterr().out
    doc = json.loads(out, parse_constant=_no_constants)
    reasons = {Path(f["path"]).name: f["reason"] for f in doc["files"]}
    assert rc == 0
    assert set(reasons) == {p.name for p in paths[:3]}
    assert "RescaleSlope" in reasons[paths[0].name]
    assert "ImageOrientationPatient" in reasons[paths[1].name]
    assert "PixelSpacing" in reasons[paths[2].name]


def _no_constants(name: str) -> None:
    raise AssertionError(f"JSON holds the non-standard constant {name}")


# --------------------------------------------------------------------------------------------
# Compressed pixel data whose header declares another size (the MemoryError of issue 14)


def _compress(paths: list[Path], syntax: str) -> None:
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.compress(syntax)
        ds.save_as(p)


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, RLELossless])
def test_compressed_slice_declaring_a_huge_matrix_is_rejected_at_scan(
        tmp_path: Path, syntax: str, capsys: pytest.CaptureFixture[str]) -> None:
    paths = write_series(tmp_path, SeriesSpec(n=5))
    _compress(paths, syntax)
    _edit(paths[1], Rows=65535, Columns=65535)
    _edit(paths[3], Rows=20000, Columns=20000)
    rejected = _rejected(tmp_path)
    assert set(rejected) == {paths[1].name, paths[3].name}
    assert all("image size" in r for r in rejected.values())
    # the whole scan command (with phase classification, which decodes) ends with a message
    rc = main(["scan", str(tmp_path), "--json"])
    captured = capsys.readouterr()
    assert rc in (0, 2) and "Traceback" not in captured.err
    json.loads(captured.out, parse_constant=_no_constants)


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, RLELossless])
def test_compressed_size_mismatch_is_a_typed_refusal_when_decoding(
        tmp_path: Path, syntax: str) -> None:
    """A declared size within the limits but not the compressed frame's: the scan cannot
    know without decoding, the loader refuses that file by name (a DicomError)."""
    paths = write_series(tmp_path, SeriesSpec(n=4))
    _compress(paths, syntax)
    for p in paths:
        _edit(p, Rows=MAX_ROWS, Columns=MAX_ROWS)
    series = scan_folder(tmp_path).series[0]
    assert series.rows == MAX_ROWS
    with pytest.raises(VolumeLoadError, match="cannot decode") as err:
        load_volume(series)
    assert paths[0].name in str(err.value) or "slice" in str(err.value)


def test_memory_error_while_decoding_is_a_typed_refusal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_series(tmp_path, SeriesSpec(n=4))
    series = scan_folder(tmp_path).series[0]

    def no_memory(self: Any) -> np.ndarray:
        raise MemoryError()

    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(no_memory))
    with pytest.raises(VolumeLoadError, match="not enough memory"):
        load_volume(series)


def test_volume_larger_than_the_budget_is_refused_before_allocating(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_series(tmp_path, SeriesSpec(n=4))
    series = scan_folder(tmp_path).series[0]
    monkeypatch.setattr("app.dicom.limits.MAX_VOLUME_BYTES", 4 * 32 * 32 * 4 - 1)
    with pytest.raises(VolumeLoadError, match="too large to load"):
        load_volume(series)


def test_file_changed_since_the_scan_is_refused_not_decoded(tmp_path: Path) -> None:
    paths = write_series(tmp_path, SeriesSpec(n=4))
    series = scan_folder(tmp_path).series[0]
    _edit(paths[2], Rows=4096)
    with pytest.raises(VolumeLoadError, match="rescan"):
        load_volume(series)


@pytest.mark.parametrize(("edits", "what"), [
    ({"RescaleSlope": "NaN"}, "non-finite"),
    ({"RescaleIntercept": "1e308"}, "non-finite"),  # float32 overflow: inf
    ({"RescaleIntercept": "5e5"}, "beyond"),
])
def test_loader_refuses_slices_with_unusable_hu(tmp_path: Path, edits: dict[str, Any],
                                                what: str) -> None:
    """Defence in depth: a rescale the scan did not see (here: changed after the scan) gives
    a refusal naming the file, never a NaN or infinite slice."""
    paths = write_series(tmp_path, SeriesSpec(n=4))
    series = scan_folder(tmp_path).series[0]
    _edit(paths[1], **edits)
    with pytest.raises(VolumeLoadError, match=what) as err:
        load_volume(series)
    assert paths[1].name in str(err.value)


# --------------------------------------------------------------------------------------------
# The anatomy code refuses an impossible spacing by itself (the OverflowError of issue 14)


@pytest.mark.parametrize("spacing", [1e308, float("inf"), float("nan"), 0.0, -1.0])
def test_landmarks_and_liver_range_refuse_an_impossible_spacing(spacing: float) -> None:
    from app.dicom.landmarks import measure_landmarks
    from app.dicom.liver_range import find_liver_range
    from app.inference.arrays import phantom_arrays, study_from_arrays

    study = study_from_arrays(phantom_arrays(3, 64, phases=("portal",)),
                              pixel_spacing=(spacing, spacing))
    vol = study.volumes["portal"]
    with pytest.raises(ImplausibleGeometry, match="PixelSpacing"):
        measure_landmarks(vol)
    with pytest.raises(DicomError, match="PixelSpacing"):
        find_liver_range(vol)
