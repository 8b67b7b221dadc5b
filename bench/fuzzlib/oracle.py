"""Running a case and judging it: the scan in a worker process, the command line in subprocesses.

The oracle is the one of RELIABILITY.md and issue 14: a refusal (exit status 2 with a one-line
reason) is a correct answer to a hostile file; a traceback, an internal error, a hang, an exit
status other than 0/1/2, a refusal without a message, invalid JSON (bare ``NaN``/``Infinity``)
or a prediction with a non-finite score is a failure. Identical series forced onto different
phases and predicted without a single warning is a failure too (issue 14, item 5).

The "in-process" scan runs :func:`app.dicom.assembly.assemble_folder` (scan, phase
classification, assembly: the same calls as ``hcc-response scan``) in a spawned worker under an
address-space limit, so that a declared 65535 x 65535 volume fails with a ``MemoryError`` there
instead of exhausting the shared machine, and a hang ends in a kill after the timeout.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing as mp
import os
import re
import resource
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The repository root (this file is bench/fuzzlib/oracle.py): first on the workers' path.
REPO = Path(__file__).resolve().parents[2]

FAILURES = ("traceback", "internal-error", "timeout", "signal", "bad-exit", "no-message",
            "invalid-json", "nonfinite", "silent-identical-series")


@dataclass
class Outcome:
    """How one run of one case ended; ``failure`` is None for a result or a clean refusal."""

    level: str
    exit_code: int | None
    seconds: float
    max_rss_kb: int = 0
    failure: str | None = None
    signature: str | None = None
    detail: str = ""
    json_on_refusal: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _where(exc: BaseException) -> str:
    """The innermost frame in the app (or the innermost at all) as ``module.py:function``."""
    frames = traceback.extract_tb(exc.__traceback__)
    inner = [f for f in frames if f"{os.sep}app{os.sep}" in f.filename] or frames
    if not inner:
        return "?"
    f = inner[-1]
    return f"{Path(f.filename).name}:{f.name}"


def _set_limits(mem_bytes: int) -> None:
    if mem_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))


def _no_nan(text: str) -> float:
    raise ValueError(f"non-finite number {text} in JSON")


# ---------------------------------------------------------------------------------------------
# the in-process scan, in a worker


def scan_in_process(folder: str) -> dict[str, Any]:
    """Scan and assemble ``folder`` as ``hcc-response scan --json`` does; judge the result."""
    import warnings

    from app.commands.scan import scan_document
    from app.dicom.assembly import assemble_folder, assembly_document
    from app.errors import HCCError

    t0 = time.perf_counter()
    out: dict[str, Any] = {"failure": None, "signature": None, "detail": "", "exit_code": 0}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result, outcomes = assemble_folder(folder, workers=1)
            doc = scan_document(result, {st.study_uid: assembly_document(st, o)
                                         for st, o in outcomes})
            if result.problem:
                out["exit_code"] = 2
                out["detail"] = str(result.problem)
    except HCCError as exc:
        out["exit_code"] = exc.exit_code
        out["detail"] = exc.message
        if exc.exit_code != 2:
            out.update(failure="internal-error", detail=f"{type(exc).__name__}: {exc.message}",
                       signature=f"scan:internal-error:{type(exc).__name__}@{_where(exc)}")
        doc = None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - anything else is a crash (a decoder's Rust
        # panic is a BaseException: pyo3_runtime.PanicException)
        out.update(exit_code=1, failure="traceback",
                   signature=f"scan:traceback:{type(exc).__name__}@{_where(exc)}",
                   detail="".join(traceback.format_exception(exc))[-4000:])
        doc = None
    if doc is not None:
        try:
            json.dumps(doc, allow_nan=False)
        except ValueError as exc:
            out.update(failure="nonfinite", signature="scan:nonfinite:json", detail=str(exc))
    out["seconds"] = time.perf_counter() - t0
    out["max_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return out


_NUMBERS = re.compile(r"[0-9][0-9.eE+-]*")


def reason_class(text: str) -> str:
    """A refusal's reason with paths, UIDs and numbers blanked, to count reasons alike."""
    text = re.sub(r"(/[^\s:,'\"]+)+", "PATH", text)
    return _NUMBERS.sub("#", text)[:100]


def _worker_main(conn: Any, mem_bytes: int) -> None:
    import logging

    # the app's warnings are in the scan result; Python's last-resort handler would print them
    logging.getLogger().addHandler(logging.NullHandler())
    _set_limits(mem_bytes)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ["RUST_BACKTRACE"] = "0"  # a decoder's panic: its message, not 60 frames
    while True:
        try:
            folder = conn.recv()
        except EOFError:
            return
        if folder is None:
            return
        conn.send(scan_in_process(folder))


class ScanWorker:
    """A spawned process that scans case folders; restarted after a hang or a crash."""

    def __init__(self, timeout_s: float, mem_bytes: int) -> None:
        self.timeout_s = timeout_s
        self.mem_bytes = mem_bytes
        self._proc: Any = None
        self._conn: Any = None
        self._fresh = False

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_worker_main, args=(child, self.mem_bytes), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        self._fresh = True

    def run(self, folder: Path) -> Outcome:
        if self._proc is None or not self._proc.is_alive():
            self._start()
        t0 = time.perf_counter()
        self._conn.send(str(folder))
        # the first case of a new worker also pays for its imports
        grace, self._fresh = (30.0 if self._fresh else 0.0), False
        if self._conn.poll(self.timeout_s + grace):
            try:
                r = self._conn.recv()
            except EOFError:  # the worker died: let it finish dying to read its exit code
                r = None
                self._proc.join(5)
            if r is not None:
                return Outcome("scan", r["exit_code"], r["seconds"], r["max_rss_kb"],
                               r["failure"], r["signature"], r["detail"])
        seconds = time.perf_counter() - t0
        alive = self._proc.is_alive()
        code = self._proc.exitcode
        self.close(kill=True)
        if alive:
            return Outcome("scan", None, seconds, 0, "timeout", "scan:timeout",
                           f"no answer within {self.timeout_s:.0f} s")
        return Outcome("scan", code, seconds, 0, "signal", f"scan:signal:{code}",
                       f"the scan worker died (exit code {code})")

    def close(self, kill: bool = False) -> None:
        if self._proc is None:
            return
        if kill:
            self._proc.kill()
        else:
            with contextlib.suppress(OSError):
                self._conn.send(None)
        self._proc.join(10)
        self._conn.close()
        self._proc = None


# ---------------------------------------------------------------------------------------------
# the command line in subprocesses


@dataclass
class CliRun:
    exit_code: int | None
    stdout: str
    stderr: str
    seconds: float
    max_rss_kb: int
    timed_out: bool


def cli_env(home: Path) -> dict[str, str]:
    """The environment of every subprocess: this checkout first, its own per-user folder."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["HCC_RESPONSE_HOME"] = str(home)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    env["RUST_BACKTRACE"] = "0"
    return env


def run_cli(args: list[str], timeout_s: float, env: dict[str, str], mem_bytes: int,
            log_dir: Path) -> CliRun:
    """``python -m app ARGS`` with a timeout; the child's own peak RSS from ``wait4``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out_p, err_p = log_dir / "stdout.txt", log_dir / "stderr.txt"
    t0 = time.perf_counter()
    with open(out_p, "wb") as out, open(err_p, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "app", *args], stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, env=env, cwd=str(REPO),
                                start_new_session=True,
                                preexec_fn=lambda: _set_limits(mem_bytes))
        timed_out = False
        status, usage = None, None
        delay = 0.01
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout_s:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code  # reaped here: Popen must not wait for it again
    return CliRun(None if timed_out else code, out_p.read_text(errors="replace"),
                  err_p.read_text(errors="replace"), time.perf_counter() - t0,
                  int(usage.ru_maxrss), timed_out)


_EXC = re.compile(r"internal error: ([A-Za-z_][\w.]*)")
_TB_LAST = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit))\b", re.M)


def judge_cli(level: str, run: CliRun, facts: dict[str, Any]) -> Outcome:
    """The oracle for one ``scan --json`` or ``predict --json`` subprocess."""
    o = Outcome(level, run.exit_code, run.seconds, run.max_rss_kb)
    text = run.stdout + run.stderr
    if run.timed_out:
        o.failure, o.signature = "timeout", f"{level}:timeout"
        o.detail = run.stderr[-2000:]
        return o
    rc = run.exit_code
    assert rc is not None
    if rc < 0:
        o.failure, o.signature = "signal", f"{level}:signal:{-rc}"
    elif "Traceback (most recent call last)" in text:
        names = _TB_LAST.findall(text)
        o.failure, o.signature = "traceback", f"{level}:traceback:{names[-1] if names else '?'}"
    elif "internal error" in run.stderr or rc == 1:
        m = _EXC.search(run.stderr)
        o.failure, o.signature = "internal-error", f"{level}:internal-error:{m.group(1) if m else '?'}"
    elif rc not in (0, 2):
        o.failure, o.signature = "bad-exit", f"{level}:bad-exit:{rc}"
    elif rc == 2 and not run.stderr.strip():
        o.failure, o.signature = "no-message", f"{level}:no-message"
    if o.failure is not None:
        o.detail = run.stderr[-3000:]
        return o
    if rc == 2:
        o.json_on_refusal = bool(run.stdout.strip())
        o.detail = run.stderr.strip().splitlines()[-1]
    if not run.stdout.strip():
        if rc == 0:
            o.failure, o.signature, o.detail = "invalid-json", f"{level}:invalid-json:empty", ""
        return o
    try:
        doc = json.loads(run.stdout, parse_constant=_no_nan)
    except ValueError as exc:
        nonfinite = "non-finite" in str(exc)
        o.failure = "nonfinite" if nonfinite else "invalid-json"
        o.signature = f"{level}:{o.failure}:json"
        o.detail = f"{exc}; stdout starts {run.stdout[:300]!r}"
        return o
    if level == "predict" and rc == 0:
        _judge_prediction(o, doc, facts)
    return o


def _judge_prediction(o: Outcome, doc: dict[str, Any], facts: dict[str, Any]) -> None:
    pred = doc.get("prediction") or {}
    scores = [pred.get("mean_probability")] + [s.get("probability")
                                               for s in pred.get("slices") or []]
    bad = [s for s in scores if not isinstance(s, (int, float)) or not math.isfinite(s)]
    if bad:
        o.failure, o.signature = "nonfinite", "predict:nonfinite:score"
        o.detail = f"{len(bad)} non-finite score(s), e.g. {bad[0]!r}"
        return
    ident = facts.get("identical_series")
    if ident:
        warned = list(pred.get("warnings") or []) + list(doc.get("warnings") or [])
        used = set((doc.get("assignment") or {}).values())
        if not warned and len(used & {ident["original"], *ident["copies"]}) >= 2:
            o.failure, o.signature = "silent-identical-series", "predict:silent-identical-series"
            o.detail = f"copies of series {ident['original']} predicted without a warning"
