"""Loading a scanned series as a HU volume: per-slice rescale, order, subsets, decoding."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import SeriesSpec, default_hu, write_series

from app.dicom.errors import VolumeLoadError
from app.dicom.scan import scan_folder
from app.dicom.volume import load_volume

LOSSLESS = ("1.2.840.10008.1.2.dcm", "1.2.840.10008.1.2.1.dcm", "1.2.840.10008.1.2.2.dcm",
            "1.2.840.10008.1.2.1.99.dcm", "1.2.840.10008.1.2.5.dcm", "1.2.840.10008.1.2.4.57.dcm",
            "1.2.840.10008.1.2.4.70.dcm", "1.2.840.10008.1.2.4.80.dcm",
            "1.2.840.10008.1.2.4.90.dcm")
LOSSY = ("1.2.840.10008.1.2.4.50.dcm", "1.2.840.10008.1.2.4.51.dcm", "1.2.840.10008.1.2.4.81.dcm", "1.2.840.10008.1.2.4.91.dcm")


def test_each_slice_rescaled_with_its_own_intercept_and_sorted_by_position(
    tmp_path: Path,
) -> None:
    intercepts = [-1024.0, -1000.0, -1024.0, -512.0, 0.0]
    spec = SeriesSpec(n=5, z0=-20.0, intercepts=intercepts)
    paths = write_series(tmp_path, spec)
    # Instance numbers reversed: the order must come from positions, not numbers.
    for k, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        ds.InstanceNumber = 100 - k
        ds.save_as(p)
    s = scan_folder(tmp_path).series[0]
    vol = load_volume(s)
    assert vol.hu.dtype == np.float32 and vol.shape == (5, 32, 32)
    expected = np.stack([default_hu(k, 32, 32) for k in range(5)]).astype(np.float32)
    np.testing.assert_array_equal(vol.hu, expected)
    np.testing.assert_allclose(vol.z_positions, [-20, -15, -10, -5, 0])
    assert vol.slice_spacing == pytest.approx(5.0) and vol.pixel_spacing == (0.8, 0.8)
    assert vol.origin == pytest.approx((-12.8, -12.8, -20.0))
    np.testing.assert_allclose(vol.direction, np.eye(3))
    assert vol.sop_instance_uids == [i.sop_instance_uid for i in s.instances]
    assert vol.series_uid == s.uid and vol.slice_thickness == pytest.approx(5.0)


def test_indices_load_only_those_slices(tmp_path: Path) -> None:
    write_series(tmp_path, SeriesSpec(n=8))
    s = scan_folder(tmp_path).series[0]
    full = load_volume(s, workers=1)
    part = load_volume(s, indices=[6, 1, 3])
    np.testing.assert_array_equal(part.hu, full.hu[[1, 3, 6]])
    np.testing.assert_array_equal(part.z_positions, full.z_positions[[1, 3, 6]])
    with pytest.raises(VolumeLoadError, match="slice index 8 outside"):
        load_volume(s, indices=[8])


def test_decode_error_names_the_file(tmp_path: Path) -> None:
    paths = write_series(tmp_path, SeriesSpec(n=4))
    s = scan_folder(tmp_path).series[0]
    paths[2].write_bytes(b"garbage")
    with pytest.raises(VolumeLoadError, match=paths[2].name):
        load_volume(s)
    paths[1].unlink()
    with pytest.raises(VolumeLoadError, match="vanished"):
        load_volume(s, indices=[0, 1], workers=1)


def test_compressed_syntaxes_decode_to_the_same_hu(tmp_path: Path, shared_data: Path) -> None:
    folder = shared_data / "ct_transfer_syntaxes"
    ref_ds = pydicom.dcmread(folder / "CTImage.dcm")
    ref = ref_ds.pixel_array * float(ref_ds.RescaleSlope) + float(ref_ds.RescaleIntercept)
    for suffix in LOSSLESS + LOSSY:
        src = next(folder.glob(f"*_{suffix}"))
        one = tmp_path / suffix
        one.mkdir()
        shutil.copy(src, one / "x")
        result = scan_folder(one)
        assert result.counts["used"] == 1, (suffix, result.files)
        vol = load_volume(result.series[0])
        if suffix in LOSSLESS:
            np.testing.assert_array_equal(vol.hu[0], ref, err_msg=suffix)
        else:
            # Lossy: close on average (8-bit JPEG baseline is the coarsest of them).
            assert float(np.mean(np.abs(vol.hu[0] - ref))) < 40.0, suffix


def test_real_jpeg2000_series(shared_data: Path) -> None:
    s = scan_folder(shared_data / "totalsegmentator_example_ct").series[0]
    vol = load_volume(s, indices=[0, 19])
    assert vol.shape == (2, 512, 512)
    assert vol.hu.min() == pytest.approx(-1024.0)
    # Real abdomen: soft tissue present in the middle of the slice.
    centre = vol.hu[:, 200:300, 200:300]
    assert -100 < float(np.median(centre)) < 200
