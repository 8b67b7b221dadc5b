"""Landmarks (aorta, portal vein, liver) and the liver's cranio-caudal range."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut
from test_phase_phantom import PHASE_HU, phantom_volume

from app.dicom.landmarks import measure_landmarks
from app.dicom.liver_range import find_liver_range
from app.dicom.types import Volume


@pytest.mark.parametrize("phase", ["plain", "arterial", "portal", "delayed"])
def test_landmark_hu_on_phantom(phase: str) -> None:
    aorta, pv, liver, _, _ = PHASE_HU[phase]
    lm = measure_landmarks(phantom_volume(phase, seed=3), indices=[3, 5, 7, 9])
    assert lm.aorta.hu == pytest.approx(aorta, abs=15)
    assert lm.liver.hu == pytest.approx(liver, abs=10)
    assert lm.portal_vein.hu is not None
    # On a plain scan the portal vein is darker than the liver: the hilum then reads about the
    # liver's own density, which is what the phase decision needs.
    if phase == "plain":
        assert lm.portal_vein.hu < liver + 30
    else:
        assert lm.portal_vein.hu == pytest.approx(pv, abs=20)
    assert lm.quality > 0.5
    assert any("aorta" in e for e in lm.evidence)


def test_aorta_position_is_reported_in_volume_pixels() -> None:
    vol = phantom_volume("arterial")
    lm = measure_landmarks(vol, indices=[5])
    (_, row, col) = lm.aorta.positions[0]
    assert vol.hu[5, int(round(row)), int(round(col))] > 200  # inside the bright aorta


def test_orientation_is_normalised() -> None:
    vol = phantom_volume("portal", seed=1)
    flipped = Volume(
        hu=np.ascontiguousarray(vol.hu[:, ::-1, ::-1]),
        z_positions=vol.z_positions,
        origin=vol.origin,
        pixel_spacing=vol.pixel_spacing,
        slice_spacing=vol.slice_spacing,
        direction=np.diag([-1.0, -1.0, 1.0]),
        sop_instance_uids=vol.sop_instance_uids,
        series_uid=vol.series_uid,
    )
    a = measure_landmarks(vol, [4, 6])
    b = measure_landmarks(flipped, [4, 6])
    assert b.aorta.hu == pytest.approx(a.aorta.hu, abs=5)
    assert b.liver.hu == pytest.approx(a.liver.hu, abs=5)
    _, row, col = b.aorta.positions[0]
    assert flipped.hu[4, int(round(row)), int(round(col))] > 120


def test_no_liver_on_slices_without_liver() -> None:
    lm = measure_landmarks(phantom_volume("portal", liver_slices=(20, 30)), indices=[2, 5, 8])
    assert lm.liver.hu is None
    assert any("no liver" in e for e in lm.evidence)


@pytest.mark.parametrize("phase", ["plain", "arterial", "portal"])
@pytest.mark.parametrize(("lesion", "lipiodol"), [(False, False), (True, True)])
def test_liver_range_exact_on_phantom(phase: str, lesion: bool, lipiodol: bool) -> None:
    vol = phantom_volume(
        phase, n_slices=14, liver_slices=(3, 10), lesion=lesion, lipiodol=lipiodol, seed=7
    )
    r = find_liver_range(vol)
    assert r.indices[0] == 3 and r.indices[-1] == 10
    assert r.z_min == pytest.approx(vol.z_positions[3])
    assert r.z_max == pytest.approx(vol.z_positions[10])
    assert r.confidence > 0.8
    # Lesion and TACE oil are inside the liver: the cross-section is not eaten away.
    assert max(r.areas_mm2) > 0.8 * np.pi * 75 * 70


def test_liver_range_cut_by_scan_edge_is_flagged() -> None:
    vol = phantom_volume("portal", n_slices=10, liver_slices=(-3, 6))
    r = find_liver_range(vol)
    assert r.indices[0] == 0
    assert r.confidence < 0.7
    assert any("cut" in e for e in r.evidence)


def test_liver_range_without_liver() -> None:
    r = find_liver_range(phantom_volume("portal", n_slices=6, liver_slices=(20, 30)))
    assert r.confidence == 0.0
    assert r.indices == list(range(6))


def _load_real(folder: Path) -> Volume:
    files = sorted(p for p in folder.iterdir() if p.name.startswith("CT"))
    ds = sorted((pydicom.dcmread(p) for p in files), key=lambda d: float(d.ImagePositionPatient[2]))
    hu = np.stack([apply_modality_lut(d.pixel_array, d).astype(np.float32) for d in ds])
    z = np.array([float(d.ImagePositionPatient[2]) for d in ds])
    return Volume(
        hu=hu,
        z_positions=z,
        origin=tuple(float(x) for x in ds[0].ImagePositionPatient),  # type: ignore[arg-type]
        pixel_spacing=(float(ds[0].PixelSpacing[0]), float(ds[0].PixelSpacing[1])),
        slice_spacing=float(np.median(np.diff(z))),
        direction=np.eye(3),
        sop_instance_uids=[str(d.SOPInstanceUID) for d in ds],
        series_uid="real",
    )


@pytest.fixture(scope="module")
def real_ct() -> Volume:
    from conftest import SHARED_DATA

    folder = SHARED_DATA / "totalsegmentator_example_ct"
    if not folder.is_dir():
        pytest.skip("../shared/data is not present")
    return _load_real(folder)


def test_landmarks_on_real_ct(real_ct: Volume) -> None:
    """Real portal-venous CT: aorta ~150 HU anterior-left of the spine, enhanced liver."""
    lm = measure_landmarks(real_ct, indices=[0, 5, 10, 15, 19])
    assert lm.aorta.hu is not None and 120 < lm.aorta.hu < 200
    assert lm.liver.hu is not None and 80 < lm.liver.hu < 120
    # The aorta was found near pixel (297, 263) on the 512² slice (checked by eye).
    _, row, col = lm.aorta.positions[2]
    assert abs(row - 297) < 12 and abs(col - 263) < 12
    assert lm.portal_vein.hu is not None and lm.portal_vein.hu > lm.liver.hu


def test_liver_range_on_real_ct(real_ct: Volume) -> None:
    """The 20 slices lie inside the liver: every slice is liver, and the range is flagged as cut."""
    r = find_liver_range(real_ct)
    assert r.indices == list(range(20))
    assert min(r.areas_mm2) > 10000  # > 100 cm² of liver on every slice
    assert r.confidence < 0.7


def _with_extra(vol: Volume, slices: range, hu: float) -> Volume:
    """Copy of ``vol`` with a liver-dense blob (a stand-in for heart or muscle) on ``slices``,
    sitting on the liver's footprint, as an unenhanced heart sits on the dome."""
    hu_arr = vol.hu.copy()
    rows, cols = hu_arr.shape[1:]
    rr, cc = np.mgrid[0:rows, 0:cols]
    blob = ((rr - rows / 2 + 2) / 16.0) ** 2 + ((cc - cols / 2 + 24) / 16.0) ** 2 <= 1.0
    for z in slices:
        hu_arr[z][blob] = hu + np.random.default_rng(z).normal(0, 8, blob.sum())
    return Volume(
        hu=hu_arr,
        z_positions=vol.z_positions,
        origin=vol.origin,
        pixel_spacing=vol.pixel_spacing,
        slice_spacing=vol.slice_spacing,
        direction=vol.direction,
        sop_instance_uids=vol.sop_instance_uids,
        series_uid=vol.series_uid,
    )


def test_liver_ranges_consensus_corrects_one_phase() -> None:
    """One phase with a liver-dense structure above the dome: alone it overshoots, the study
    consensus (phases shifted by a breath-hold of one slice) brings it back and says so."""
    from app.dicom.liver_range import find_liver_ranges

    vols = {
        "plain": phantom_volume("plain", n_slices=16, liver_slices=(3, 10), seed=1),
        "arterial": phantom_volume("arterial", n_slices=16, liver_slices=(4, 11), seed=2),
        "portal": phantom_volume("portal", n_slices=16, liver_slices=(4, 11), seed=3),
    }
    vols["plain"] = _with_extra(vols["plain"], range(10, 15), PHASE_HU["plain"][2])
    alone = find_liver_range(vols["plain"])
    assert alone.indices[-1] >= 12  # followed the blob upwards
    joint = find_liver_ranges(vols)
    assert joint["plain"].indices[0] == 3 and joint["plain"].indices[-1] == 10
    assert any("agree with the other phases" in e for e in joint["plain"].evidence)
    for phase in ("arterial", "portal"):
        assert (joint[phase].indices[0], joint[phase].indices[-1]) == (4, 11)
        assert not any("agree" in e for e in joint[phase].evidence)


def test_retroperitoneal_is_beside_the_spine_behind_its_front() -> None:
    from app.dicom._morphology import _Spine
    from app.dicom.liver_range import _retroperitoneal

    spine = _Spine(row=60.0, col=50.0, anterior_row=52.0, found=True)
    spacing = 2.5
    # Kidney: 6 cm to the side, behind the front of the vertebral body.
    assert _retroperitoneal(58.0, 50.0 - 60.0 / spacing, spine, spacing)
    # Tip of the right lobe: further lateral, or in front of the vertebral body.
    assert not _retroperitoneal(58.0, 50.0 - 90.0 / spacing, spine, spacing)
    assert not _retroperitoneal(45.0, 50.0 - 60.0 / spacing, spine, spacing)
    # Without a spine nothing is excluded.
    lost = _Spine(row=60.0, col=50.0, anterior_row=52.0, found=False)
    assert not _retroperitoneal(58.0, 50.0 - 60.0 / spacing, lost, spacing)
