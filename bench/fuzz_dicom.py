"""Fuzzing campaign for hostile and broken DICOM (issue 14): no crash, no hang, no silent NaN.

Usage::

    PYTHONPATH=. .venv/bin/python bench/fuzz_dicom.py --files 10000 --studies 200 --seed 1 \\
        --max-minutes 240 --out /work/fuzz-out/long

Seeds: small synthetic three-phase studies (explicit little endian, RLE and JPEG 2000 where the
encoder is installed) and the real files of ``../shared/data`` (``--no-real`` leaves them out).
Every case draws 1–3 mutations (:mod:`bench.fuzzlib.mutations`: byte flips, truncations, length
fields set to 0xFFFFFFFF/0, duplicated/removed tags, VR changes, NaN/Inf/1e308 in PixelSpacing,
SliceThickness, RescaleSlope/Intercept, ImagePositionPatient, ImageOrientationPatient (all-zero
too), Rows/Columns 65535/20000 (on compressed seeds as well), odd BitsAllocated, huge
NumberOfFrames, HTML in descriptions and names, identical series copies) from a generator
seeded by (``--seed``, level, case number): the same seed gives the same cases, and a run cut
short by ``--max-minutes`` is a prefix of the full one.

Two levels, after a directed pass (``--no-directed`` skips it) that puts every hostile header
value of issue 14 on a synthetic study once (:mod:`bench.fuzzlib.directed`; the first predict
cases are directed too: NaN slope, PixelSpacing 1e308, identical series forced on the phases …):

* scan: mutated copies of a seed folder until ``--files`` mutated files; each one scanned and
  assembled in a worker process (the calls of ``hcc-response scan``), and a sample of
  ``--scan-subprocess`` of them through ``python -m app scan DIR --json`` as well;
* predict: ``--studies`` mutated synthetic studies through ``python -m app predict DIR --json``
  (``--predict-subprocess`` at once, the bundled demo model, ``--device``), each with a timeout.

Every worker and subprocess runs under an address-space limit (``--mem-limit-gb``, default 8):
a declared 65535 x 65535 volume fails there as a ``MemoryError`` instead of pushing the shared
machine into swap or the OOM killer. It prints a table (exit codes, tracebacks, internal
errors, timeouts, max RSS from ``wait4``, non-finite results, invalid JSON, refusals without a
JSON error document, the size and longest line of the per-user log) and, for each distinct
failure, writes a minimised reproducer to
``--out``: ``case/`` (the smallest file set), ``mutations.json`` and ``README.txt`` with the
command that shows the failure. Exit status 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.fuzzlib.directed import directed_predict, directed_scan
from bench.fuzzlib.minimise import ddmin, shrink_files
from bench.fuzzlib.mutations import Mutation, SeedInfo, apply_mutations, draw_mutation
from bench.fuzzlib.oracle import (
    REPO,
    Outcome,
    ScanWorker,
    cli_env,
    judge_cli,
    reason_class,
    run_cli,
)
from bench.fuzzlib.seeds import SHARED_DATA, real_seeds, synthetic_seeds

#: Mutation kinds and weights per level. Predict cases favour the semantic mutations (values,
#: sizes, names, copies) that leave a study predictable, where silent wrong results hide.
SCAN_KINDS = {"byte_flip": 3, "truncate": 2, "length_field": 3, "duplicate_element": 2,
              "vr_change": 2, "remove_tag": 3, "set_ds": 5, "set_us": 3, "set_is": 1,
              "html": 1, "copy_series": 0.5, "duplicate_file": 0.5}
PREDICT_KINDS = {"set_ds": 6, "set_us": 2, "set_is": 1, "html": 2, "copy_series": 2,
                 "remove_tag": 1, "byte_flip": 1, "truncate": 0.5, "length_field": 0.5,
                 "duplicate_file": 0.5}


@dataclass
class Options:
    files: int = 300
    studies: int = 3
    seed: int = 0
    max_minutes: float = 30.0
    scan_subprocess: int = 10
    predict_subprocess: int = 2
    out: Path = Path("fuzz-out")
    work: Path | None = None
    real: bool = True
    shared: Path = SHARED_DATA
    device: str = "cpu"
    scan_timeout_s: float = 60.0
    predict_timeout_s: float = 300.0
    mem_limit_gb: float = 8.0
    minimise_minutes: float = 5.0
    directed: bool = True


@dataclass
class Case:
    level: str
    index: int
    seed: SeedInfo
    mutations: list[Mutation]
    facts: dict[str, Any] = field(default_factory=dict)
    confirm: bool = False

    @property
    def name(self) -> str:
        return f"{self.level}-{self.index:05d}"

    def n_files(self) -> int:
        n = 0
        for m in self.mutations:
            copies = m.params.get("copies", 1) if m.kind == "copy_series" else 1
            n += len(m.targets) * copies
        return n


@dataclass
class Tally:
    """Counts of one level (one row of the table)."""

    cases: int = 0
    files: int = 0
    exit_codes: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    max_rss_kb: int = 0
    seconds: float = 0.0
    refusals_without_json: int = 0
    wall_s: float = 0.0
    #: why cases were refused (exit 2), reasons with numbers and paths blanked
    refusals: dict[str, int] = field(default_factory=dict)

    def add(self, o: Outcome, files: int) -> None:
        self.cases += 1
        self.files += files
        key = "timeout" if o.exit_code is None else str(o.exit_code)
        self.exit_codes[key] = self.exit_codes.get(key, 0) + 1
        if o.failure:
            self.failures[o.failure] = self.failures.get(o.failure, 0) + 1
        self.max_rss_kb = max(self.max_rss_kb, o.max_rss_kb)
        self.seconds += o.seconds
        if o.json_on_refusal is False:
            self.refusals_without_json += 1
        if o.exit_code == 2 and not o.failure and o.detail:
            why = reason_class(o.detail)
            self.refusals[why] = self.refusals.get(why, 0) + 1


@dataclass
class Report:
    tallies: dict[str, Tally]
    signatures: dict[str, int]
    reproducers: dict[str, str]
    seconds: float
    seeds: list[str]
    #: the subprocesses' per-user log after the run: total bytes and the longest line (item 8)
    log_bytes: int = 0
    log_longest_line: int = 0

    def failed(self) -> int:
        return sum(self.signatures.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Campaign:
    """One run: seeds, the scan level, the predict level, the minimising of each failure."""

    def __init__(self, opts: Options) -> None:
        self.o = opts
        self.t0 = time.monotonic()
        self.deadline = self.t0 + 60.0 * opts.max_minutes
        self.tmp = Path(tempfile.mkdtemp(prefix="fuzz-", dir=opts.work))
        self.env = cli_env(self.tmp / "home")
        self.mem = int(opts.mem_limit_gb * 2**30)
        self.worker = ScanWorker(opts.scan_timeout_s, self.mem)
        self.tallies = {"directed": Tally(), "scan": Tally(), "scan-cli": Tally(),
                        "predict": Tally()}
        self.first: dict[str, tuple[Case, Outcome]] = {}
        self.counts: dict[str, int] = {}
        self.seeds: list[SeedInfo] = []
        self._lock = threading.Lock()

    # -- cases ---------------------------------------------------------------------------------

    def _draw(self, level: str, index: int, seeds: list[SeedInfo], weights: list[float],
              kinds: dict[str, float]) -> Case:
        rng = np.random.default_rng([self.o.seed, 1 if level == "scan" else 2, index])
        w = np.array(weights) / sum(weights)
        seed = seeds[int(rng.choice(len(seeds), p=w))]
        n = int(rng.integers(1, 4))
        case = Case(level, index, seed, [draw_mutation(rng, seed, kinds) for _ in range(n)])
        # half the predict cases accept an assignment that needs confirmation, as a user would
        # after checking it: the mutation then reaches the model instead of the question
        case.confirm = bool(rng.random() < 0.5)
        return case

    def _materialise(self, case: Case, mutations: list[Mutation], where: Path) -> dict[str, Any]:
        return apply_mutations(case.seed.folder, where, mutations)

    def _record(self, level: str, case: Case, o: Outcome) -> None:
        with self._lock:  # predict cases finish in several threads
            self.tallies[level].add(o, case.n_files())
            if o.signature:
                self.counts[o.signature] = self.counts.get(o.signature, 0) + 1
                self.first.setdefault(o.signature, (case, o))

    def _predict_args(self, folder: Path, facts: dict[str, Any], confirm: bool) -> list[str]:
        args = ["predict", str(folder), "--json", "--quiet", "--device", self.o.device]
        ident = facts.get("identical_series")
        if ident:
            uids = [*ident["copies"], ident["original"]][-3:]
            phases = ("plain", "arterial", "portal")[-len(uids):]
            args += ["--phase", ",".join(f"{p}={u}" for p, u in zip(phases, uids, strict=True))]
            # the user accepts: the result must still carry a warning
            confirm = bool(ident.get("confirm"))
        if confirm:
            args.append("--confirm")
        return args

    def run_cli_case(self, level: str, case: Case, folder: Path,
                     facts: dict[str, Any]) -> Outcome:
        if level == "predict":
            args = self._predict_args(folder, facts, case.confirm)
            timeout = self.o.predict_timeout_s
        else:
            args, timeout = ["scan", str(folder), "--json"], self.o.scan_timeout_s
        run = run_cli(args, timeout, self.env, self.mem, self.tmp / "logs" / case.name)
        return judge_cli(level, run, facts)

    # -- levels --------------------------------------------------------------------------------

    def directed_level(self, stop_at: float) -> None:
        """Each hostile value of issue 14 once (:mod:`bench.fuzzlib.directed`)."""
        for k, (seed, muts) in enumerate(directed_scan(self.seeds)):
            if time.monotonic() >= stop_at:
                return
            case = Case("directed", k, seed, muts)
            folder = self.tmp / "cases" / case.name
            case.facts = self._materialise(case, case.mutations, folder)
            self._record("directed", case, self.worker.run(folder))
            shutil.rmtree(folder, ignore_errors=True)

    def scan_level(self, stop_at: float) -> None:
        syn = [s for s in self.seeds if s.predictable]
        real = [s for s in self.seeds if not s.predictable]
        weights = [0.75 / len(syn)] * len(syn) + ([0.25 / len(real)] * len(real) if real else [])
        seeds = syn + real
        index, files, cli_done = 0, 0, 0
        while files < self.o.files and time.monotonic() < stop_at:
            case = self._draw("scan", index, seeds, weights, SCAN_KINDS)
            folder = self.tmp / "cases" / case.name
            case.facts = self._materialise(case, case.mutations, folder)
            self._record("scan", case, self.worker.run(folder))
            files += case.n_files()
            if cli_done < self.o.scan_subprocess * min(1.0, files / max(self.o.files, 1)):
                self._record("scan-cli", case, self.run_cli_case("scan-cli", case, folder,
                                                                 case.facts))
                cli_done += 1
            shutil.rmtree(folder, ignore_errors=True)
            index += 1

    def predict_level(self, stop_at: float) -> None:
        seeds = [s for s in self.seeds if s.predictable]
        directed = directed_predict(self.seeds) if self.o.directed else []

        def one(index: int) -> None:
            if time.monotonic() >= stop_at:
                return
            if index < len(directed):
                case = Case("predict", index, *directed[index])
            else:
                case = self._draw("predict", index, seeds, [1.0] * len(seeds), PREDICT_KINDS)
            folder = self.tmp / "cases" / case.name
            case.facts = self._materialise(case, case.mutations, folder)
            o = self.run_cli_case("predict", case, folder, case.facts)
            self._record("predict", case, o)
            shutil.rmtree(folder, ignore_errors=True)

        with ThreadPoolExecutor(max_workers=max(1, self.o.predict_subprocess)) as pool:
            list(pool.map(one, range(self.o.studies)))

    # -- minimising ----------------------------------------------------------------------------

    def _fails(self, case: Case, level: str, signature: str,
               mutations: list[Mutation]) -> bool:
        folder = self.tmp / "min" / case.name
        facts = self._materialise(case, mutations, folder)
        o = (self.worker.run(folder) if level == "scan"
             else self.run_cli_case(level, case, folder, facts))
        return o.signature == signature

    def minimise(self, signature: str, case: Case, outcome: Outcome, deadline: float) -> Path:
        level = outcome.level
        muts = ddmin(case.mutations, lambda ms: self._fails(case, level, signature, ms),
                     deadline)
        dest = self.o.out / _slug(signature)
        if dest.exists():
            shutil.rmtree(dest)
        full = self.tmp / "min" / (case.name + "-full")
        facts = self._materialise(case, muts, full)
        if level == "scan":
            keep = shrink_files(full, self.tmp / "min" / case.name,
                                lambda d: self.worker.run(d).signature == signature, deadline)
            for rel in keep:
                (dest / "case" / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(full / rel, dest / "case" / rel)
        else:
            shutil.copytree(full, dest / "case")
        shutil.rmtree(full, ignore_errors=True)
        (dest / "case").mkdir(parents=True, exist_ok=True)
        args = (self._predict_args(dest / "case", facts, case.confirm) if level == "predict"
                else ["scan", str(dest / "case"), "--json"])
        command = (f"cd {REPO} && PYTHONPATH=$PWD HCC_RESPONSE_HOME=$(mktemp -d) "
                   f"{sys.executable} -m app " + " ".join(_quote(a) for a in args))
        (dest / "mutations.json").write_text(json.dumps({
            "signature": signature, "seed": case.seed.name, "seed_folder": str(case.seed.folder),
            "case": case.name, "campaign_seed": self.o.seed,
            "minimal": [m.to_dict() for m in muts],
            "original": [m.to_dict() for m in case.mutations]}, indent=2))
        (dest / "README.txt").write_text(
            f"{signature}  ({self.counts.get(signature, 0)} case(s) in the campaign)\n\n"
            f"seed {case.seed.name}, case {case.name}; minimal mutations:\n"
            + "".join(f"  - {m.short()}\n" for m in muts)
            + f"\nrerun:\n  {command}\n\nfirst seen:\n{outcome.detail}\n")
        return dest

    # -- the whole run ---------------------------------------------------------------------------

    def run(self) -> Report:
        try:
            self.seeds = synthetic_seeds(self.tmp / "seeds", self.o.seed)
            if self.o.real:
                self.seeds += real_seeds(self.o.shared)
            total = 60.0 * self.o.max_minutes
            scan_share = 0.6 if self.o.studies else 1.0
            for level, step in (("directed", lambda: self.directed_level(
                                    self.t0 + 0.2 * scan_share * total) if self.o.directed
                                    else None),
                                ("scan", lambda: self.scan_level(self.t0 + scan_share * total)),
                                ("predict", lambda: self.predict_level(self.deadline))):
                t = time.monotonic()
                step()
                self.tallies[level].wall_s = time.monotonic() - t
            reproducers: dict[str, str] = {}
            self.o.out.mkdir(parents=True, exist_ok=True)
            min_deadline = time.monotonic() + 60.0 * self.o.minimise_minutes
            for signature, (case, outcome) in sorted(self.first.items()):
                per = time.monotonic() + max(0.0, (min_deadline - time.monotonic())
                                             / max(1, len(self.first) - len(reproducers)))
                reproducers[signature] = str(self.minimise(signature, case, outcome, per))
            report = Report(self.tallies, dict(sorted(self.counts.items())), reproducers,
                            time.monotonic() - self.t0, [s.name for s in self.seeds],
                            *_log_size(self.tmp / "home"))
            (self.o.out / "summary.json").write_text(json.dumps(report.to_dict(), indent=2))
            return report
        finally:
            self.worker.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


def _log_size(home: Path) -> tuple[int, int]:
    """Total size and longest line of the log files the subprocesses wrote under ``home``."""
    total, longest = 0, 0
    for p in home.rglob("*.log*"):
        if p.is_file():
            total += p.stat().st_size
            with open(p, "rb") as f:
                longest = max([longest, *(len(line) for line in f)])
    return total, longest


def _slug(signature: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in signature)[:120]


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def format_table(report: Report) -> str:
    """The counts as a fixed-width table (one row per level) plus the failure signatures."""
    cols = ("traceback", "internal-error", "timeout", "signal", "bad-exit", "no-message",
            "invalid-json", "nonfinite", "silent-identical-series")
    head = (f"{'level':<9}{'cases':>7}{'files':>7}  {'exit 0/1/2/other':<18}"
            + "".join(f"{c[:10]:>11}" for c in cols) + f"{'maxRSS MB':>10}{'no-JSON':>8}"
            + f"{'wall s':>8}")
    lines = [head]
    for level, t in report.tallies.items():
        ec = t.exit_codes
        other = sum(v for k, v in ec.items() if k not in ("0", "1", "2", "timeout"))
        codes = f"{ec.get('0', 0)}/{ec.get('1', 0)}/{ec.get('2', 0)}/{other}"
        lines.append(f"{level:<9}{t.cases:>7}{t.files:>7}  {codes:<18}"
                     + "".join(f"{t.failures.get(c, 0):>11}" for c in cols)
                     + f"{t.max_rss_kb / 1024:>10.0f}{t.refusals_without_json:>8}"
                     + (f"{t.wall_s:>8.0f}" if t.wall_s else f"{'(in scan)':>10}"))
    lines.append(f"seeds: {', '.join(report.seeds)}; {report.seconds:.0f} s in all; "
                 f"per-user log of the subprocesses {report.log_bytes / 1e6:.2f} MB, longest "
                 f"line {report.log_longest_line} bytes")
    for level, t in report.tallies.items():
        top = sorted(t.refusals.items(), key=lambda kv: -kv[1])[:3]
        if top:
            lines.append(f"{level} refusals, most frequent: "
                         + "; ".join(f"{n} x {why}" for why, n in top))
    for sig, n in report.signatures.items():
        lines.append(f"  {n:>5} x {sig}  -> {report.reproducers.get(sig, '(not minimised)')}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=300, help="mutated files at scan level")
    p.add_argument("--studies", type=int, default=3, help="mutated study folders through predict")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-minutes", type=float, default=30.0,
                   help="stop drawing cases after this (60%% scan, the rest predict)")
    p.add_argument("--scan-subprocess", type=int, default=10,
                   help="scan cases also run through 'python -m app scan --json'")
    p.add_argument("--predict-subprocess", type=int, default=2, help="predict runs at once")
    p.add_argument("--out", type=Path, default=Path("fuzz-out"), help="reproducers and summary")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: temp)")
    p.add_argument("--no-real", action="store_true", help="leave out ../shared/data")
    p.add_argument("--shared", type=Path, default=SHARED_DATA)
    p.add_argument("--device", default="cpu", help="predict --device (default cpu)")
    p.add_argument("--scan-timeout", type=float, default=60.0)
    p.add_argument("--predict-timeout", type=float, default=300.0)
    p.add_argument("--mem-limit-gb", type=float, default=8.0,
                   help="address-space limit of every scan worker and subprocess")
    p.add_argument("--minimise-minutes", type=float, default=5.0)
    p.add_argument("--no-directed", action="store_true",
                   help="random cases only (no pass over every hostile value first)")
    a = p.parse_args(argv)
    return Options(files=a.files, studies=a.studies, seed=a.seed, max_minutes=a.max_minutes,
                   scan_subprocess=a.scan_subprocess, predict_subprocess=a.predict_subprocess,
                   out=a.out, work=a.work, real=not a.no_real, shared=a.shared, device=a.device,
                   scan_timeout_s=a.scan_timeout, predict_timeout_s=a.predict_timeout,
                   mem_limit_gb=a.mem_limit_gb, minimise_minutes=a.minimise_minutes,
                   directed=not a.no_directed)


def main(argv: list[str] | None = None) -> int:
    report = Campaign(parse_args(argv)).run()
    print(format_table(report))
    return 1 if report.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
