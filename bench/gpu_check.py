"""One command that proves the GPU path on a machine with one NVIDIA GPU, and prints one table.

Usage::

    scripts/gpu_check.sh                 # on the GPU machine (or: python bench/gpu_check.py)
    scripts/gpu_check.sh --device cpu    # dry run on any machine: CUDA checks are skipped

Needs only torch, torchvision, numpy, OpenCV, safetensors, pydicom and platformdirs (no Qt, no
SQLAlchemy): the last two are pure Python and can be carried as wheels.

Checks, each independent (one that fails is reported and the others still run):

1. ``environment``   torch, CUDA, the GPU's name.
2. ``demo study``    the app's demo study written to a temporary folder (synthetic DICOM).
3. ``predict CLI``   ``hcc-response predict STUDY --device cuda --cam-dir DIR --json`` and the
                     same with ``--device cpu``: same slice labels, max |Δp| < 1e-2, no fallback.
4. ``Grad-CAM``      whole-study Grad-CAM with the bundled model on CUDA and on the CPU: maps
                     correlated > 0.95 (Pearson, per phase, the smallest reported).
5. ``speed``         at the paper's 224 px input and at the shipped model's input, a 30-slice
                     512² phantom study: predict + whole-study Grad-CAM < 1 s (model load
                     excluded), predict / bare forward ≤ 1.25, and bare forward with
                     channels-last vs contiguous weights (does NHWC still help on cuDNN?).
6. ``training``      200 iterations of :func:`app.training.trainer.train` on CUDA.

With ``--device cpu`` the same code runs on the CPU at a reduced size where it would take
minutes (fewer slices, 20 training iterations), and the checks that need CUDA say
"skipped: no CUDA". Exit code 0 when no check failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.inference.arrays import phantom_arrays, study_from_arrays  # noqa: E402
from app.inference.config import ModelConfig  # noqa: E402
from app.inference.gradcam import gradcam_study  # noqa: E402
from app.inference.predictor import predict  # noqa: E402
from app.inference.preprocess import preprocess_study  # noqa: E402
from app.inference.weights import create_random_model, load_model  # noqa: E402
from bench._speed import bare_forward  # noqa: E402


class Skipped(Exception):
    """A check that cannot run here (e.g. no CUDA); reported as skipped with the reason."""


@dataclass
class Check:
    name: str
    status: str = "pass"
    figures: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Context:
    cuda: bool
    work: Path
    slices: int
    train_iterations: int
    repeats: int
    study_dir: Path | None = None
    cli: dict[str, dict] = field(default_factory=dict)


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def check_environment(ctx: Context, c: Check) -> None:
    c.figures.append(f"torch {torch.__version__}, Python {sys.version.split()[0]}")
    if not ctx.cuda:
        c.figures.append("CUDA not used (dry run on the CPU)")
        return
    name = torch.cuda.get_device_name(0)
    free, total = torch.cuda.mem_get_info()
    c.figures.append(f"{name}, {total / 2**30:.0f} GiB ({free / 2**30:.0f} free), "
                     f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")


def check_demo_study(ctx: Context, c: Check) -> None:
    from app.synthetic.demo import ensure_demo_study

    ctx.study_dir = ensure_demo_study(ctx.work / "demo")
    n = sum(1 for p in ctx.study_dir.rglob("*") if p.is_file())
    c.figures.append(f"{n} files in {ctx.study_dir.name}")


def _predict_cli(ctx: Context, device: str) -> dict:
    assert ctx.study_dir is not None
    cam_dir = ctx.work / f"cams-{device}"
    cmd = [sys.executable, "-m", "app", "predict", str(ctx.study_dir), "--device", device,
           "--cam-dir", str(cam_dir), "--json", "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")})
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"predict --device {device} exited {proc.returncode}: "
                           f"{(proc.stderr or proc.stdout).strip()[-400:]}")
    doc = json.loads(proc.stdout)
    doc["_seconds"] = elapsed
    doc["_pngs"] = len(list(cam_dir.glob("*.png")))
    return doc


def _prediction(doc: dict) -> dict:
    """The prediction part of ``predict --json``'s document (wherever the command puts it)."""
    return doc.get("prediction", doc)


def check_predict_cli(ctx: Context, c: Check) -> None:
    if ctx.study_dir is None:
        raise Skipped("no demo study")
    cpu = _prediction(_predict_cli(ctx, "cpu"))
    c.figures.append(f"cpu: {cpu['label']} {cpu['responder_votes']}/{cpu['total_votes']}")
    if not ctx.cuda:
        raise Skipped("no CUDA (the CPU run passed)")
    gpu_doc = _predict_cli(ctx, "cuda")
    gpu = _prediction(gpu_doc)
    c.figures.append(f"cuda: {gpu['label']} {gpu['responder_votes']}/{gpu['total_votes']} on "
                     f"{gpu['device']} ({gpu['precision']}), {gpu_doc['_pngs']} PNGs, "
                     f"{gpu_doc['_seconds']:.1f} s with start-up")
    if gpu["device_fallback"] or not str(gpu["device"]).startswith("cuda"):
        raise AssertionError(f"did not run on CUDA: {gpu['device_reason']}")
    same = [s["label"] for s in cpu["slices"]] == [s["label"] for s in gpu["slices"]]
    dp = max(abs(a["probability"] - b["probability"]) for a, b in zip(cpu["slices"], gpu["slices"], strict=True))
    c.figures.append(f"same slice labels {same}, max |dp| {dp:.1e}")
    if not same or dp >= 1e-2:
        raise AssertionError("CUDA and CPU predictions differ")


def check_gradcam(ctx: Context, c: Check) -> None:
    if ctx.study_dir is None:
        raise Skipped("no demo study")
    if not ctx.cuda:
        raise Skipped("no CUDA")
    from app.dicom.assembly import assemble_folder
    from app.inference.weights import load_bundled_model

    _scan, studies = assemble_folder(ctx.study_dir, keep_volumes=True)
    study = studies[0][1]
    cams = {}
    for device in ("cpu", "cuda"):
        loaded = load_bundled_model(device)
        cams[device] = gradcam_study(loaded, study)
        if device == "cuda" and cams[device].device.split(":")[0] != "cuda":
            raise AssertionError(f"Grad-CAM ran on {cams[device].device}: {cams[device].warnings}")
    corr = {}
    for phase in cams["cpu"].phases:
        a, b = cams["cpu"].maps[phase].ravel(), cams["cuda"].maps[phase].ravel()
        corr[phase] = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float(np.allclose(a, b))
    c.figures.append("correlation CPU vs CUDA " + ", ".join(f"{p} {v:.4f}" for p, v in corr.items()))
    if min(corr.values()) <= 0.95:
        raise AssertionError("Grad-CAM maps differ between CUDA and the CPU")


def _speed_at(ctx: Context, c: Check, path: Path | None, label: str) -> None:
    """Speed figures of the model file ``path`` (a random paper model at 224 px when None)."""
    device = "cuda" if ctx.cuda else "cpu"
    study = study_from_arrays(phantom_arrays(ctx.slices, 512))
    if path is None:
        path = ctx.work / "paper-224.safetensors"
        create_random_model(path, ModelConfig(input_size=224))
    loaded = load_model(path, device)
    cfg = loaded.config
    bs = 64 if ctx.cuda else 16
    amp = torch.float16 if ctx.cuda else None
    x = preprocess_study(study, cfg).x
    bare_forward(loaded, x, bs, amp)  # warm-up: allocator, cuDNN autotuning
    predict(study, loaded, batch_size=bs)
    gradcam_study(loaded, study)
    bare, pred, both = [], [], []
    for _ in range(ctx.repeats):
        bare.append(bare_forward(loaded, x, bs, amp))
        t0 = time.perf_counter()
        predict(study, loaded, batch_size=bs)
        _sync()
        pred.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        predict(study, loaded, batch_size=bs)
        gradcam_study(loaded, study)
        _sync()
        both.append(time.perf_counter() - t0)
    ratio = min(pred) / min(bare)
    loaded.model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    contiguous = min(bare_forward(loaded, x, bs, amp) for _ in range(ctx.repeats))
    c.figures.append(
        f"{label} {cfg.input_size} px, {ctx.slices} slices on {loaded.device}: predict+Grad-CAM "
        f"{min(both):.3f} s (median {statistics.median(both):.3f}), predict {min(pred):.3f} s, "
        f"bare {min(bare):.3f} s, ratio {ratio:.2f}; bare contiguous {contiguous:.3f} s "
        f"(channels-last {contiguous / min(bare):.2f}x faster)")
    if ctx.cuda and (min(both) >= 1.0 or ratio > 1.25):
        raise AssertionError(f"{label}: target missed (predict+Grad-CAM < 1 s, ratio <= 1.25)")


def check_speed_224(ctx: Context, c: Check) -> None:
    _speed_at(ctx, c, None, "paper")
    if not ctx.cuda:
        raise Skipped(f"no CUDA (ran on the CPU with {ctx.slices} slices)")


def check_speed_shipped(ctx: Context, c: Check) -> None:
    from app.inference.weights import default_model_path

    _speed_at(ctx, c, default_model_path(), "shipped model")
    if not ctx.cuda:
        raise Skipped(f"no CUDA (ran on the CPU with {ctx.slices} slices)")


def check_training(ctx: Context, c: Check) -> None:
    from app.training.augment import AugmentConfig
    from app.training.trainer import TrainConfig, train

    sys.path.insert(0, str(ROOT / "bench"))
    from train_throughput import _data

    batch = 32 if ctx.cuda else 8
    data = _data(max(8, ctx.train_iterations * batch // 10 + 1), 10, 64)
    cfg = TrainConfig(model=ModelConfig(input_size=64), max_iterations=ctx.train_iterations,
                      batch_size=batch, lr=1e-4, device="cuda" if ctx.cuda else "cpu",
                      augment=AugmentConfig())
    t0 = time.perf_counter()
    res = train(cfg, data)
    _sync()
    c.figures.append(f"{ctx.train_iterations} iterations in {time.perf_counter() - t0:.1f} s, "
                     f"{res.triplets_per_second:.0f} triplets/s on {cfg.device}")
    if not ctx.cuda:
        raise Skipped("no CUDA (ran on the CPU)")


CHECKS: list[tuple[str, Callable[[Context, Check], None]]] = [
    ("environment", check_environment),
    ("demo study", check_demo_study),
    ("predict CLI cuda vs cpu", check_predict_cli),
    ("Grad-CAM cuda vs cpu", check_gradcam),
    ("speed at 224 px", check_speed_224),
    ("speed at shipped input", check_speed_shipped),
    ("training", check_training),
]


def run_checks(ctx: Context) -> list[Check]:
    results = []
    for name, fn in CHECKS:
        c = Check(name)
        t0 = time.perf_counter()
        try:
            fn(ctx, c)
        except Skipped as exc:
            c.status = f"skipped: {exc}"
        except Exception as exc:  # noqa: BLE001 - every failure is reported, the rest still run
            c.status = f"FAIL: {type(exc).__name__}: {str(exc)[:300]}"
            traceback.print_exc()
        c.seconds = time.perf_counter() - t0
        print(f"-- {name}: {c.status} ({c.seconds:.1f} s) {'; '.join(c.figures)}", flush=True)
        results.append(c)
    return results


def table(results: list[Check]) -> str:
    lines = ["| check | result | seconds | figures |", "|---|---|---|---|"]
    for c in results:
        lines.append(f"| {c.name} | {c.status} | {c.seconds:.1f} | {'; '.join(c.figures)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                    help="cuda (default) or cpu for a dry run")
    ap.add_argument("--slices", type=int, default=None, help="slices of the speed study (30 on CUDA, 4 on the CPU)")
    ap.add_argument("--out", type=Path, default=None, help="also write the table here (Markdown)")
    args = ap.parse_args(argv)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        print("gpu_check: CUDA is not available here; use --device cpu for a dry run", file=sys.stderr)
        cuda = False
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        ctx = Context(cuda=cuda, work=Path(tmp), slices=args.slices or (30 if cuda else 4),
                      train_iterations=200 if cuda else 4, repeats=5 if cuda else 1)
        os.environ.setdefault("HCC_RESPONSE_HOME", str(Path(tmp) / "home"))
        results = run_checks(ctx)
    text = table(results)
    print("\n" + text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 1 if any(c.status.startswith("FAIL") for c in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
