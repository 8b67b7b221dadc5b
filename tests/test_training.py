"""Cohort CSV, patient-level split, augmentation and the training loop (pre-made small tensors;
the DICOM path has its own end-to-end test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app.errors import Cancelled, InputError
from app.inference.config import ModelConfig
from app.progress import ProgressState
from app.training.augment import AugmentConfig, augment_batch
from app.training.cohort import (
    CohortEntry,
    CohortError,
    PreparedCohort,
    prepare_cohort,
    read_cohort,
)
from app.training.dataset import SplitError, split_prepared, stratified_patient_split
from app.training.prepared import PreparedStudy, load_prepared, save_prepared
from app.training.trainer import TrainConfig, train

S = 32


# ------------------------------------------------------------------------------------ helpers


def toy_cohort(n: int, seed: int, n_slices: int = 6, size: int = S) -> PreparedCohort:
    """Triplets whose responders carry a bright square in the ARTERIAL phase only."""
    rng = np.random.default_rng(seed)
    studies, entries = [], []
    for i in range(n):
        lab = int(i % 3 == 0)  # a third responders, like the paper's cohort
        x = rng.normal(0.4, 0.05, (n_slices, 3, size, size)).astype(np.float32)
        if lab:
            x[:, 1, 8:16, 8:16] += 0.3
        studies.append(PreparedStudy(f"p{i:03d}", lab, np.clip(x, 0, 1).astype(np.float16),
                                     np.arange(n_slices, dtype=float) * 5))
        entries.append(CohortEntry(f"p{i:03d}", Path("."), lab))
    return PreparedCohort(studies, entries)


def tiny_config(**kw: object) -> TrainConfig:
    model = ModelConfig(backbone="tiny", input_size=S, extra_channels=16, attention_heads=2,
                        hidden=16)
    base: dict[str, object] = dict(model=model, max_iterations=40, batch_size=8, lr=1e-3)
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------------------------ cohort CSV


def _write_csv(tmp: Path, text: str, dirs: tuple[str, ...] = ("a", "b", "c")) -> Path:
    for d in dirs:
        (tmp / d).mkdir(exist_ok=True)
    p = tmp / "cohort.csv"
    p.write_text(text, encoding="utf-8")
    return p


def test_read_cohort_valid(tmp_path: Path) -> None:
    p = _write_csv(tmp_path, "patient_id,study_dir,responder,recist,p_true\n"
                             "A,a,1,PR,0.7\nB,b,0,SD,0.2\n\nC,c,0,,0.1\n")
    c = read_cohort(p)
    assert [e.patient_id for e in c.entries] == ["A", "B", "C"]
    assert c.entries[0].study_dir == tmp_path / "a"
    assert c.entries[0].extra == {"p_true": "0.7"}
    assert c.entries[2].recist is None and c.entries[2].row == 5
    assert c.summary()["responders"] == 1


@pytest.mark.parametrize("text, match", [
    ("patient_id,study_dir\nA,a\n", "missing column.*responder"),
    ("patient_id,study_dir,responder\nA,a,1\nA,b,0\n", "line 3: duplicate patient_id 'A'"),
    ("patient_id,study_dir,responder\nA,a,1\nB,zz,0\n", "line 3: study_dir 'zz' is not a folder"),
    ("patient_id,study_dir,responder\nA,a,maybe\n", "line 2: responder must be 0 or 1"),
    ("patient_id,study_dir,responder,recist\nA,a,1,SD\n", "line 2: RECIST SD contradicts"),
    ("patient_id,study_dir,responder,split\nA,a,1,holdout\n", "line 2: split must be one of"),
    ("patient_id,study_dir,responder\n", "no rows"),
])
def test_read_cohort_errors_name_the_line(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(CohortError, match=match):
        read_cohort(_write_csv(tmp_path, text))
    assert issubclass(CohortError, InputError)


def test_prepare_cohort_caches_and_reports_failures(tmp_path: Path) -> None:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "f.dcm").write_bytes(b"x" * 10)
    entries = [CohortEntry("A", tmp_path / "a", 1), CohortEntry("B", tmp_path / "b", 0)]
    calls: list[str] = []

    def fake_prepare(study_dir: Path, settings: object, *, patient_id: str, label: int
                     ) -> PreparedStudy:
        calls.append(patient_id)
        if patient_id == "B":
            raise InputError("no portal phase")
        return PreparedStudy(patient_id, label, np.zeros((2, 3, 8, 8), np.float16), np.zeros(2))

    from app.training.prepared import PrepareSettings

    cache = tmp_path / "cache"
    first = prepare_cohort(entries, PrepareSettings(input_size=8), cache_dir=cache,
                           prepare_fn=fake_prepare)
    assert [s.patient_id for s in first.studies] == ["A"]
    assert [(e.patient_id, r) for e, r in first.failed] == [("B", "no portal phase")]
    again = prepare_cohort(entries, PrepareSettings(input_size=8), cache_dir=cache,
                           prepare_fn=fake_prepare)
    assert again.cache_hits == 1 and calls == ["A", "B", "B"]  # A came from the cache
    # A changed folder invalidates its entry; other settings use other entries.
    (tmp_path / "a" / "g.dcm").write_bytes(b"y")
    prepare_cohort(entries[:1], PrepareSettings(input_size=8), cache_dir=cache,
                   prepare_fn=fake_prepare)
    prepare_cohort(entries[:1], PrepareSettings(input_size=16), cache_dir=cache,
                   prepare_fn=fake_prepare)
    assert calls == ["A", "B", "B", "A", "A"]


def test_prepared_study_roundtrip(tmp_path: Path) -> None:
    st = PreparedStudy("P", 1, np.random.default_rng(0).random((3, 3, 8, 8)).astype(np.float16),
                       np.array([1.0, 6.0, 11.0]), "1.2.3", "/x", ["w"])
    save_prepared(tmp_path / "s.npz", st)
    back = load_prepared(tmp_path / "s.npz")
    assert back.patient_id == "P" and back.label == 1 and back.warnings == ["w"]
    np.testing.assert_array_equal(back.slices, st.slices)


# ------------------------------------------------------------------------------------ split


def test_stratified_split_disjoint_seeded_and_balanced() -> None:
    y = np.r_[np.ones(33, int), np.zeros(87, int)]  # 120 patients, 27.5 % responders
    tr, va = stratified_patient_split(y, 0.4, seed=3)
    assert set(tr).isdisjoint(va) and len(tr) + len(va) == 120
    assert len(va) == 48  # the paper's 72 / 48
    assert abs(y[tr].mean() - y[va].mean()) < 0.03
    tr2, va2 = stratified_patient_split(y, 0.4, seed=3)
    np.testing.assert_array_equal(va, va2)
    _, va3 = stratified_patient_split(y, 0.4, seed=4)
    assert not np.array_equal(va, va3)
    with pytest.raises(SplitError):
        stratified_patient_split([0, 1], 0.5, 0)  # nobody left for validation
    with pytest.raises(SplitError, match="only one class"):
        stratified_patient_split([0, 0, 0, 0], 0.5, 0)


def test_split_prepared_never_puts_one_patient_on_both_sides() -> None:
    pc = toy_cohort(15, 0)
    data = split_prepared(pc, 0.4, seed=1)
    assert data.val is not None
    assert set(data.train.patient_ids).isdisjoint(data.val.patient_ids)
    assert len(data.train) + len(data.val) == 15 * 6
    # every slice of a patient sits in the set of its patient
    g = data.val.group.numpy()
    assert np.bincount(g).tolist() == [6] * data.val.n_patients


def test_split_column_decides(tmp_path: Path) -> None:
    pc = toy_cohort(6, 0)
    splits = ["train", "train", "val", "train", "test", "val"]
    pc.entries = [CohortEntry(e.patient_id, e.study_dir, e.responder, split=s)
                  for e, s in zip(pc.entries, splits, strict=True)]
    data = split_prepared(pc)
    assert data.train.patient_ids == ["p000", "p001", "p003"]
    assert data.val is not None and data.val.patient_ids == ["p002", "p005"]


# ------------------------------------------------------------------------------------ augment


def test_augment_shape_range_determinism() -> None:
    x = torch.rand(6, 3, 1, S, S)
    g1 = torch.Generator().manual_seed(5)
    g2 = torch.Generator().manual_seed(5)
    a = augment_batch(x, g1)
    b = augment_batch(x, g2)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b)
    assert not torch.equal(a, x)
    assert torch.equal(augment_batch(x, g1, AugmentConfig(enabled=False)), x)


def test_augment_same_geometry_for_the_phases_of_a_triplet() -> None:
    # Identical phases stay identical when only shared transforms (rotation, blur,
    # brightness/contrast) are on; per-phase noise then makes them differ.
    img = torch.zeros(1, S, S)
    img[:, 4:10, 20:28] = 1.0  # an off-centre block, which any rotation moves
    x = img.expand(4, 3, 1, S, S).clone()
    cfg = AugmentConfig(p=1.0, noise_sigma=(0.0, 0.0), rotation_deg=(10.0, 20.0))
    y = augment_batch(x, torch.Generator().manual_seed(0), cfg)
    assert torch.allclose(y[:, 0], y[:, 1]) and torch.allclose(y[:, 0], y[:, 2])
    assert (y[:, 0] - x[:, 0]).abs().max() > 0.5  # the block moved
    noisy = augment_batch(x, torch.Generator().manual_seed(0),
                          AugmentConfig(p=1.0, noise_sigma=(0.05, 0.05)))
    assert not torch.allclose(noisy[:, 0], noisy[:, 1])


# ------------------------------------------------------------------------------------ trainer


def test_train_learns_an_easy_signal_and_records_history() -> None:
    data = split_prepared(toy_cohort(24, 0), 0.4, seed=0)
    res = train(tiny_config(max_iterations=50), data)
    assert res.iterations == 50
    assert res.history[-1].train_loss < res.history[0].train_loss
    best = next(h for h in res.history if h.epoch == res.best_epoch)
    assert best.val_patient_auc is not None and best.val_patient_auc >= 0.9
    assert res.model.training is False
    assert res.summary()["stopped"] == "max_iterations"
    assert res.triplets_per_second > 0


def test_train_is_deterministic_and_resume_matches_straight_run(tmp_path: Path) -> None:
    data = split_prepared(toy_cohort(12, 1, n_slices=4), 0.4, seed=0)
    cfg = tiny_config(max_iterations=1000, max_epochs=4)
    straight = train(cfg, data)
    again = train(cfg, data)
    assert _state_equal(straight.model, again.model)

    ck = tmp_path / "ck"
    train(tiny_config(max_iterations=1000, max_epochs=2), data, checkpoint=ck)
    assert (tmp_path / "ck.safetensors").is_file() and (tmp_path / "ck.json").is_file()
    resumed = train(cfg, data, resume=ck)
    assert [h.epoch for h in resumed.history] == [1, 2, 3, 4]
    assert _state_equal(straight.model, resumed.model)
    assert resumed.history[-1].val_loss == pytest.approx(straight.history[-1].val_loss)

    other = TrainConfig(model=ModelConfig(backbone="tiny", input_size=S, extra_channels=8,
                                          attention_heads=2, hidden=16), batch_size=8)
    with pytest.raises(InputError, match="another model configuration"):
        train(other, data, resume=ck)


def test_time_budget_stops_at_an_epoch_end_and_keeps_the_best_epoch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from app.training import trainer as trainer_mod

    data = split_prepared(toy_cohort(12, 2, n_slices=4), 0.4, seed=0)
    # a clock that advances one minute per reading: every epoch "takes" minutes
    ticks = iter(range(10_000))
    monkeypatch.setattr(trainer_mod.time, "monotonic", lambda: 60.0 * next(ticks))
    res = train(tiny_config(max_iterations=10_000, max_epochs=40, max_minutes=30.0,
                            early_stop_on="auc", patience_epochs=100), data)
    assert res.stopped == "time budget of 30 min"
    assert 1 <= len(res.history) < 40 and res.best_epoch <= len(res.history)
    # no budget: the epoch bound ends it
    ticks = iter(range(100_000))
    res = train(tiny_config(max_iterations=10_000, max_epochs=3, early_stop_on="auc",
                            patience_epochs=100), data)
    assert res.stopped == "max_epochs" and len(res.history) == 3
    with pytest.raises(InputError, match="time budget"):
        tiny_config(max_minutes=0)


def test_train_early_stops_and_cancels() -> None:
    data = split_prepared(toy_cohort(12, 2, n_slices=4), 0.4, seed=0)
    res = train(tiny_config(max_iterations=10_000, max_epochs=40, lr=1e-9, patience_epochs=2,
                            early_stop_on="auc"), data)
    # with a learning rate of 1e-9 the validation AUC cannot improve after epoch 1
    assert res.stopped.startswith("early stop") and len(res.history) == 3
    assert res.best_epoch == 1

    state = ProgressState()
    state.cancel()
    with pytest.raises(Cancelled):
        train(tiny_config(), data, state)


def test_train_refuses_mismatched_input_size() -> None:
    data = split_prepared(toy_cohort(9, 0, n_slices=2, size=16), 0.4, seed=0)
    with pytest.raises(InputError, match="16 px but the model expects 32"):
        train(tiny_config(), data)


def test_epoch_draws_k_slices_per_patient_and_even_validation_subset() -> None:
    from app.training.trainer import _Dist, _epoch_indices, subsample_evenly

    group = torch.tensor([0] * 7 + [1] * 2 + [2] * 5)
    e1 = _epoch_indices(group, 0, 1, _Dist(), per_patient=3)
    e2 = _epoch_indices(group, 0, 2, _Dist(), per_patient=3)
    assert torch.bincount(group[e1]).tolist() == [3, 2, 3]
    assert len(set(e1.tolist())) == 8
    assert set(e1.tolist()) != set(e2.tolist())  # a fresh draw each epoch
    assert torch.equal(e1, _epoch_indices(group, 0, 1, _Dist(), per_patient=3))  # seeded
    full = _epoch_indices(group, 0, 1, _Dist(), per_patient=None)
    assert sorted(full.tolist()) == list(range(14))

    vs = split_prepared(toy_cohort(6, 0, n_slices=9), 0.5, seed=0).val
    assert vs is not None
    sub = subsample_evenly(vs, 3)
    assert np.bincount(sub.group.numpy()).tolist() == [3] * vs.n_patients
    # evenly spaced: first, middle and last slice of each patient
    first_patient = torch.nonzero(vs.group == 0).flatten()
    assert torch.equal(sub.x[:3], vs.x[first_patient[[0, 4, 8]]])


# ------------------------------------------------------------------------------------ soft targets


def _with_targets(cohort: PreparedCohort, values: list[str]) -> PreparedCohort:
    for e, v, row in zip(cohort.entries, values, range(2, 2 + len(values)), strict=True):
        e.extra["p_true"] = v
        object.__setattr__(e, "row", row)
    return cohort


def test_soft_targets_equal_to_the_labels_train_exactly_like_the_labels() -> None:
    from app.training.cohort import attach_soft_targets

    hard = split_prepared(toy_cohort(12, 3, n_slices=4), 0.4, seed=0)
    cohort = toy_cohort(12, 3, n_slices=4)
    _with_targets(cohort, [str(float(s.label)) for s in cohort.studies])
    attach_soft_targets(cohort, "p_true")
    soft = split_prepared(cohort, 0.4, seed=0)
    assert soft.train.target is not None and hard.train.target is None
    assert torch.equal(soft.train.target, soft.train.y.float())
    cfg = tiny_config(max_iterations=12)
    a = train(cfg, hard)
    b = train(tiny_config(max_iterations=12, soft_target_column="p_true"), soft)
    assert _state_equal(a.model, b.model)  # one-hot probabilities = the hard-label loss
    # other targets give another model (the targets really drive the loss) ...
    for st in cohort.studies:
        st.target = 0.5
    flat = train(tiny_config(max_iterations=12, soft_target_column="p_true"), split_prepared(cohort, 0.4, 0))
    assert not _state_equal(a.model, flat.model)
    # ... and asking for soft targets without any is refused, not silently ignored
    with pytest.raises(InputError, match="soft targets"):
        train(tiny_config(max_iterations=2, soft_target_column="p_true"), hard)


@pytest.mark.parametrize(("value", "match"), [("", "missing or empty"), ("high", "not a number"),
                                              ("1.5", "not a probability")])
def test_attach_soft_targets_names_the_bad_row(value: str, match: str) -> None:
    from app.training.cohort import attach_soft_targets

    cohort = _with_targets(toy_cohort(3, 0, n_slices=2), ["0.2", value, "0.9"])
    with pytest.raises(CohortError, match=f"line 3: .*{match}"):
        attach_soft_targets(cohort, "p_true")


def test_bayes_optimal_auc_only_for_a_cohort_with_the_generators_probability() -> None:
    from app.training.evaluate import cohort_bayes_optimal

    labels = np.array([0, 1, 0, 1])
    assert cohort_bayes_optimal(toy_cohort(4, 0, n_slices=2), labels) is None  # a real cohort
    bayes = cohort_bayes_optimal(_with_targets(toy_cohort(4, 0, n_slices=2), ["0.1", "0.8", "0.3", "0.6"]), labels)
    assert bayes is not None and bayes["auc"] == pytest.approx(1.0)
    bayes = cohort_bayes_optimal(_with_targets(toy_cohort(4, 0, n_slices=2), ["0.9", "0.2", "0.3", "0.6"]), labels)
    assert bayes is not None and bayes["auc"] == pytest.approx(0.25)  # one of four pairs ranked right
    with pytest.raises(CohortError, match="not a number"):
        cohort_bayes_optimal(_with_targets(toy_cohort(4, 0, n_slices=2), ["0.1", "x", "0.3", "0.6"]), labels)
