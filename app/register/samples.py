"""Realistic made-up prediction records, for tests, benchmarks and UI development.

The numbers look like real ones (30 slice triplets at 5 mm, per-slice probabilities around a
study-level tendency, majority vote, three phase series) but belong to no one. Deterministic for
a given seed and index, so a test can rebuild the record it inserted and compare.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random

from app.register.records import LABEL_NON_RESPONDER, LABEL_RESPONDER, PredictionRecord

_PHASES = ("plain", "arterial", "portal")
_NAMES = ("MEIER^ANNA", "SMITH^JOHN", "GARCÍA^LUCÍA", "NGUYEN^VAN", "MÜLLER^KARL", "LI^WEI",
          "O'BRIEN^SEAN", "ROSSI^MARIA", "TANAKA^YUKI", "KOWALSKI^PIOTR")


def sample_record(index: int, *, seed: int = 0, n_slices: int = 30, n_patients: int | None = None,
                  model_name: str = "hcc-3phase", model_version: str = "1.0") -> PredictionRecord:
    """The ``index``-th made-up prediction of a deterministic series.

    Parameters
    ----------
    index:
        Which record; patients repeat every ``n_patients`` records (default: never), each
        record has its own study.
    seed:
        Series seed; the same (seed, index) always gives the same record.
    n_slices:
        Slice triplets (per-slice results and pairs).
    """
    rng = random.Random(f"{seed}:{index}")
    pidx = index % n_patients if n_patients else index
    tendency = rng.random()
    probs = [min(max(rng.gauss(tendency, 0.15), 0.0), 1.0) for _ in range(n_slices)]
    votes = [1 if p >= 0.5 else 0 for p in probs]
    r_votes = sum(votes)
    tie = 2 * r_votes == n_slices
    score = sum(probs) / n_slices
    if tie:
        label = LABEL_RESPONDER if score >= 0.5 else LABEL_NON_RESPONDER
    else:
        label = LABEL_RESPONDER if 2 * r_votes > n_slices else LABEL_NON_RESPONDER
    z0 = -200.0 + rng.uniform(-20, 20)
    pairs = []
    results = []
    for k in range(n_slices):
        z = round(z0 + 5.0 * k, 2)
        pairs.append({"z_ref": z, "index": {ph: 10 + k for ph in _PHASES},
                      "z_mm": {ph: round(z + rng.uniform(-1.0, 1.0), 2) for ph in _PHASES}})
        results.append({"z_ref": z, "probability": round(probs[k], 6), "label": votes[k]})
    base = f"1.2.826.0.1.3680043.10.999.{seed}.{index}"
    # one person per patient ID: the register refuses an ID that names two people (issue 14)
    person = random.Random(f"{seed}:patient:{pidx}")
    study_day = dt.date(2020, 1, 1) + dt.timedelta(days=rng.randrange(0, 1800))
    rng.randrange(0, 15000), rng.choice(("M", "F"))  # the draws these used to be (same values below)
    return PredictionRecord(
        patient_id=f"PAT{seed:02d}{pidx:06d}",
        patient_name=_NAMES[pidx % len(_NAMES)] + f"{pidx}",
        birth_date=(dt.date(1940, 1, 1) + dt.timedelta(days=person.randrange(0, 15000))).isoformat(),
        sex=person.choice(("M", "F")),
        study_uid=base,
        study_date=study_day.isoformat(),
        accession=f"ACC{seed}{index:07d}",
        study_description="CT LIVER 3-PHASE",
        model_name=model_name,
        model_version=model_version,
        model_sha256=hashlib.sha256(f"{model_name}:{model_version}".encode()).hexdigest(),
        weights_kind="bundled",
        device="cpu",
        label=label,
        score=round(score, 6),
        responder_votes=r_votes,
        total_votes=n_slices,
        tie=tie,
        tie_rule="mean probability >= 0.5" if tie else "",
        series_uids={ph: f"{base}.{i + 1}" for i, ph in enumerate(_PHASES)},
        liver_range_mm={ph: [z0, round(z0 + 5.0 * (n_slices - 1), 2)] for ph in _PHASES},
        slice_pairs=pairs,
        slice_results=results,
        warnings=["slice thickness 5.0 mm differs from training data"] if index % 7 == 0 else [],
        overrides={"arterial": f"{base}.2"} if index % 11 == 0 else {},
        run_time_s=round(rng.uniform(2.0, 9.0), 3),
        source_folder=f"/data/import/{index}",
        os_user="tester",
        created_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=17 * index),
    )
