"""``hcc-response self-test``: offline end-to-end check of an installed or frozen build.

For hospital IT after installing (and inside the PyInstaller bundle): with the network guard
on, it generates a small synthetic three-phase study in a temporary folder, scans and assembles
it, loads the bundled model (checking its recorded SHA-256), predicts, computes Grad-CAM,
writes the DICOM SR and captures (and reads the SR back), writes the prediction to a temporary register and verifies that register's audit chain. Every
step prints PASS or FAIL with its time; the exit status is 0 only when all pass. Nothing is
written outside the temporary folder, and the user's own register is never touched.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.case.model import ModelChoice, ModelHolder
from app.commands._common import say


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    parser.add_argument("--model", type=Path, default=None,
                        help="check this model instead of the bundled one")
    parser.add_argument("--matrix", type=int, default=128,
                        help="matrix of the generated study (default 128: quick)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the generated study and register in this folder")


class _Steps:
    """Runs named steps, printing PASS/FAIL; a failed step stops the steps that need it."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:  # a self-test reports every failure instead of stopping
            self.failures.append(f"{name}: {exc}")
            say(f"FAIL  {name} ({time.perf_counter() - t0:.1f} s): "
                  f"{type(exc).__name__}: {exc}")
            import logging

            logging.getLogger("app.self_test").debug("".join(traceback.format_exception(exc)))
            raise _Stop from exc
        detail = value[1] if isinstance(value, tuple) and len(value) == 2 else ""
        say(f"PASS  {name} ({time.perf_counter() - t0:.1f} s){': ' + detail if detail else ''}")
        return value[0] if isinstance(value, tuple) and len(value) == 2 else value


class _Stop(Exception):
    pass


def run(args: argparse.Namespace) -> int:
    from app import __version__
    from app.offline import forbid_network

    forbid_network()  # the CLI installs it too; the self-test must not depend on that
    say(f"HCC Response {__version__} self-test — Python {platform.python_version()}, "
          f"{platform.system()} {platform.machine()}, frozen={getattr(sys, 'frozen', False)}")
    steps = _Steps()
    with tempfile.TemporaryDirectory(prefix="hcc-selftest-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(_Stop):  # the failing step has been reported already
            _run_steps(steps, args, work)
    if steps.failures:
        say(f"self-test FAILED: {len(steps.failures)} step(s): " + "; ".join(steps.failures),
            err=True)
        return 1
    say("self-test passed: this installation works offline end to end")
    return 0


def _run_steps(steps: _Steps, args: argparse.Namespace, work: Path) -> None:
    def libraries() -> tuple[None, str]:
        import numpy
        import pydicom
        import sqlalchemy
        import torch

        cuda = torch.cuda.is_available()
        return None, (f"torch {torch.__version__} (CUDA {'available' if cuda else 'not available'})"
                      f", pydicom {pydicom.__version__}, numpy {numpy.__version__}, "
                      f"SQLAlchemy {sqlalchemy.__version__}")

    steps.run("libraries import", libraries)

    def decoders() -> tuple[None, str]:
        from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1, RLELossless

        from app.dicom.tags import decoder_problem

        problems = [p for u in (JPEG2000Lossless, JPEGLosslessSV1, RLELossless)
                    if (p := decoder_problem(str(u)))]
        if problems:
            raise RuntimeError("; ".join(problems))
        return None, "JPEG 2000, JPEG lossless, RLE"

    steps.run("compressed DICOM decoders", decoders)

    def generate() -> tuple[Path, str]:
        from app.synthetic.cohort import generate_cohort
        from app.synthetic.options import StudyOptions

        out = work / "study"
        generate_cohort(out, 1, seed=2024, options=StudyOptions(matrix=args.matrix))
        dirs = [p for p in out.iterdir() if p.is_dir()]
        return dirs[0], f"{sum(1 for _ in dirs[0].rglob('*') if _.is_file())} files"

    folder = steps.run("generate a synthetic 3-phase study", generate)

    def assemble() -> tuple[Any, str]:
        from app.dicom.studies import open_study

        study = open_study(folder)
        return study, (f"{len(study.pairs)} slice triplets; assignment "
                       + ", ".join(sorted(study.assignment)))

    study = steps.run("scan, classify phases, assemble", assemble)

    holder = ModelHolder()
    choice = ModelChoice(args.model, None, args.device)

    def model() -> tuple[Any, str]:
        loaded = holder.get(choice)
        return loaded, f"{loaded.description.name} {loaded.description.version}, sha256 " \
                       f"{loaded.sha256[:16]}… verified"

    loaded = steps.run("load the model and check its SHA-256", model)

    def prediction() -> tuple[Any, str]:
        from app.case.flow import predict_study

        _loaded, result = predict_study(study, holder, choice)
        # every pair has a slice result, and the votes are those of the slices that voted
        # (all of them, or those showing tumour for a lesion-weighted model)
        if len(result.slices) != len(study.pairs) or \
                result.total_votes != sum(s.votes for s in result.slices) or \
                result.label not in ("responder", "non-responder"):
            raise RuntimeError("inconsistent prediction result")
        return result, (f"{result.label}, {result.responder_votes}/{result.total_votes} votes, "
                        f"device {result.device}")

    result = steps.run("predict", prediction)

    def cam() -> tuple[None, str]:
        import numpy as np

        from app.inference.gradcam import gradcam_slice

        cams = gradcam_slice(loaded, study, len(study.pairs) // 2)
        for phase, arr in cams.maps.items():
            if not np.isfinite(arr).all():
                raise RuntimeError(f"non-finite Grad-CAM values in {phase}")
        return None, f"{len(cams.maps)} pathways"

    steps.run("Grad-CAM", cam)

    steps.run("DICOM SR and captures", lambda: _dicom_export(study, holder, loaded, result, folder, work))

    def register() -> tuple[None, str]:
        from app.case.flow import make_record
        from app.register import open_register

        path = work / "self-test-register.sqlite"
        with open_register(path) as reg:
            case = reg.add_prediction(make_record(study, result, source_folder=str(folder)))
            report = reg.verify()
            if not report.ok:
                raise RuntimeError("; ".join(report.problems))
            detail = reg.get_prediction(case)
        if detail.record.model_sha256 != result.model_sha256:
            raise RuntimeError("the recorded prediction does not read back as written")
        return None, f"case {case} recorded, integrity {report.integrity}, audit chain valid"

    steps.run("register write and verify", register)

    def network() -> tuple[None, str]:
        from app.offline import attempts

        if attempts():
            raise RuntimeError(f"network access was attempted: {attempts()}")
        return None, "no network access attempted"

    steps.run("offline", network)


def _dicom_export(study: Any, holder: ModelHolder, loaded: Any, result: Any, folder: Path,
                  work: Path) -> tuple[None, str]:
    """Self-test step: the DICOM SR and captures are written and the SR reads back."""
    # the DICOM result objects need highdicom's standard tables at run time (a bundle
    # without them failed here, issue 18), and the network link needs pynetdicom
    import pydicom

    import app.dicomnet.association  # noqa: F401 - pynetdicom present and importable
    from app.case.flow import explain_study
    from app.export.sources import source_files
    from app.export.sr import read_prediction_sr
    from app.export.writer import export_dicom

    cams = explain_study(study, holder, loaded)
    out = export_dicom(study, result, cams, source_files(folder, study), work / "dicom-out")
    read = read_prediction_sr(pydicom.dcmread(out.sr_file))
    if (read.label, read.total_votes, read.model_sha256) != \
            (result.label, result.total_votes, result.model_sha256):
        raise RuntimeError("the SR does not read back as written")
    return None, f"SR + {len(out.capture_files)} capture(s) written and read back"
