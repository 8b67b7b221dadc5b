"""Retrieve + predict + store back through a real PACS (Orthanc) on loopback.

Usage::

    .venv/bin/python bench/pacs_roundtrip.py [--matrix 512] [--repeats 1] [--method C-GET]
                                             [--device cpu] [--threads N]

Writes a synthetic three-phase study (3 × 50 slices of ``--matrix``² at 5 mm, the demo
generator's defaults), starts Debian's Orthanc on 127.0.0.1 with a throw-away configuration
(``tests/orthanc_server.py``, as the tests do), stores the study into it with C-STORE and loads
the bundled model — none of which is timed — then times, per round, what a user waits for:

- ``retrieve``: C-FIND for the instance count + C-GET (or C-MOVE) into a fresh import folder;
- ``assemble``: scan, phase classification, liver range, pairing (the app's import);
- ``predict``: the model over every slice triplet and the vote;
- ``gradcam``: the whole study's Grad-CAM (the captures use it);
- ``export``: SR + three Secondary Captures written;
- ``store``: C-STORE of the four objects back to Orthanc;

and prints each stage and the total (the median over ``--repeats`` rounds). Orthanc is stopped
at the end whatever happens.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from orthanc_server import OrthancServer, dicom_files, load_study, orthanc_binary, settings_for  # noqa: E402

STAGES = ("retrieve", "assemble", "predict", "gradcam", "export", "store")


def one_round(settings: object, study_uid: str, loaded: object, work: Path) -> dict[str, float]:
    from app.dicom.assembly import assemble_folder
    from app.dicomnet.link import DicomLink
    from app.dicomnet.retrieve import retrieve_study
    from app.dicomnet.store import store_files
    from app.export.sources import instance_paths
    from app.export.writer import export_dicom
    from app.inference.gradcam import gradcam_study
    from app.inference.predictor import predict

    t: dict[str, float] = {}
    link = DicomLink(settings)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    got = retrieve_study(link, study_uid, work / "import")
    t["retrieve"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scan, results = assemble_folder(got.folder, keep_volumes=True)
    study = next(s for _, s in results if not isinstance(s, Exception))
    t["assemble"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = predict(study, loaded)  # type: ignore[arg-type]
    t["predict"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cams = gradcam_study(loaded, study)  # type: ignore[arg-type]
    t["gradcam"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    export = export_dicom(study, result, cams, instance_paths(scan, study.assignment.values()),
                          work / "out")
    t["export"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    store_files(link, export.files)
    t["store"] = time.perf_counter() - t0
    t["total"] = sum(t[s] for s in STAGES)
    print(f"  round: {got.n_files} files retrieved, {len(study.pairs)} slice triplets, "
          f"{result.label} ({result.responder_votes}/{result.total_votes}); "
          + ", ".join(f"{k} {v:.2f} s" for k, v in t.items()), flush=True)
    return t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--matrix", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--method", choices=("C-GET", "C-MOVE"), default="C-GET")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if orthanc_binary() is None:
        print("Orthanc is not installed: run scripts/install_dicom_tools.sh (as root)", file=sys.stderr)
        return 2
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from app.inference.weights import load_bundled_model
    from app.offline import forbid_network
    from app.synthetic.cohort import generate_cohort
    from app.synthetic.options import StudyOptions

    forbid_network()  # as the app: only the configured node (loopback here) is let through
    with tempfile.TemporaryDirectory(prefix="pacs-bench-") as tmp:
        work = Path(tmp)
        generate_cohort(work / "cohort", 1, seed=args.seed, options=StudyOptions(matrix=args.matrix))
        study_dir = next(p for p in (work / "cohort").iterdir() if p.is_dir())
        n_files = len(dicom_files(study_dir))
        server = OrthancServer(work / "orthanc")
        server.start()
        try:
            t0 = time.perf_counter()
            uid = load_study(server, study_dir)
            print(f"study: {n_files} files of {args.matrix}² stored into Orthanc in "
                  f"{time.perf_counter() - t0:.2f} s (not timed below)")
            t0 = time.perf_counter()
            loaded = load_bundled_model(device=args.device)
            print(f"model loaded in {time.perf_counter() - t0:.2f} s (not timed below); "
                  f"torch threads {torch.get_num_threads()}, device {args.device}")
            settings = settings_for(server.port, retrieve=args.method, storage_scp=True,
                                    storage_scp_port=server.scp_port, timeout_s=60.0)
            rounds = [one_round(settings, uid, loaded, work / f"round{i}")
                      for i in range(args.repeats)]
        finally:
            server.stop()
    print(f"\nretrieve ({args.method}) + predict + store back, median of {len(rounds)} round(s):")
    for key in (*STAGES, "total"):
        print(f"  {key:<9} {statistics.median(r[key] for r in rounds):7.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
