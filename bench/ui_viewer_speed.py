"""How long the viewers keep the event loop busy (RELIABILITY 29: no stall > 100 ms).

Builds a three-phase study of N slices per phase at a 512 × 512 matrix (real CT size), shows
it in a ViewerPanel offscreen and measures, per user action, the time from the call to a fully
rendered panel (``QWidget.grab`` forces pyqtgraph to convert the slices to images and paint):

- scroll one pair (three slices change), with and without Grad-CAM overlays, and with the
  measurement overlays of issue 17 (three ROIs, a distance and the crosshair, their HU
  statistics recomputed on every scroll; target p95 ≤ 30 ms),
- change the window/level (three level changes),
- change the CAM opacity,
- load a new study (set_study).

Usage::

    .venv/bin/python bench/ui_viewer_speed.py [--slices 60] [--matrix 512] [--repeats 40]

Prints mean / 95th percentile / max in milliseconds. Offscreen rendering uses Qt's raster
engine like a desktop without OpenGL, so the figures are an upper bound for a real display
of the same size.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PySide6 import QtWidgets  # noqa: E402

from app.dicom.types import AssembledStudy, SlicePair, Volume  # noqa: E402


def build_study(n: int, matrix: int) -> AssembledStudy:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:matrix, 0:matrix]
    body = ((xx - matrix / 2) / (0.45 * matrix)) ** 2 + ((yy - matrix / 2) / (0.35 * matrix)) ** 2 <= 1
    base = np.where(body, 40.0, -1000.0).astype(np.float32)
    volumes = {}
    for k, phase in enumerate(("plain", "arterial", "portal")):
        hu = np.repeat(base[None], n, axis=0)
        hu += rng.normal(0, 12, hu.shape).astype(np.float32)
        z = -200.0 + 5.0 * np.arange(n) + k  # phases a millimetre apart, as acquired
        volumes[phase] = Volume(
            hu=hu, z_positions=z, origin=(-200.0, -200.0, float(z[0])), pixel_spacing=(0.78, 0.78),
            slice_spacing=5.0, direction=np.eye(3), sop_instance_uids=[str(i) for i in range(n)],
            series_uid=phase,
        )
    pairs = [
        SlicePair(z_ref=float(z), index={p: i for p in volumes}, z_mm={p: float(z) for p in volumes})
        for i, z in enumerate(volumes["plain"].z_positions)
    ]
    return AssembledStudy(
        patient_id="bench", patient_name="bench", study_uid="1", study_date="", study_description="",
        assignment={p: p for p in volumes}, volumes=volumes,
        liver_range_mm=dict.fromkeys(volumes, (-150.0, -50.0)), pairs=pairs,
    )


def timed(fn, widget: QtWidgets.QWidget, repeats: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        widget.grab()  # forces the conversion to images and the paint of every viewer
        out.append((time.perf_counter() - t0) * 1000.0)
    return np.asarray(out)


def report(name: str, ms: np.ndarray) -> None:
    print(f"{name:38s} mean {ms.mean():6.1f} ms   p95 {np.percentile(ms, 95):6.1f} ms   max {ms.max():6.1f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=60)
    ap.add_argument("--matrix", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=40)
    args = ap.parse_args()

    import pyqtgraph as pg

    pg.setConfigOptions(imageAxisOrder="row-major")
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    from app.ui.viewer_panel import ViewerPanel

    study = build_study(args.slices, args.matrix)
    panel = ViewerPanel()
    panel.resize(1500, 600)
    panel.show()
    app.processEvents()
    print(f"study: 3 × {args.slices} × {args.matrix}² float32; panel 1500 × 600 px offscreen; "
          f"torch threads n/a; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")

    report("set_study (new study)", timed(lambda i: panel.set_study(study), panel, max(args.repeats // 8, 3)))
    n = len(study.pairs)
    report("scroll one pair", timed(lambda i: panel.set_pair_index(i % n), panel, args.repeats))
    rng = np.random.default_rng(1)
    cams = {p: rng.random((n, args.matrix, args.matrix), dtype=np.float32) for p in study.volumes}
    panel.set_cam_cache(cams, global_max=1.0)
    report(f"scroll, Grad-CAM on, smooth={panel.viewers['plain'].smooth()}", timed(lambda i: panel.set_pair_index((i + 1) % n), panel, args.repeats))
    for v in panel.viewers.values():
        v.set_smooth(not v.smooth())
    report(f"scroll, Grad-CAM on, smooth={panel.viewers['plain'].smooth()}",
           timed(lambda i: panel.set_pair_index((i + 1) % n), panel, args.repeats))
    for v in panel.viewers.values():
        v.set_smooth(not v.smooth())
    # Measurement overlays (issue 17): three ROIs and a distance on every pane plus the
    # crosshair; each scroll recomputes every ROI's mean ± SD on the three new slices.
    from app.ui.measure import Measurement

    for m in (
        Measurement("ellipse", -40.0, -30.0, 10.0, 20.0),
        Measurement("rectangle", 20.0, -20.0, 60.0, 30.0),
        Measurement("ellipse", -120.0, -60.0, -60.0, 0.0),
        Measurement("distance", -100.0, 50.0, 100.0, 50.0),
    ):
        panel.measure.add(m)
    panel.measure.set_reference((0.0, 0.0))
    report("scroll, Grad-CAM + 4 measurements + crosshair",
           timed(lambda i: panel.set_pair_index((i + 1) % n), panel, args.repeats))
    panel.set_inverted(True)
    report("scroll, all overlays, inverted grey scale",
           timed(lambda i: panel.set_pair_index((i + 2) % n), panel, args.repeats))
    panel.set_inverted(False)
    panel.measure.clear()
    report("window/level change", timed(lambda i: panel.set_window(300 + i, 40 + i), panel, args.repeats))
    report("CAM opacity change", timed(lambda i: panel.set_cam_opacity(0.2 + 0.01 * i), panel, args.repeats))
    panel.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
