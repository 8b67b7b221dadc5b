"""A short deterministic fuzzing run (issue 14) and checks of the harness itself.

The campaign (``bench/fuzz_dicom.py``) first puts every hostile header value of issue 14 on a
synthetic study once (the directed pass), then mutates small synthetic studies and the real
files of ``../shared/data`` (where present) at random: about 300 mutated files scanned and
assembled in a worker process, four of them through ``python -m app scan --json`` as well, and
three mutated studies (NaN slope, PixelSpacing 1e308, identical series forced onto the three
phases) through ``python -m app predict --json``. Nothing may end in a traceback, an internal error, a
hang, an exit status other than 0/2 with a message, invalid JSON or a non-finite score. The long
run (≥ 10,000 files, ≥ 200 predict folders) is the same script with bigger numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.fuzz_dicom import SCAN_KINDS, Campaign, Options, format_table
from bench.fuzzlib.directed import directed_scan
from bench.fuzzlib.minimise import ddmin
from bench.fuzzlib.mutations import Mutation, apply_mutations, draw_mutation
from bench.fuzzlib.oracle import CliRun, judge_cli
from bench.fuzzlib.seeds import SHARED_DATA, synthetic_seeds


def test_short_fuzz_campaign_has_no_crash_hang_or_silent_nan(tmp_path: Path) -> None:
    opts = Options(files=300, studies=3, seed=14, max_minutes=15.0, scan_subprocess=4,
                   predict_subprocess=2, out=tmp_path / "fuzz-out", work=tmp_path,
                   real=SHARED_DATA.is_dir(), minimise_minutes=0.5, device="cpu")
    campaign = Campaign(opts)
    report = campaign.run()
    table = format_table(report)
    scan, cli, predict = (report.tallies[k] for k in ("scan", "scan-cli", "predict"))
    # the counts were reached, not cut short by the time bound
    assert report.tallies["directed"].cases == len(directed_scan(campaign.seeds)) > 50, table
    assert scan.files >= 300, table
    assert predict.cases == 3 and cli.cases == 4, table
    assert report.signatures == {}, "failures (reproducers in the paths shown):\n" + table
    for tally in (scan, cli, predict):
        assert set(tally.exit_codes) <= {"0", "2"}, table
        # a refusal under --json still prints a machine-readable {"error": ...} (item 7)
        assert tally.refusals_without_json == 0, table
    summary = json.loads((opts.out / "summary.json").read_text())
    assert summary["tallies"]["scan"]["files"] == scan.files


def test_the_same_seed_gives_the_same_mutated_files(tmp_path: Path) -> None:
    seed = synthetic_seeds(tmp_path / "seeds", 3, syntaxes=("explicit",))[0]

    def draw(n: int) -> list[Mutation]:
        rng = np.random.default_rng([3, 1, n])
        return [draw_mutation(rng, seed, SCAN_KINDS) for _ in range(6)]

    first, again = draw(7), draw(7)
    assert [m.to_dict() for m in first] == [m.to_dict() for m in again]
    assert [m.to_dict() for m in draw(8)] != [m.to_dict() for m in first]
    a, b = tmp_path / "a", tmp_path / "b"
    apply_mutations(seed.folder, a, first)
    apply_mutations(seed.folder, b, [Mutation.from_dict(m.to_dict()) for m in again])
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    changed = [f for f in files if not (seed.folder / f).is_file()
               or (seed.folder / f).read_bytes() != (a / f).read_bytes()]
    assert changed, "six mutations changed no file"


def test_hostile_values_reach_the_file(tmp_path: Path) -> None:
    import pydicom

    seed = synthetic_seeds(tmp_path / "seeds", 4, syntaxes=("rle",))[0]
    target = (seed.series[sorted(seed.series)[0]][0],)
    muts = [Mutation("set_ds", target, {"keyword": "RescaleSlope", "value": "NaN"}),
            Mutation("set_ds", target, {"keyword": "PixelSpacing", "value": "1e308\\1e308"}),
            Mutation("set_us", target, {"keyword": "Rows", "value": 65535}),
            Mutation("html", target, {"keyword": "PatientName", "value": "<b>x</b>"})]
    apply_mutations(seed.folder, tmp_path / "case", muts)
    ds = pydicom.dcmread(tmp_path / "case" / target[0])
    assert np.isnan(float(ds.RescaleSlope))
    assert [float(v) for v in ds.PixelSpacing] == [1e308, 1e308]
    assert ds.Rows == 65535 and str(ds.PatientName) == "<b>x</b>"
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless  # still compressed


@pytest.mark.parametrize(("rc", "stdout", "stderr", "failure"), [
    (0, '{"prediction": {"mean_probability": NaN, "slices": []}}', "", "nonfinite"),
    (0, '{"prediction": {"mean_probability": 0.4, "slices": [{"probability": 0.4}]}}', "", None),
    (0, "{not json", "", "invalid-json"),
    (1, "", "hcc-response predict: internal error: MemoryError: x (details in the log file)",
     "internal-error"),
    (1, "", "Traceback (most recent call last):\n  ...\nOverflowError: x\n", "traceback"),
    (2, "", "", "no-message"),
    (2, "", "hcc-response predict: no usable series", None),
    (-9, "", "", "signal"),
    (3, "", "odd", "bad-exit"),
])
def test_the_oracle_tells_failures_from_refusals(rc: int, stdout: str, stderr: str,
                                                 failure: str | None) -> None:
    o = judge_cli("predict", CliRun(rc, stdout, stderr, 0.1, 1000, False), {})
    assert o.failure == failure


def test_ddmin_finds_the_one_mutation_that_matters() -> None:
    items = list(range(10))
    assert ddmin(items, lambda s: 7 in s, deadline=float("inf")) == [7]
    assert ddmin(items, lambda s: {2, 5} <= set(s), deadline=float("inf")) == [2, 5]
