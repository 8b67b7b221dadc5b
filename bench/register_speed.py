"""Register speed: insert N realistic predictions, then time the register table's queries.

Usage::

    .venv/bin/python bench/register_speed.py [--n 10000] [--slices 30] [--outcomes 0.2]
                                             [--repeat 5] [--keep DIR]

Each prediction is inserted the way the app does it: one ``add_prediction`` call, one
``BEGIN IMMEDIATE`` transaction with its audit event, WAL with ``synchronous=FULL`` (an fsync
per commit). Then the list/search screen's queries run ``--repeat`` times each on the full
register; the median and the worst time are printed. Goal (issue 5): each query well under a
second with 10,000 predictions. Last, the cost of the integrity check that every writable open
runs first (``PRAGMA quick_check`` of the tables a write touches, issue 19; goal < 100 ms at
10,000 cases): that check alone, the whole file's, and a whole writable open with the check
against a read-only open without it. ``--integrity-only --keep DIR`` reruns only these on a register kept earlier.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.register import db, open_register
from app.register.integrity import quick_check
from app.register.samples import sample_record


def _time(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    times = []
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), max(times), result


def integrity_figures(path: Path, repeat: int) -> None:
    """Print the cost of the integrity check at open (issue 19) on the register at ``path``."""

    def check_only(whole: bool) -> Callable[[], None]:
        def run() -> None:
            con, _uri = db.connect_read_only(path)
            try:
                quick_check(con, path, whole=whole)
            finally:
                con.close()
        return run

    print(f"\nintegrity check at open ({repeat} runs, file {path.stat().st_size / 1e6:.1f} MB)")
    for name, fn in [("quick_check as at open (all but slice detail)", check_only(False)),
                     ("quick_check of the whole file", check_only(True)),
                     ("writable open (probe + quick_check) + close",
                      lambda: open_register(path).close()),
                     ("read-only open (no check) + close",
                      lambda: open_register(path, read_only=True).close())]:
        med, worst, _ = _time(fn, repeat)
        print(f"{name:<45} {med * 1000:8.1f}ms {worst * 1000:8.1f}ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="predictions to insert")
    ap.add_argument("--slices", type=int, default=30, help="slice triplets per prediction")
    ap.add_argument("--outcomes", type=float, default=0.2, help="fraction given an outcome")
    ap.add_argument("--repeat", type=int, default=5, help="runs per query")
    ap.add_argument("--keep", type=Path, default=None, help="write the register here and keep it")
    ap.add_argument("--integrity-only", action="store_true",
                    help="only time the integrity check at open of the register in --keep")
    args = ap.parse_args()
    if args.integrity_only:
        if args.keep is None or not (args.keep / "register.sqlite").is_file():
            ap.error("--integrity-only needs --keep DIR with a register kept by an earlier run")
        integrity_figures(args.keep / "register.sqlite", args.repeat)
        return

    tmp = None
    if args.keep is None:
        tmp = tempfile.TemporaryDirectory(prefix="hcc-register-bench-")
        folder = Path(tmp.name)
    else:
        folder = args.keep
        folder.mkdir(parents=True, exist_ok=True)
    path = folder / "register.sqlite"
    reg = open_register(path)
    n_patients = max(1, args.n // 3)  # about three predictions per patient
    records = [sample_record(i, n_slices=args.slices, n_patients=n_patients,
                             model_version="1.0" if i % 4 else "1.1")
               for i in range(args.n)]

    t0 = time.perf_counter()
    ids = [reg.add_prediction(r) for r in records]
    t_insert = time.perf_counter() - t0
    print(f"insert {args.n} predictions ({args.slices} slices each), one transaction each: "
          f"{t_insert:.1f} s total, {t_insert / args.n * 1000:.2f} ms per prediction")

    every = max(1, round(1 / args.outcomes)) if args.outcomes > 0 else 0
    with_outcome = ids[::every] if every else []
    t0 = time.perf_counter()
    for k, pid in enumerate(with_outcome):
        reg.record_outcome(pid, ("CR", "PR", "SD", "PD")[k % 4], "2025-06-01", entered_by="b")
    t_out = time.perf_counter() - t0
    if with_outcome:
        print(f"record {len(with_outcome)} outcomes: {t_out:.1f} s total, "
              f"{t_out / len(with_outcome) * 1000:.2f} ms each")
    size = path.stat().st_size + (path.with_name(path.name + "-wal").stat().st_size
                                  if path.with_name(path.name + "-wal").exists() else 0)
    print(f"register size: {size / 1e6:.1f} MB")

    pid_sub = records[len(records) // 2].patient_id[3:]  # an ID substring, e.g. '0001666'
    queries: list[tuple[str, Callable[[], Any]]] = [
        ("first page (newest first, 200 rows)", lambda: reg.list_cases()),
        ("count all", lambda: reg.count_cases()),
        (f"search patient ID substring '{pid_sub}'", lambda: reg.list_cases(search=pid_sub)),
        ("search name 'meier'", lambda: reg.list_cases(search="meier")),
        ("filter model 1.1", lambda: reg.list_cases(model="hcc-3phase", model_version="1.1")),
        ("filter outcome = with", lambda: reg.list_cases(outcome="with")),
        ("filter outcome = without", lambda: reg.list_cases(outcome="without")),
        ("filter outcome = responder + model", lambda: reg.list_cases(
            outcome="responder", model="hcc-3phase")),
        ("count outcome = without", lambda: reg.count_cases(outcome="without")),
        ("sort by score", lambda: reg.list_cases(sort="score")),
        ("sort by patient name asc", lambda: reg.list_cases(sort="patient_name",
                                                            descending=False)),
        ("last page (offset n-200)", lambda: reg.list_cases(offset=max(0, args.n - 200))),
        ("model list (filter menu)", lambda: reg.models()),
        ("open one case (detail)", lambda: reg.get_prediction(ids[len(ids) // 3])),
        ("local performance", lambda: reg.performance()),
    ]
    print(f"\n{'query':<45} {'median':>9} {'worst':>9}  rows")
    worst_all = 0.0
    for name, fn in queries:
        med, worst, res = _time(fn, args.repeat)
        worst_all = max(worst_all, worst)
        rows = len(res) if isinstance(res, list) else res if isinstance(res, int) else 1
        print(f"{name:<45} {med * 1000:8.1f}ms {worst * 1000:8.1f}ms  {rows}")
    print(f"\nslowest list/search query: {worst_all * 1000:.1f} ms")

    for name, fn in [("verify (integrity + whole audit chain)", reg.verify),
                     ("export CSV (plain)", lambda: reg.export_csv(folder / "export.csv")),
                     ("export CSV (pseudonymised)",
                      lambda: reg.export_csv(folder / "pseudo.csv", pseudonymise=True)),
                     ("backup (SQLite backup API)",
                      lambda: reg.backup(folder / f"backup-{time.time_ns()}.sqlite"))]:
        med, worst, res = _time(fn, 1)
        extra = f" ok={res.ok}" if hasattr(res, "ok") else ""
        print(f"{name:<45} {med:8.2f} s{extra}")
    reg.close()

    integrity_figures(path, args.repeat)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
