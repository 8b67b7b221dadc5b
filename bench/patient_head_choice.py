"""Which patient features should the patient head use? Measured without the test cohort.

    .venv/bin/python bench/patient_head_choice.py FIT.csv CAL.csv [--model M] \
        [--cache-dir DIR] [--workers N]

Scores the FIT and CAL cohorts once with a lesion-head model (its network only, as
``lesion_weighted``), then for each candidate feature set fits the patient head's logistic
regression (:mod:`app.training.patient_head_fit`, L2 by 5-fold CV) and prints:

* ``FIT → CAL``: fitted on FIT, AUC on CAL (DeLong 95 % CI) — the choice is made on this;
* ``CV in CAL``: out-of-fold AUC of a regression fitted within CAL only (fewer patients, but
  none the network trained on);
* ``E[AUC] CAL``: when CAL carries the generator's ``p_true``, the FIT → CAL scores' AUC
  averaged over the labels CAL could have drawn (:func:`app.stats.expected_auc`): the same
  comparison without the noise of one label draw, which on 300 patients is as large as the
  differences between feature sets.

When both cohorts carry the generator's ``p_true``, the same rows follow with the regression
fitted towards it instead of the 0/1 label (``fit-patient-head --soft-target-column p_true``);
the AUCs are always against the labels.

For demo model 2026.3 (FIT = its 600 training patients of seed 101, CAL = 300 fresh patients of
seed 104): docs/learning.md, "The patient head". The test cohort (seed 202) is never read here.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import stats  # noqa: E402
from app.commands.train import score_cohort  # noqa: E402
from app.inference.patient_head import feature_names, named_features  # noqa: E402
from app.inference.weights import default_model_path, load_model, recorded_sha256  # noqa: E402
from app.training.cohort import PreparedCohort, has_column, probability_column  # noqa: E402
from app.training.evaluate import ScoredCohort  # noqa: E402
from app.training.ladder import Logistic  # noqa: E402
from app.training.patient_head_fit import cohort_features, network_only  # noqa: E402


def candidate_sets(phases: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    names = feature_names(phases)
    contrast = tuple(f"contrast_{p}" for p in phases)
    size = ("log_total_area", "log_largest_area")
    first = named_features("first", phases)  # the eleven of the first heads (2026.4)
    spread = tuple(f"spread_{p}" for p in phases)
    rim = tuple(f"rim_{p}" for p in phases)
    return {
        "network score only": ("slice_score",),
        "score + contrast + size": ("slice_score", *contrast, *size),
        "score + contrast + size + necrosis": ("slice_score", *contrast, *size, "necrotic_share"),
        "first eleven (2026.4)": first,
        "first eleven + spread": (*first, *spread),
        "first eleven + rim": (*first, *rim),
        "first eleven + lesion count": (*first, "lesion_count"),
        "measures only (the default since 2026.6)": named_features("measures", phases),
        "all": names,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fit", type=Path, metavar="FIT.csv")
    ap.add_argument("cal", type=Path, metavar="CAL.csv")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()

    path = args.model or default_model_path()
    loaded = load_model(path, "cpu", expected_sha256=recorded_sha256(path))
    config = network_only(loaded.config)
    loaded.model.config = config

    def scored(csv: Path) -> tuple[ScoredCohort, PreparedCohort]:
        t = time.perf_counter()
        out, prepared = score_cohort(csv, loaded.model, config, args.cache_dir, "cpu", workers=args.workers)
        print(f"scored {csv.parent.name}: {len(out.patient_ids)} patients, {out.slice_probs.size} triplets "
              f"in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        return out, prepared

    (fit, fit_prepared), (cal, cal_prepared) = scored(args.fit), scored(args.cal)
    names = feature_names(config.phases)
    x_fit, x_cal = cohort_features(fit), cohort_features(cal)
    y_fit, y_cal = fit.patient_labels.astype(np.int64), cal.patient_labels.astype(np.int64)
    print(f"model {path.name}; FIT {args.fit.parent.name}/{args.fit.name} ({y_fit.size} patients), "
          f"CAL {args.cal.parent.name}/{args.cal.name} "
          f"({y_cal.size} patients)\n")
    p_fit, p_cal = p_true(fit_prepared), p_true(cal_prepared)
    targets = {"0/1 label": (None, None)}
    if p_fit is not None and p_cal is not None:
        targets["p_true"] = (p_fit, p_cal)
    print("| features | fitted towards | n | FIT → CAL AUC (95 % CI) | CV in CAL (OOF AUC) | E[AUC] CAL |")
    print("| --- | --- | --- | --- | --- | --- |")
    for towards, (t_fit, t_cal) in targets.items():
        for label, feats in candidate_sets(config.phases).items():
            cols = [names.index(f) for f in feats]
            reg = Logistic.fit_cv(x_fit[:, cols], y_fit, target=t_fit)
            decision = reg.decision(x_cal[:, cols])
            r = stats.delong_ci(y_cal, decision)
            expected = f"{stats.expected_auc(p_cal, decision):.3f}" if p_cal is not None else "—"
            inner = Logistic.fit_cv(x_cal[:, cols], y_cal, target=t_cal)
            oof = Logistic.out_of_fold(x_cal[:, cols], y_cal, inner.l2, target=t_cal)
            print(f"| {label} | {towards} | {len(cols)} | {r.auc:.3f} ({r.ci_low:.3f}–{r.ci_high:.3f}) | "
                  f"{stats.auc(y_cal, oof):.3f} | {expected} |")
    if p_cal is not None:
        print(f"\nCAL Bayes-optimal AUC {stats.auc(y_cal, p_cal):.3f} "
              f"(E[AUC] of p_true itself {stats.expected_auc(p_cal, p_cal):.3f})")
    return 0


def p_true(prepared: PreparedCohort) -> np.ndarray | None:
    """The generator's true probabilities of a synthetic cohort, in the scored patients' order
    (None when the CSV has no ``p_true``)."""
    return probability_column(prepared, "p_true") if has_column(prepared, "p_true") else None


if __name__ == "__main__":
    raise SystemExit(main())
