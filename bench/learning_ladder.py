"""The learnability ladder: how much of the response signal each step from truth to network keeps.

Usage: .venv/bin/python bench/learning_ladder.py --test DIR --train DIR [--train DIR2 ...]
           [--model M.safetensors ...] [--input 64:body ...] [--workers N]
           [--cache-dir D] [--n-boot 1000] [--json OUT.json]

``DIR`` is a ``demo-data`` output written with ``--label-maps`` (``labels.csv`` with
``p_true``, a ``truth.json`` and ``labels/`` per study). Every rung is scored on the SAME test
patients (those the app could assemble; a refused study is listed), patient-level AUC with a
stratified bootstrap 95 % CI (:func:`app.stats.bootstrap_metrics`), and its ratio to rung (a):

(a) Bayes-optimal: the generator's ``p_true`` itself;
(b) logistic regression on the generator's latent features (``truth.json``);
(c) logistic regression on features MEASURED inside the truth label maps (lesion-minus-liver
    HU per phase, largest cross-section, necrosis share; :mod:`app.training.ladder`), at full
    resolution and on the network input of each ``--input SIZE:CROP`` (a model's resolution and
    crop policy), plus the extended set (volume, capsule, oil, thrombus, mosaic);
(d) logistic regression on per-phase intensity histograms of each ``--input``;
(e) each ``--model``, through the app's own evaluation (prepare → ``score_slices`` →
    ``evaluate_scored``: mean slice probability per patient).

Logistic regressions are trained on the ``--train`` cohorts only, their penalty chosen by
5-fold cross-validation there. Prints a Markdown table (and writes ``--json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import stats  # noqa: E402
from app.inference.config import ModelConfig  # noqa: E402
from app.parallel import resolve_workers, run_jobs  # noqa: E402
from app.training.cohort import CohortEntry, read_cohort  # noqa: E402
from app.training.ladder import (  # noqa: E402
    BASIC_FEATURES,
    FEATURES,
    Logistic,
    MeasureJob,
    StudyMeasures,
    measure_study,
)
from app.training.prepared import PrepareSettings, cache_path  # noqa: E402


@dataclass
class Cohort:
    """Usable patients of one demo-data folder with everything the rungs need."""

    name: str
    entries: list[CohortEntry]
    y: np.ndarray
    p_true: np.ndarray
    latent: np.ndarray
    measures: list[StudyMeasures]
    excluded: list[tuple[str, str]]

    def matrix(self, what: str) -> np.ndarray:
        basic = [FEATURES.index(f) for f in BASIC_FEATURES]
        if what == "latent":
            return self.latent
        if what == "histogram":
            return np.stack([m.histogram for m in self.measures])
        level, subset = what.split(":")
        rows = np.stack([getattr(m, level) for m in self.measures])
        return rows[:, basic] if subset == "basic" else rows


def _latent(study_dir: Path) -> np.ndarray:
    """The generator's latent features of one patient, as numbers (booleans 0/1), sorted by name."""
    feats = json.loads((study_dir / "truth.json").read_text(encoding="utf-8"))["latent_features"]
    return np.array([float(feats[k]) for k in sorted(feats)], dtype=np.float64)


def load_cohorts(folder: Path, configs: list[ModelConfig], cache_dir: Path, workers: int) -> list[Cohort]:
    """One :class:`Cohort` per network input; every study is assembled once for all of them."""
    cohort = read_cohort(folder / "labels.csv")
    jobs = [MeasureJob(e.study_dir, tuple(configs),
                       tuple(cache_path(cache_dir / "ladder", e.study_dir, PrepareSettings.from_model_config(c))
                             for c in configs))
            for e in cohort.entries]
    t0 = time.perf_counter()
    results = run_jobs(measure_study, jobs, workers)
    print(f"measured {folder.name}: {len(jobs)} studies in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    kept = [(e, m) for e, m in zip(cohort.entries, results, strict=True) if not isinstance(m, str)]
    excluded = [(e.patient_id, m) for e, m in zip(cohort.entries, results, strict=True) if isinstance(m, str)]
    entries = [e for e, _ in kept]
    y = np.array([e.responder for e in entries], dtype=np.int64)
    p_true = np.array([float(e.extra["p_true"]) for e in entries])
    latent = np.stack([_latent(e.study_dir) for e in entries])
    return [Cohort(folder.name, entries, y, p_true, latent, [m[k] for _, m in kept], excluded)
            for k in range(len(configs))]


def merge(cohorts: list[Cohort]) -> Cohort:
    return Cohort("+".join(c.name for c in cohorts), [e for c in cohorts for e in c.entries],
                  np.concatenate([c.y for c in cohorts]), np.concatenate([c.p_true for c in cohorts]),
                  np.concatenate([c.latent for c in cohorts]), [m for c in cohorts for m in c.measures],
                  [x for c in cohorts for x in c.excluded])


@dataclass
class Rung:
    key: str
    what: str
    n: int
    auc: stats.Interval
    note: str = ""


def score(key: str, what: str, y: np.ndarray, s: np.ndarray, n_boot: int, note: str = "") -> Rung:
    boot = stats.bootstrap_metrics(y, s, (s > 0.5).astype(np.int64), n_boot=n_boot, seed=0)
    return Rung(key, what, int(y.size), boot.intervals["auc"], note)


def model_rung(path: Path, test: Cohort, cache_dir: Path, workers: int, n_boot: int) -> Rung:
    """A model file evaluated by the app's own evaluation path on the test patients."""
    from app.inference.weights import load_model
    from app.training.cohort import prepare_cohort
    from app.training.dataset import SliceSet
    from app.training.evaluate import evaluate_scored, score_slices

    loaded = load_model(path, device="cpu")
    prepared = prepare_cohort(test.entries, PrepareSettings.from_model_config(loaded.config),
                              cache_dir=cache_dir / "prepared", workers=workers)
    scored = score_slices(loaded.model, loaded.config, SliceSet.from_studies(prepared.studies))
    rep = evaluate_scored(scored, n_boot=n_boot, seed=0, model_name=path.name)
    c = loaded.config
    note = (f"{c.backbone}, {c.input_size} px, crop {c.crop}; mean slice probability"
            + (f"; {len(prepared.failed)} excluded" if prepared.failed else ""))
    return Rung("e", f"model {path.name}", rep.patient.n, rep.patient.bootstrap.intervals["auc"], note)


def _lr(key: str, what: str, test: Cohort, train: Cohort, features: str, note: str, n_boot: int) -> Rung:
    model = Logistic.fit_cv(train.matrix(features), train.y)
    p = model.predict_proba(test.matrix(features))
    return score(key, what, test.y, p, n_boot, f"{note}; L2 {model.l2:g} (5-fold CV on train)")


BASIC_NOTE = "d HU per phase, diameter, necrosis"
EXTENDED_NOTE = "+ volume, capsule, oil, thrombus, mosaic"


def truth_rungs(test: Cohort, train: Cohort, n_boot: int) -> list[Rung]:
    """Rungs that do not depend on the network input: a, b and c/c+ at full resolution."""
    return [score("a", "Bayes-optimal (generator's p_true)", test.y, test.p_true, n_boot),
            _lr("b", "LR on the 9 latent features", test, train, "latent", "truth.json latent_features", n_boot),
            _lr("c", "LR on measured features, full resolution", test, train, "full:basic", BASIC_NOTE, n_boot),
            _lr("c+", "LR on extended measured features, full resolution", test, train, "full:all",
                EXTENDED_NOTE, n_boot)]


def input_rungs(test: Cohort, train: Cohort, config: ModelConfig, n_boot: int) -> list[Rung]:
    """Rungs c, c+ and d on the network input of ``config``."""
    res = f"{config.input_size} px, crop {config.crop}"
    return [_lr("c", f"LR on measured features, input {res}", test, train, "inputs:basic", BASIC_NOTE, n_boot),
            _lr("c+", f"LR on extended measured features, input {res}", test, train, "inputs:all",
                EXTENDED_NOTE, n_boot),
            _lr("d", f"LR on input intensity histograms, {res}", test, train, "histogram", "32 bins per phase",
                n_boot)]


def markdown(rungs: list[Rung], bayes: float) -> str:
    lines = ["| rung | what | n | AUC (95 % bootstrap CI) | / Bayes | note |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rungs:
        a = r.auc
        lines.append(f"| {r.key} | {r.what} | {r.n} | {a.value:.3f} ({a.ci_low:.3f}–{a.ci_high:.3f}) | "
                     f"{a.value / bayes:.2f} | {r.note} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test", type=Path, required=True, help="demo-data folder of the test cohort")
    ap.add_argument("--train", type=Path, action="append", required=True, help="training cohort folder(s)")
    ap.add_argument("--model", type=Path, action="append", default=[], help="model file(s) to evaluate")
    ap.add_argument("--input", action="append", default=None, metavar="SIZE:CROP",
                    help="network input for rungs c/d, e.g. 64:body (repeatable; default 64:body)")
    ap.add_argument("--workers", type=int, default=0, help="processes (0: one per core, at most 8)")
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/hcc-ladder-cache"))
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--json", type=Path, default=None, help="also write the rungs here")
    args = ap.parse_args()
    workers = resolve_workers(args.workers)
    configs = []
    for spec in args.input or ["64:body"]:
        size, _, crop = spec.partition(":")
        configs.append(ModelConfig(backbone="tiny", input_size=int(size), crop=crop or "body"))
    t0 = time.perf_counter()
    tests = load_cohorts(args.test, configs, args.cache_dir, workers)
    trains = [merge(list(c)) for c in zip(*(load_cohorts(d, configs, args.cache_dir, workers) for d in args.train),
                                           strict=True)]
    test, train = tests[0], trains[0]
    rungs = truth_rungs(test, train, args.n_boot)
    for config, te, tr in zip(configs, tests, trains, strict=True):
        rungs += input_rungs(te, tr, config, args.n_boot)
    rungs += [model_rung(m, test, args.cache_dir, workers, args.n_boot) for m in args.model]
    bayes = rungs[0].auc.value
    print(f"test {test.name}: {len(test.entries)} patients ({int(test.y.sum())} responders); "
          f"train {train.name}: {len(train.entries)} patients; {time.perf_counter() - t0:.0f} s\n")
    print(markdown(rungs, bayes))
    for pid, why in test.excluded + train.excluded:
        print(f"excluded {pid}: {why}")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "test": str(args.test), "train": [str(d) for d in args.train],
            "inputs": [f"{c.input_size}:{c.crop}" for c in configs], "rungs": [{"rung": r.key, "what": r.what, "n": r.n, **r.auc.as_dict(),
                                          "note": r.note} for r in rungs],
            "excluded": test.excluded + train.excluded}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
