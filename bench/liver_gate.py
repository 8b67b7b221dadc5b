"""The liver gate on the same weights: a lesion-head model evaluated with the gate off and on.

    .venv/bin/python bench/liver_gate.py COHORT.csv --model M [--cache-dir DIR] [--workers N]

Writes two copies of the model that differ only in ``liver_gate`` (the network alone, as
``lesion_weighted``: a patient head fitted on ungated measures would not fit gated ones) and
runs ``hcc-response evaluate`` on each, then prints the patient AUC and the Grad-CAM liver
shares (per-map mean and as displayed) side by side. Use a calibration cohort with label maps
(e.g. 100 patients of seed 104), not the test cohort: this is how the gate was chosen
(docs/learning.md, "The liver gate").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.cli import main as cli  # noqa: E402
from app.inference.model import build_model  # noqa: E402
from app.inference.weights import load_model, save_model  # noqa: E402
from app.training.patient_head_fit import network_only  # noqa: E402


def gated_copy(src: Path, dst: Path, gate: bool) -> None:
    """``src``'s network with ``liver_gate`` set to ``gate`` (weights untouched)."""
    loaded = load_model(src, fold=False)
    config = dataclasses.replace(network_only(loaded.config), liver_gate=gate)
    model = build_model(config)
    model.load_state_dict(loaded.model.state_dict())
    save_model(model, config, loaded.description, dst)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cohort", type=Path, metavar="COHORT.csv")
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for gate in (False, True):
            name = "on" if gate else "off"
            model = Path(tmp) / f"gate-{name}.safetensors"
            gated_copy(args.model, model, gate)
            out = Path(tmp) / f"eval-{name}"
            argv = ["evaluate", str(args.cohort), "--model", str(model), "--out-dir", str(out),
                    "--workers", str(args.workers), "--n-boot", "200"]
            if args.cache_dir is not None:
                argv += ["--cache-dir", str(args.cache_dir)]
            if cli(argv) != 0:
                return 1
            doc = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))
            cam = doc.get("gradcam_mass") or {}
            auc = doc["patient_level"]["auc_delong"]
            rows.append((name, auc["auc"], auc["ci_low"], auc["ci_high"], cam.get("liver_share"),
                         cam.get("displayed_liver_share")))
    print(f"\nmodel {args.model.name}, cohort {args.cohort} (network alone, lesion_weighted)\n")
    print("| gate | network AUC (95 % CI) | CAM liver share, per-map mean | as displayed |")
    print("| --- | --- | --- | --- |")
    for name, auc, lo, hi, per_map, shown in rows:
        pm = f"{per_map:.1%}" if per_map is not None else "—"
        sh = f"{shown:.1%}" if shown is not None else "—"
        print(f"| {name} | {auc:.3f} ({lo:.3f}–{hi:.3f}) | {pm} | {sh} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
