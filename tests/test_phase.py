"""Per-series and study-level phase classification (tags, image, joint assignment)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from test_phase_phantom import phantom_volume, series_info

from app.dicom.phase import (
    N_SAMPLE_SLICES,
    classify_series,
    classify_study,
    needs_confirmation,
    sample_indices,
)
from app.dicom.types import InstanceRef, Volume
from app.errors import Cancelled
from app.progress import ProgressState

T0 = 10 * 3600.0
# uid, true phase, phantom phase, description, seconds after T0
SPECS = [
    ("s1", "plain", "plain", "ABD NATIVE 5.0 B30f", 0.0),
    ("s2", "arterial", "arterial", "ART 5.0 B30f", 120.0),
    ("s3", "portal", "portal", "PV 5.0 B30f", 160.0),
    ("s4", "other", "delayed", "DELAY 5.0 B30f", 300.0),
]


def _study(tags: bool, times: bool = True, order=SPECS):
    series, vols = [], {}
    for k, (uid, _, ph, desc, dt) in enumerate(order):
        contrast = ph != "plain"
        s = series_info(
            uid,
            series_number=k + 1,
            description=desc if tags else "",
            contrast_agent=("IOPAMIDOL" if contrast else None) if tags else None,
            contrast_start_time=T0 + 85.0 if tags else None,
            acquisition_time=T0 + dt if times else None,
        )
        series.append(s)
        vols[uid] = phantom_volume(ph, seed=k + 11, uid=uid)
    return series, vols


@pytest.mark.parametrize("tags", [True, False])
def test_four_phase_study(tags: bool) -> None:
    series, vols = _study(tags)
    calls = classify_study(series, vols)
    for uid, truth, *_ in SPECS:
        call = calls[uid]
        assert call.phase == truth, call.evidence
        assert call.confidence > 0.9
        assert not call.conflict
        assert call.image_phase == truth
        assert call.evidence[-1].startswith("→ ")
    if not tags:
        assert all(c.tag_phase is None for c in calls.values())
    assert "aorta_hu" in calls["s2"].measurements


def test_tags_only() -> None:
    series, _ = _study(tags=True)
    calls = classify_study(series)
    assert [calls[u].phase for u, *_ in SPECS] == ["plain", "arterial", "portal", "other"]
    assert all(c.image_phase is None for c in calls.values())
    assert any("after bolus start" in e for e in calls["s2"].evidence)


def test_image_only_without_times() -> None:
    """No tags and no acquisition times: the image and the study consistency decide."""
    series, vols = _study(tags=False, times=False, order=list(reversed(SPECS)))
    calls = classify_study(series, vols)
    assert [calls[u].phase for u, *_ in SPECS] == ["plain", "arterial", "portal", "other"]


def test_tag_image_conflict_is_flagged() -> None:
    """Description says arterial, the image is plain: the call says so and needs confirmation."""
    s = series_info("x", description="ART 5.0", acquisition_time=T0)
    call = classify_study([s], {"x": phantom_volume("plain")})["x"]
    assert call.conflict
    assert needs_confirmation(call)
    assert call.tag_phase == "arterial" and call.image_phase == "plain"
    assert any("conflict" in e for e in call.evidence)


def test_two_series_claiming_one_phase() -> None:
    """Two different acquisitions both described and imaged as arterial: one is denied, flagged."""
    series, vols = _study(tags=True)
    extra = series_info(
        "s5",
        series_number=5,
        description="ART 5.0 B30f",
        contrast_agent="IOPAMIDOL",
        contrast_start_time=T0 + 85.0,
        acquisition_time=T0 + 130.0,
    )
    vols["s5"] = phantom_volume("arterial", seed=99, uid="s5")
    calls = classify_study([*series, extra], vols)
    arterial = [u for u, c in calls.items() if c.phase == "arterial"]
    assert len(arterial) == 1
    loser = "s5" if arterial == ["s2"] else "s2"
    assert calls[loser].conflict
    assert calls["s1"].phase == "plain" and calls["s3"].phase == "portal"


def test_thin_recon_shares_the_phase_of_its_acquisition() -> None:
    series, vols = _study(tags=False)
    thin = series_info(
        "s2b",
        series_number=22,
        description="",
        acquisition_time=T0 + 120.0,
        slice_thickness=1.0,
        n_slices=60,
    )
    vols["s2b"] = phantom_volume("arterial", seed=5, uid="s2b")
    calls = classify_study([*series, thin], vols)
    assert calls["s2b"].phase == "arterial" == calls["s2"].phase
    assert any("same acquisition" in e for e in calls["s2b"].evidence)


def test_non_axial_localizer_and_non_ct_are_other() -> None:
    series, vols = _study(tags=True)
    extra = [
        series_info("cor", orientation="coronal", description="PV COR"),
        series_info("loc", image_type=["ORIGINAL", "PRIMARY", "LOCALIZER"], description="Topogram"),
        series_info("mr", modality="MR", description="ART"),
        series_info("ref", status="refused", refused_reason="gap of 10 mm"),
    ]
    calls = classify_study([*series, *extra], vols)
    for s in extra:
        assert calls[s.uid].phase == "other"
        assert "→ other" in calls[s.uid].evidence[0]
    assert calls["s3"].phase == "portal"


def test_non_liver_series_is_other() -> None:
    series, vols = _study(tags=False)
    chest = series_info("chest", series_number=9, acquisition_time=T0 + 400.0)
    vols["chest"] = phantom_volume("portal", liver_slices=(50, 60), seed=4, uid="chest")
    calls = classify_study([*series, chest], vols)
    assert calls["chest"].phase == "other"
    assert calls["s3"].phase == "portal"


def test_classify_series_single() -> None:
    series, vols = _study(tags=True)
    call = classify_series(series[1], series, vols["s2"])
    assert call.phase == "arterial"
    assert call.image_phase == "arterial"


def test_progress_and_cancel() -> None:
    series, vols = _study(tags=True)
    seen: list[float] = []
    state = ProgressState(lambda f, t: seen.append(f))
    classify_study(series, vols, state)
    assert seen and seen[-1] == 1.0
    state.cancel()
    with pytest.raises(Cancelled):
        classify_study(series, vols, state)


def test_sample_indices() -> None:
    def with_n(n: int):
        inst = [
            InstanceRef(path=__file__, sop_instance_uid=str(i), position=(0, 0, i), z=float(i))
            for i in range(n)
        ]  # type: ignore[arg-type]
        return series_info("a", n_slices=n, instances=inst)

    assert sample_indices(with_n(4)) == [0, 1, 2, 3]
    idx = sample_indices(with_n(60))
    assert len(idx) == N_SAMPLE_SLICES and idx == sorted(set(idx))
    # Upper-middle of the range (towards the head = higher z).
    assert idx[0] >= 15 and idx[-1] <= 55
    assert sample_indices(with_n(0)) == []


def test_real_ct_tags_and_image(shared_data) -> None:
    """Real contrast CT, bolus start 14:02:16.7, acquisition 14:03:52.5 (96 s) → portal."""
    import pydicom
    from pydicom.pixels import apply_modality_lut

    folder = shared_data / "totalsegmentator_example_ct"
    ds = sorted(
        (pydicom.dcmread(p) for p in folder.iterdir() if p.name.startswith("CT")),
        key=lambda d: float(d.ImagePositionPatient[2]),
    )
    d0 = ds[0]

    def tm(v: str) -> float:
        return int(v[:2]) * 3600 + int(v[2:4]) * 60 + float(v[4:])

    s = series_info(
        "real",
        description=str(d0.SeriesDescription),
        contrast_agent=str(d0.ContrastBolusAgent),
        contrast_start_time=tm(d0.ContrastBolusStartTime),
        acquisition_time=tm(d0.AcquisitionTime),
        n_slices=len(ds),
        rows=int(d0.Rows),
        columns=int(d0.Columns),
    )
    tag_call = classify_study([s])["real"]
    assert tag_call.phase == "portal" and tag_call.tag_phase == "portal"
    assert any(re.search(r"9[5-8] s after bolus start → portal", e) for e in tag_call.evidence), (
        tag_call.evidence
    )

    idx = [0, 4, 8, 12, 16, 19]
    z = np.array([float(d.ImagePositionPatient[2]) for d in ds])
    vol = Volume(
        hu=np.stack([apply_modality_lut(ds[i].pixel_array, ds[i]).astype(np.float32) for i in idx]),
        z_positions=z[idx],
        origin=(0.0, 0.0, float(z[0])),
        pixel_spacing=(float(d0.PixelSpacing[0]), float(d0.PixelSpacing[1])),
        slice_spacing=2.0,
        direction=np.eye(3),
        sop_instance_uids=[str(ds[i].SOPInstanceUID) for i in idx],
        series_uid="real",
    )
    blank = series_info("real", n_slices=len(ds))
    image_call = classify_study([blank], {"real": vol})["real"]
    assert image_call.phase == "portal"
    assert image_call.image_phase == "portal"
    both = classify_study([s], {"real": vol})["real"]
    assert both.phase == "portal" and not both.conflict
