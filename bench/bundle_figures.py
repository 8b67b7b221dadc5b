"""Packaging figures: build time, bundle and archive size, frozen start-up time to the window.

Usage::

    .venv/bin/python bench/bundle_figures.py            # measure an existing dist/hcc-response
    .venv/bin/python bench/bundle_figures.py --build    # build it first (bash packaging/build.sh)

Start-up is measured as the wall time of ``hcc-response gui --no-demo --exit-after 0`` (the
timer fires once the event loop runs with the main window shown, then the app quits), offscreen,
best of three runs after one warm-up; a screenshot of that window is saved beside the bundle.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "dist" / "hcc-response"


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", action="store_true", help="run packaging/build.sh first")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if args.build:
        t0 = time.perf_counter()
        subprocess.run(["bash", str(ROOT / "packaging" / "build.sh")], check=True)
        print(f"build time (build.sh, incl. frozen self-test and archive): "
              f"{time.perf_counter() - t0:.0f} s")
    exe = BUNDLE / ("hcc-response.exe" if os.name == "nt" else "hcc-response")
    if not exe.exists():
        print(f"no bundle at {BUNDLE}; run with --build", file=sys.stderr)
        return 2
    print(f"bundle size: {tree_size(BUNDLE) / 2**20:.0f} MiB ({BUNDLE})")
    for archive in sorted((ROOT / "dist").glob("hcc-response-*.tar.*")):
        print(f"archive size: {archive.stat().st_size / 2**20:.0f} MiB ({archive.name})")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    times = []
    with tempfile.TemporaryDirectory() as home:
        env["HCC_RESPONSE_HOME"] = home
        shot = ROOT / "dist" / "frozen-main-window.png"
        for i in range(args.runs + 1):
            t0 = time.perf_counter()
            subprocess.run(
                [str(exe), "gui", "--no-demo", "--exit-after", "0", "--screenshot", str(shot)],
                check=True, env=env, capture_output=True,
            )
            if i:  # the first run warms the file cache
                times.append(time.perf_counter() - t0)
    print(f"frozen start-up to window (and quit), best of {args.runs}: {min(times):.2f} s "
          f"(all: {', '.join(f'{t:.2f}' for t in times)}); screenshot {shot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
