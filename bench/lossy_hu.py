"""How far from the uncompressed HU does each compressed transfer syntax decode, and what does
the scan say about it? (RELIABILITY.md 10: the same HU only where the compression is lossless.)

    .venv/bin/python bench/lossy_hu.py [--folder ../shared/data/ct_transfer_syntaxes]

For every ``CTImage.dcm_*`` file of the shared test folder (one real CT slice in 16 transfer
syntaxes) it scans and loads the file as the app does and prints the mean and largest absolute
HU difference to the uncompressed ``CTImage.dcm``, the HU step (RescaleSlope), and the series'
warnings (lossy compression, coarse HU) - or the reason the file is rejected.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct_transfer_syntaxes"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", type=Path, default=DEFAULT)
    args = parser.parse_args()
    if not (args.folder / "CTImage.dcm").is_file():
        print(f"no CTImage.dcm in {args.folder} (the shared test data)", file=sys.stderr)
        return 2

    import numpy as np
    import pydicom

    from app.dicom.scan import scan_folder
    from app.dicom.volume import load_volume

    ref_ds = pydicom.dcmread(args.folder / "CTImage.dcm")
    ref = ref_ds.pixel_array * float(ref_ds.RescaleSlope) + float(ref_ds.RescaleIntercept)
    print(f"{'transfer syntax':<24} {'mean |dHU|':>10} {'max |dHU|':>10} {'HU step':>8}  scan says")
    for path in sorted(args.folder.glob("CTImage.dcm_*")):
        syntax = path.name.rsplit("_", 1)[-1].removesuffix(".dcm")
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(path, Path(tmp) / "x.dcm")
            result = scan_folder(Path(tmp))
            if not result.series:
                print(f"{syntax:<24} {'-':>10} {'-':>10} {'-':>8}  {result.files[0].reason}")
                continue
            diff = np.abs(load_volume(result.series[0]).hu[0] - ref)
            step = float(pydicom.dcmread(path, stop_before_pixels=True).RescaleSlope)
            says = "; ".join(result.series[0].warnings) or "(nothing: lossless)"
            print(f"{syntax:<24} {diff.mean():10.2f} {diff.max():10.0f} {step:8.3g}  {says}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
