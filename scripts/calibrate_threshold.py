"""Choose a trained model's decision threshold on a calibration cohort and re-evaluate it.

    .venv/bin/python scripts/calibrate_threshold.py MODEL.safetensors --cohort CALIB.csv \
        --test TEST.csv --out MODEL.safetensors [--cache-dir DIR] [--workers N]

What ``train --threshold-cohort`` does at the end of training, for a model file that already
exists (the shipped demo model 2026.3 was trained on a GPU before the option existed). The
threshold is chosen on the calibration cohort only (:mod:`app.training.threshold`); the test
cohort's metrics in the model card are then recomputed with it. Writes the model (float16, as
shipped) and its ``.sha256``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.commands.train import evaluate_on, format_test_line, score_cohort  # noqa: E402
from app.inference.weights import (  # noqa: E402
    load_model,
    read_description,
    recorded_sha256,
    save_model,
    write_sha256_file,
)
from app.training.threshold import choose_threshold  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--cohort", type=Path, required=True, help="calibration cohort CSV")
    ap.add_argument("--test", type=Path, required=True, help="held-out test cohort CSV")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()

    loaded = load_model(args.model, "cpu", expected_sha256=recorded_sha256(args.model), fold=False)
    config = loaded.config
    scored, _prepared = score_cohort(args.cohort, loaded.model, config, args.cache_dir, "cpu",
                                     workers=args.workers)
    choice = choose_threshold(scored, f"calibration cohort {args.cohort.name} "
                                      f"({len(scored.patient_ids)} patients)")
    print(f"threshold {choice.threshold:g}: sensitivity {choice.sensitivity:.3f}, specificity "
          f"{choice.specificity:.3f} on {choice.chosen_on}")
    config = dataclasses.replace(config, threshold=choice.threshold)
    loaded.model.config = config
    test_doc = evaluate_on(args.test, loaded.model, config, args.cache_dir, "cpu", workers=args.workers)
    print(format_test_line(test_doc))
    desc = read_description(args.model)
    metrics = dict(desc.metrics)
    metrics["threshold"] = choice.as_dict()
    metrics["test"] = test_doc
    notes = (desc.notes + f" Decision threshold {choice.threshold:g} chosen on {choice.chosen_on} "
             "(balanced sensitivity and specificity; scripts/calibrate_threshold.py).")
    desc = dataclasses.replace(desc, metrics=metrics, notes=notes)
    sha = save_model(loaded.model, config, desc, args.out, half=True)
    write_sha256_file(args.out)
    print(f"wrote {args.out} (SHA-256 {sha[:16]}…)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
