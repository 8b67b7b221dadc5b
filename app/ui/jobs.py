"""The desktop app's long jobs, as plain functions of a progress object (no Qt here).

Each ``*_job`` function returns a closure ``fn(progress) -> result`` that
:class:`app.ui.workers.JobManager` runs in a worker thread. They only chain the core's
Qt-free functions (scan, assemble, load model, predict, register, Grad-CAM, demo data), so the
app does exactly what the CLI does; what is specific to the desktop is *when* they run and how
results come back (dataclasses below).

Thread safety of the model: one :class:`ModelHolder` keeps the loaded model (loaded lazily,
once per file/device, STYLE.md 6) and a lock that every user of the network takes (prediction,
Grad-CAM), because Grad-CAM registers hooks on the shared module and two threads using it at
once would mix their activations.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.dicom.types import AssembledStudy
from app.errors import HCCError, InputError
from app.progress import NULL_PROGRESS, Progress, sub_progress

log = logging.getLogger(__name__)

#: One import of the engine at a time across the app's threads. Two threads importing
#: interdependent modules at once (the background warm-up importing pydicom while a job imports
#: the synthetic generator, which imports pydicom too) can be handed a partially initialised
#: module by CPython's import deadlock avoidance ("cannot import name ... partially
#: initialized module"). Every lazy import of a job goes through :func:`importing`.
_IMPORT_LOCK = threading.RLock()


@contextlib.contextmanager
def importing(progress: Progress = NULL_PROGRESS) -> Iterator[None]:
    """Hold the app's import lock (waiting cancellably) while importing engine modules."""
    while not _IMPORT_LOCK.acquire(timeout=0.05):
        progress.check()
    try:
        yield
    finally:
        _IMPORT_LOCK.release()


# -- import ---------------------------------------------------------------------------------


@dataclass
class ImportOutcome:
    """A scanned folder and the assembly of its first usable study.

    ``assembled``/``errors`` are keyed by study key (Study Instance UID); other studies are
    assembled when the user selects them.
    """

    folder: Path
    scan: Any
    key: str | None
    assembled: dict[str, AssembledStudy] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


#: Decoding threads used by the app's imports (see :func:`assemble`).
UI_DECODE_WORKERS = 1


def _usable_series(study: Any) -> list[Any]:
    return [s for s in getattr(study, "series", []) if s.status != "refused"]


def _no_dicom_details(scan: Any, limit: int = 40) -> str:
    files = list(getattr(scan, "files", []) or [])
    lines = [f"{f.status}: {f.path} — {f.reason}" for f in files[:limit]]
    if len(files) > limit:
        lines.append(f"... and {len(files) - limit} more")
    return "\n".join(lines)


def assemble(study: Any, overrides: Mapping[str, str] | None, progress: Progress) -> AssembledStudy:
    """Assemble one study (the core's ``assemble_study``)."""
    with importing(progress):
        from app.dicom.assembly import assemble_for_viewing, assemble_study
        from app.dicom.errors import DicomError

    # One decoding thread: pydicom's parsing holds the interpreter lock, and several decoder
    # threads contending for it starve the GUI thread (measured: stalls of 300-400 ms with
    # the default pool, see bench/ui_heartbeat.py); the GUI needs responsiveness, not the last
    # second of import speed.
    try:
        return assemble_study(study, dict(overrides) if overrides else None, progress, workers=UI_DECODE_WORKERS)
    except DicomError as exc:
        # Not predictable (a single-phase CT, a missing phase, a bad pairing): still viewable.
        return assemble_for_viewing(study, exc.message, overrides, progress, workers=UI_DECODE_WORKERS)


def import_job(folder: Path) -> Callable[[Progress], ImportOutcome]:
    """Scan ``folder`` (60 % of the progress) and assemble its first usable study (40 %).

    Raises (in the worker)
    ----------------------
    InputError
        Folder missing/unreadable (from the scanner) or "no DICOM images found" with the list
        of skipped/rejected files as details.
    """

    def run(progress: Progress) -> ImportOutcome:
        with importing(progress):
            from app.dicom.scan import scan_folder
            from app.ui.study_browser import iter_studies, study_key

        folder_path = Path(folder)
        if not folder_path.exists():
            raise InputError(f"The folder {folder_path} does not exist.")
        if not folder_path.is_dir():
            raise InputError(f"{folder_path} is not a folder.")
        scan = scan_folder(folder_path, sub_progress(progress, 0.0, 0.6))
        studies = list(iter_studies(scan))
        if not any(study.series for _, study in studies):
            raise InputError(
                f"No DICOM images found in {folder_path}.", details=_no_dicom_details(scan)
            )
        outcome = ImportOutcome(folder=folder_path, scan=scan, key=None)
        # The first study with usable series is the one shown; others are assembled on demand.
        first = next((s for _, s in studies if _usable_series(s)), studies[0][1])
        outcome.key = study_key(first)
        progress.check()
        try:
            outcome.assembled[outcome.key] = assemble(first, None, sub_progress(progress, 0.6, 1.0))
        except HCCError as exc:
            if isinstance(exc, _cancelled_type()):
                raise
            outcome.errors[outcome.key] = exc.message
        progress.update(1.0, "imported")
        return outcome

    return run


def assemble_job(study: Any, overrides: Mapping[str, str] | None) -> Callable[[Progress], AssembledStudy]:
    """Assemble ``study`` with the user's ``overrides`` (phase → series uid)."""
    frozen = dict(overrides or {})
    return lambda progress: assemble(study, frozen, progress)


def _cancelled_type() -> type[HCCError]:
    from app.errors import Cancelled

    return Cancelled


# -- model ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelChoice:
    """Which model file to use on which device (from the settings)."""

    path: Path | None
    sha256: str | None
    device: str


class ModelHolder:
    """The loaded model, loaded lazily once per (file, hash, device), shared by jobs.

    ``lock`` must be held while the network runs (prediction, Grad-CAM).
    """

    RANDOM_NAME = "random-initialised.safetensors"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._key: tuple[str, str | None, str] | None = None
        self._model: Any = None

    @property
    def loaded(self) -> Any:
        """The currently loaded model (``LoadedModel``) or None."""
        return self._model

    def forget(self) -> None:
        with self.lock:
            self._model = None
            self._key = None

    @classmethod
    def resolve_path(cls, choice: ModelChoice, progress: Progress = NULL_PROGRESS) -> Path:
        """The file to load: the chosen one, else the bundled default, else a random model.

        The random model (created once in the user's models folder) lets the app show the
        whole flow before trained weights exist; its description says plainly that its results
        are meaningless, and the result panel shows that.
        """
        if choice.path is not None:
            return Path(choice.path)
        with importing(progress):
            from app.inference.weights import create_random_model, default_model_path
            from app.paths import models_dir

        default = Path(default_model_path())
        if default.exists():
            return default

        path = models_dir() / cls.RANDOM_NAME
        if not path.exists():
            progress.update(0.0, "creating a random-initialised model (no trained model found)")
            log.warning("no bundled model at %s; using a random-initialised model", default)
            create_random_model(path)
        return path

    def get(self, choice: ModelChoice, progress: Progress = NULL_PROGRESS) -> Any:
        """Load (or reuse) the model for ``choice``; raises the loader's ModelFileError."""
        with self.lock:
            path = self.resolve_path(choice, progress)
            key = (str(path), choice.sha256, choice.device)
            if self._model is not None and self._key == key:
                return self._model
            with importing(progress):
                from app.inference.weights import load_model, recorded_sha256

            progress.update(0.0, f"loading model {path.name}")
            # The bundled (or generated random) model is checked against the SHA-256 recorded
            # beside it; an imported model against the hash the user accepted at import.
            expected = choice.sha256 if choice.path is not None else recorded_sha256(path)
            if choice.path is None and expected is None:
                from app.inference.weights import ModelFileError

                raise ModelFileError(f"the bundled model {path.name} has no recorded SHA-256")
            model = load_model(path, choice.device, expected_sha256=expected)
            self._model, self._key = model, key
            progress.update(1.0, "model loaded")
            return model


def bundled_model_path() -> Path | None:
    """The bundled model file if one is installed (``default_model_path()``), else None.

    Imports the inference layer (torch): call it from a worker, or after the warm-up.
    """
    with importing():
        from app.inference.weights import default_model_path

    path = Path(default_model_path())
    return path if path.is_file() else None


# -- prediction -----------------------------------------------------------------------------


@dataclass
class PredictOutcome:
    """A prediction and what became of its register record.

    ``record_error`` is set when the register write failed (read-only, full disk: RELIABILITY
    24): the prediction is still shown and ``record`` can be saved again.
    """

    study: AssembledStudy
    result: Any
    model: Any
    record: Any = None
    record_id: int | None = None
    record_error: str | None = None
    elapsed_s: float = 0.0


def make_record(
    study: AssembledStudy, result: Any, *, overrides: Mapping[str, str], warnings_shown: list[str], source_folder: str
) -> Any:
    """The register record of a prediction, through ``app.casework`` (one mapping for UI and CLI)."""
    with importing():
        from app.casework import prediction_record

    return prediction_record(
        study,
        result,
        overrides=dict(overrides),
        warnings_shown=list(warnings_shown),
        source_folder=source_folder,
    )


def save_record(register: Any, record: Any) -> int:
    """Write a record to the register; returns its id (raises the register's errors)."""
    return int(register.add_prediction(record))


def predict_job(
    study: AssembledStudy,
    holder: ModelHolder,
    choice: ModelChoice,
    register: Any,
    *,
    source_folder: str,
    warnings_shown: list[str],
) -> Callable[[Progress], PredictOutcome]:
    """Load the model (cached), predict, then record in the register.

    Cancellation is checked until the record is written and never after it, so a cancelled
    prediction leaves no record and a recorded one is always shown (RELIABILITY.md 28).
    """

    def run(progress: Progress) -> PredictOutcome:
        with importing(progress):
            from app.inference.predictor import predict

        t0 = time.monotonic()
        model = holder.get(choice, sub_progress(progress, 0.0, 0.15))
        progress.check()
        with holder.lock:
            result = predict(study, model, sub_progress(progress, 0.15, 0.95))
        progress.check()
        outcome = PredictOutcome(study=study, result=result, model=model)
        try:
            # The record is built even without a register, so that it can be saved later.
            outcome.record = make_record(
                study,
                result,
                overrides=study.overrides,
                warnings_shown=warnings_shown,
                source_folder=source_folder,
            )
            progress.check()  # last point where cancelling leaves nothing behind
            if register is None:
                outcome.record_error = "no register is open"
            else:
                progress.update(0.97, "recording in the register")
                outcome.record_id = save_record(register, outcome.record)
        except HCCError as exc:
            if isinstance(exc, _cancelled_type()):
                raise
            log.warning("register write failed: %s", exc.message)
            outcome.record_error = exc.message
        outcome.elapsed_s = time.monotonic() - t0
        progress.update(1.0, "prediction done")
        return outcome

    return run


# -- Grad-CAM -------------------------------------------------------------------------------


@dataclass
class SliceCam:
    """Grad-CAM of one slice level: phase → map (rows × cols of that phase's slice) in [0, 1].

    The viewed slice's maps come normalised by that slice's own maximum (the study-wide scale
    is not known before the whole study is done); the study's maps replace them moments later.
    """

    pair_index: int
    cams: dict[str, Any]
    global_max: float | None = 1.0


def slice_cams(cam: Any, pair_index: int) -> SliceCam:
    """The maps of ``pair_index`` out of a ``CamResult`` (``maps[phase][k]``)."""
    return SliceCam(pair_index, {phase: cam.map_for(phase, pair_index) for phase in cam.maps})


def cams_by_pair(cam: Any, n_pairs: int) -> dict[str, list[Any]]:
    """phase → list over all pairs (None where not computed) from a ``CamResult``.

    The maps are already divided by the study's ``global_max`` (one normalisation per study),
    so the viewer shows them on a fixed 0..1 scale.
    """
    out: dict[str, list[Any]] = {}
    for phase, stack in cam.maps.items():
        per: list[Any] = [None] * n_pairs
        for k, idx in enumerate(cam.pair_indices):
            if 0 <= idx < n_pairs:
                per[idx] = stack[k]
        out[phase] = per
    return out


#: Slice levels per Grad-CAM pass after the first: small enough that a slice the user scrolls
#: to is explained within about a second, large enough to keep the network's batches efficient.
CAM_CHUNK = 4


class ViewedSlice:
    """The slice level on view, written by the GUI thread and read by the Grad-CAM job.

    A plain int attribute: reading and writing it is atomic in Python, so no lock is needed and
    the job never touches a widget.
    """

    def __init__(self, index: int = 0) -> None:
        self.index = int(index)


def cam_order(n: int, done: set[int], centre: int, chunk: int = CAM_CHUNK) -> list[int]:
    """The next ``chunk`` slice levels to explain: the ones nearest to ``centre`` not done yet."""
    todo = [i for i in range(n) if i not in done]
    todo.sort(key=lambda i: (abs(i - centre), i))
    return sorted(todo[:chunk])


def cam_job(
    study: AssembledStudy,
    holder: ModelHolder,
    model: Any,
    first_pair: int,
    viewed: ViewedSlice | None = None,
) -> Callable[[Any], Any]:
    """Grad-CAM of the slice in view first, then of the rest, nearest to the view first.

    Publishes a :class:`SliceCam` as soon as each slice level is explained: the viewed slice at
    once (normalised by its own maximum), then chunks of :data:`CAM_CHUNK` levels around
    wherever the user is looking now (``viewed``), normalised by the largest value seen so far.
    Returns a ``CamResult`` for the whole study with ONE normalisation (the study's global
    maximum, DESIGN.md step 5), which replaces the provisional maps.
    """

    def run(progress: Any) -> Any:
        import numpy as np

        with importing(progress):
            from app.inference.gradcam import CamResult, gradcam_slice, gradcam_study

        n = len(study.pairs)
        publish = getattr(progress, "publish", None)
        raw: dict[int, dict[str, np.ndarray]] = {}
        explained: dict[int, str] = {}
        probability: dict[int, float] = {}
        running_max = 0.0

        notes: list[str] = []

        def keep(part: Any) -> None:
            nonlocal running_max
            running_max = max(running_max, float(part.global_max))
            for note in getattr(part, "warnings", []) or []:
                if note not in notes:
                    notes.append(note)  # e.g. a GPU -> CPU fallback during one pass
            for k, idx in enumerate(part.pair_indices):
                raw[idx] = {phase: part.raw[phase][k] for phase in part.raw}
                explained[idx] = part.explained_class[k]
                probability[idx] = part.probabilities[k]

        progress.update(0.0, "Grad-CAM of the slice in view")
        with holder.lock:
            first = gradcam_slice(model, study, first_pair, keep_raw=True)
        keep(first)
        part_last = [first]  # the device of the last pass (after any fallback)
        if publish is not None:
            publish(slice_cams(first, first_pair))
        while len(raw) < n:
            progress.check()
            centre = viewed.index if viewed is not None else first_pair
            chunk = cam_order(n, set(raw), centre)
            with holder.lock:
                part = gradcam_study(model, study, None, keep_raw=True, pair_indices=chunk)
            keep(part)
            part_last[0] = part
            if publish is not None and running_max > 0:
                for idx in chunk:
                    cams = {ph: np.clip(m / running_max, 0.0, 1.0) for ph, m in raw[idx].items()}
                    publish(SliceCam(idx, cams))
            progress.update(len(raw) / n, f"Grad-CAM {len(raw)}/{n} slice levels")
        scale = running_max if running_max > 0 else 1.0
        assert first.raw is not None  # asked for with keep_raw=True
        maps = {
            phase: np.clip(np.stack([raw[i][phase] for i in range(n)]) / scale, 0.0, 1.0).astype(np.float32)
            for phase in first.raw
        }
        return CamResult(
            phases=tuple(first.phases),
            pair_indices=list(range(n)),
            maps=maps,
            scale=scale,
            global_max=running_max,
            target=first.target,
            explained_class=[explained[i] for i in range(n)],
            probabilities=[probability[i] for i in range(n)],
            device=str(getattr(part_last[0], "device", "cpu")),
            warnings=notes,
        )

    return run


# -- demo -----------------------------------------------------------------------------------


def demo_job(dest: Path | None = None) -> Callable[[Progress], Path]:
    """Generate (once) the demo study under ``app.paths.demo_dir()``; returns its folder."""

    def run(progress: Progress) -> Path:
        from app.paths import demo_dir

        with importing(progress):
            from app.synthetic.demo import ensure_demo_study

        return Path(ensure_demo_study(dest or demo_dir(), progress))

    return run


# -- warm-up --------------------------------------------------------------------------------

#: The engine's modules, imported once in the background right after the window shows.
WARMUP_MODULES: tuple[str, ...] = (
    "numpy",
    "pydicom",
    "cv2",
    "scipy.ndimage",
    "app.dicom.scan",
    "app.dicom.volume",
    "app.dicom.phase",
    "app.dicom.assembly",
    "torch",
    "torchvision",
    "app.inference.weights",
    "app.inference.predictor",
    "app.inference.gradcam",
    "app.synthetic.demo",
)


def gui_torch_threads(cpu_count: int | None = None) -> int:
    """Intra-op threads for torch in the desktop app: all cores but one.

    The GUI thread needs a core of its own: with torch's default (one thread per core) the
    network's threads and the GUI thread compete for the cores and the event loop stalls for
    100-200 ms at a time while Grad-CAM runs (measured with ``bench/ui_heartbeat.py`` on two
    cores). The CLI keeps torch's default.
    """
    import os

    n = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, n - 1)


def configure_torch_for_gui() -> None:
    """Apply :func:`gui_torch_threads` (called once, by the warm-up, after importing torch)."""
    import torch

    torch.set_num_threads(gui_torch_threads())


def warmup_job(
    modules: tuple[str, ...] = WARMUP_MODULES, *, configure_threads: bool = True
) -> Callable[[Progress], list[str]]:
    """Import the engine's modules in the background; returns those that failed to import.

    Why: importing torch & co. initialises C extensions while holding the interpreter lock,
    which stalls the GUI thread for up to a second whichever thread imports them. Done right
    after start, while the user looks at the window, these stalls do not fall into the first
    import or prediction, where the user is watching a progress bar (RELIABILITY.md 29).
    """

    def run(progress: Progress) -> list[str]:
        import importlib

        failed: list[str] = []
        for i, name in enumerate(modules):
            progress.check()
            progress.update(i / len(modules), f"starting up ({i + 1}/{len(modules)})")
            try:
                with importing(progress):
                    importlib.import_module(name)
            except ImportError as exc:  # an optional part missing: the job using it will say so
                log.warning("warm-up: cannot import %s: %s", name, exc)
                failed.append(name)
            if name == "torch" and name not in failed and configure_threads:
                configure_torch_for_gui()
        return failed

    return run
