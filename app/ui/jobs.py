"""The desktop app's long jobs, as plain functions of a progress object (no Qt here).

Each ``*_job`` function returns a closure ``fn(progress) -> result`` that
:class:`app.ui.workers.JobManager` runs in a worker thread. They only chain the core's
Qt-free functions (scan, assemble, load model, predict, register, Grad-CAM, demo data), so the
app does exactly what the CLI does; what is specific to the desktop is *when* they run and how
results come back (dataclasses below).

The flow of a case itself (study choice, model choice, predict, record) is :mod:`app.case`,
shared with the commands; one :class:`~app.case.model.ModelHolder` keeps the loaded model
(STYLE.md 6) and the lock every user of the network takes. The register's own jobs (listing,
outcome, export, verify) are in :mod:`app.case.records`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.case.flow import CaseOutcome, predict_and_record
from app.case.imports import importing
from app.case.model import ModelChoice, ModelHolder
from app.dicom.patients import separate_patients
from app.dicom.studies import iter_studies, study_key
from app.dicom.types import AssembledStudy
from app.errors import Cancelled, HCCError, InputError
from app.progress import Progress, sub_progress

if TYPE_CHECKING:  # pragma: no cover - typing only; inference imports torch, scan pydicom
    from app.dicom.scan import ScanResult, StudyInfo
    from app.inference.gradcam import CamResult
    from app.inference.weights import LoadedModel
    from app.register import Register

log = logging.getLogger(__name__)


# -- import ---------------------------------------------------------------------------------


@dataclass
class ImportOutcome:
    """A scanned folder and the assembly of its first usable study.

    ``assembled``/``errors`` are keyed by study key (Study Instance UID); other studies are
    assembled when the user selects them.
    """

    folder: Path
    scan: ScanResult
    key: str | None
    assembled: dict[str, AssembledStudy] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


#: Decoding threads used by the app's imports (see :func:`assemble`).
UI_DECODE_WORKERS = 1


def _no_dicom_details(scan: ScanResult, limit: int = 40) -> str:
    files = scan.files
    lines = [f"{f.status}: {f.path} — {f.reason}" for f in files[:limit]]
    if len(files) > limit:
        lines.append(f"... and {len(files) - limit} more")
    return "\n".join(lines)


def assemble(study: StudyInfo, overrides: Mapping[str, str] | None,
             progress: Progress) -> AssembledStudy:
    """Assemble one study (the core's ``assemble_study``)."""
    with importing(progress):
        from app.dicom.assembly import assemble_for_viewing, assemble_study
        from app.dicom.errors import DicomError

    # One decoding thread: pydicom's parsing holds the interpreter lock, and several decoder
    # threads contending for it starve the GUI thread (measured: stalls of 300-400 ms with
    # the default pool, see bench/ui_heartbeat.py); the GUI needs responsiveness, not the last
    # second of import speed.
    try:
        return assemble_study(study, dict(overrides) if overrides else None, progress,
                              workers=UI_DECODE_WORKERS)
    except DicomError as exc:
        # Not predictable (a single-phase CT, a missing phase, a bad pairing): still viewable.
        return assemble_for_viewing(study, exc.message, overrides, progress,
                                    workers=UI_DECODE_WORKERS)


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

        folder_path = Path(folder)
        if not folder_path.exists():
            raise InputError(f"The folder {folder_path} does not exist.")
        if not folder_path.is_dir():
            raise InputError(f"{folder_path} is not a folder.")
        scan = scan_folder(folder_path, sub_progress(progress, 0.0, 0.6))
        separate_patients(scan)  # one Patient ID, different people: separate, with a warning
        studies = [study for _, study in iter_studies(scan)]
        if not any(study.series for study in studies):
            raise InputError(
                f"No DICOM images found in {folder_path}.", details=_no_dicom_details(scan)
            )
        outcome = ImportOutcome(folder=folder_path, scan=scan, key=None)
        # The first study with usable series is the one shown; others are assembled on demand.
        first = next((s for s in studies if s.usable_series()), studies[0])
        outcome.key = study_key(first)
        progress.check()
        try:
            outcome.assembled[outcome.key] = assemble(first, None, sub_progress(progress, 0.6, 1.0))
        except Cancelled:
            raise
        except HCCError as exc:
            outcome.errors[outcome.key] = exc.message
        progress.update(1.0, "imported")
        return outcome

    return run


def assemble_job(study: StudyInfo, overrides: Mapping[str, str] | None
                 ) -> Callable[[Progress], AssembledStudy]:
    """Assemble ``study`` with the user's ``overrides`` (phase → series uid)."""
    frozen = dict(overrides or {})
    return lambda progress: assemble(study, frozen, progress)


# -- model ----------------------------------------------------------------------------------


def bundled_model_path() -> Path | None:
    """The bundled model file if one is installed (``default_model_path()``), else None.

    Imports the inference layer (torch): call it from a worker, or after the warm-up.
    """
    with importing():
        from app.inference.weights import default_model_path

    path = Path(default_model_path())
    return path if path.is_file() else None


# -- prediction -----------------------------------------------------------------------------


def predict_job(
    study: AssembledStudy,
    holder: ModelHolder,
    choice: ModelChoice,
    register: Register | None,
    *,
    source_folder: str,
    warnings_shown: list[str],
) -> Callable[[Progress], CaseOutcome]:
    """Load the model (cached), predict, then record in the register
    (:func:`app.case.flow.predict_and_record`)."""
    return lambda progress: predict_and_record(study, holder, choice, register, progress,
                                               source_folder=source_folder,
                                               warnings_shown=warnings_shown,
                                               display_pending=True)  # marked once on screen


def save_record_job(register: Register, outcome: CaseOutcome) -> Callable[[Progress], int]:
    """Write the outcome's record to the register again (after a failed write)."""
    record = outcome.record
    if record is None:
        raise ValueError("the prediction has no record to save")
    return lambda _progress: register.add_prediction(record)


# -- Grad-CAM -------------------------------------------------------------------------------


@dataclass
class SliceCam:
    """Grad-CAM of one slice level: phase → map (rows × cols of that phase's slice) in [0, 1].

    The viewed slice's maps come normalised by that slice's own maximum (the study-wide scale
    is not known before the whole study is done); the study's maps replace them moments later.
    """

    pair_index: int
    cams: dict[str, np.ndarray]
    global_max: float | None = 1.0


def slice_cams(cam: CamResult, pair_index: int) -> SliceCam:
    """The maps of ``pair_index`` out of a ``CamResult`` (``maps[phase][k]``)."""
    return SliceCam(pair_index, {phase: cam.map_for(phase, pair_index) for phase in cam.maps})


def cams_by_pair(cam: CamResult, n_pairs: int) -> dict[str, list[np.ndarray | None]]:
    """phase → list over all pairs (None where not computed) from a ``CamResult``.

    The maps are already divided by the study's ``global_max`` (one normalisation per study),
    so the viewer shows them on a fixed 0..1 scale.
    """
    out: dict[str, list[np.ndarray | None]] = {}
    for phase, stack in cam.maps.items():
        per: list[np.ndarray | None] = [None] * n_pairs
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
    model: LoadedModel,
    first_pair: int,
    viewed: ViewedSlice | None = None,
) -> Callable[[Progress], CamResult]:
    """Grad-CAM of the slice in view first, then of the rest, nearest to the view first.

    Publishes a :class:`SliceCam` as soon as each slice level is explained: the viewed slice at
    once (normalised by its own maximum), then chunks of :data:`CAM_CHUNK` levels around
    wherever the user is looking now (``viewed``), normalised by the largest value seen so far.
    Returns a ``CamResult`` for the whole study with ONE normalisation (the study's global
    maximum, DESIGN.md step 5), which replaces the provisional maps.
    """

    def run(progress: Progress) -> CamResult:
        with importing(progress):
            from app.inference.gradcam import (
                CamResult,
                gradcam_slice,
                gradcam_study,
                shown_slices,
                study_scale,
            )

        n = len(study.pairs)
        publish = getattr(progress, "publish", None)  # a worker's JobProgress; None in tests
        raw: dict[int, dict[str, np.ndarray]] = {}
        explained: dict[int, str] = {}
        probability: dict[int, float] = {}
        area: dict[int, float] = {}
        running_max = 0.0

        notes: list[str] = []

        def keep(part: CamResult) -> None:
            nonlocal running_max
            running_max = max(running_max, float(part.global_max))
            assert part.raw is not None  # asked for with keep_raw=True
            for note in part.warnings:
                if note not in notes:
                    notes.append(note)  # e.g. a GPU -> CPU fallback during one pass
            for k, idx in enumerate(part.pair_indices):
                raw[idx] = {phase: stack[k] for phase, stack in part.raw.items()}
                explained[idx] = part.explained_class[k]
                probability[idx] = part.probabilities[k]
                if part.lesion_areas is not None:
                    area[idx] = part.lesion_areas[k]

        progress.update(0.0, "Grad-CAM of the slice in view")
        with holder.lock:
            first = gradcam_slice(model, study, first_pair, keep_raw=True)
        keep(first)
        last = first  # the device of the last pass (after any fallback)
        if publish is not None:
            publish(slice_cams(first, first_pair))
        while len(raw) < n:
            progress.check()
            centre = viewed.index if viewed is not None else first_pair
            chunk = cam_order(n, set(raw), centre)
            with holder.lock:
                part = gradcam_study(model, study, None, keep_raw=True, pair_indices=chunk)
            keep(part)
            last = part
            if publish is not None and running_max > 0:
                for idx in chunk:
                    cams = {ph: np.clip(m / running_max, 0.0, 1.0) for ph, m in raw[idx].items()}
                    publish(SliceCam(idx, cams))
            progress.update(len(raw) / n, f"Grad-CAM {len(raw)}/{n} slice levels")
        assert first.raw is not None  # asked for with keep_raw=True
        # the whole study is known now: only the slices that took part in the decision are
        # shown and set the scale (app.inference.gradcam, "Slices that did not take part")
        areas = [area[i] for i in range(n)] if len(area) == n else None
        shown = shown_slices(model, [probability[i] for i in range(n)], areas)
        stacked = {phase: np.stack([raw[i][phase] for i in range(n)]) for phase in first.raw}
        study_max, scale = study_scale(model, stacked, shown)
        scale = scale or 1.0
        maps = {phase: np.clip(a / scale, 0.0, 1.0).astype(np.float32) for phase, a in stacked.items()}
        return CamResult(
            phases=tuple(first.phases),
            pair_indices=list(range(n)),
            maps=maps,
            scale=scale,
            global_max=study_max,
            target=first.target,
            explained_class=[explained[i] for i in range(n)],
            probabilities=[probability[i] for i in range(n)],
            device=last.device,
            warnings=notes,
            lesion_areas=areas,
            shown=shown,
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


_startup_heap_frozen = False


def freeze_startup_heap() -> bool:
    """Move every object alive after the start-up imports into the collector's permanent generation.

    Why: the imported engine (torch, PySide6, pydicom, scipy...) leaves ~470,000 objects that live
    as long as the process. Python's cyclic collector scans all of them in each full collection,
    which holds the interpreter lock for ~300 ms on a two-core workstation (a full collection of
    the started app, ``bench/ui_heartbeat.py``) - the GUI thread stalls whichever thread the
    collection happens to run on, three times the 100 ms target of RELIABILITY.md 29. Frozen, those
    objects are never scanned again; a later full collection scans only what the session created.
    Done once per process (a second window or a test suite's later windows add nothing); the
    start-up's few garbage cycles stay frozen with the rest, which costs a little memory, not time.
    Returns whether this call froze the heap.
    """
    import gc

    global _startup_heap_frozen
    if _startup_heap_frozen:
        return False
    gc.freeze()
    _startup_heap_frozen = True
    return True


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection during the start-up imports, then :func:`freeze_startup_heap`.

    Why: the imports create only objects that live as long as the process, so every full
    collection during them is pure cost - seven of 16-250 ms each, ~0.8 s of held interpreter
    lock in all, while the user looks at the freshly shown window (``bench/ui_heartbeat.py``).
    """
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        freeze_startup_heap()
        if was_enabled:
            gc.enable()


def warmup_job(
    modules: tuple[str, ...] = WARMUP_MODULES, *, configure_threads: bool = True
) -> Callable[[Progress], list[str]]:
    """Import the engine's modules in the background; returns those that failed to import.

    Why: importing torch & co. initialises C extensions while holding the interpreter lock,
    which stalls the GUI thread for up to a second whichever thread imports them. Done right
    after start, while the user looks at the window, these stalls do not fall into the first
    import or prediction, where the user is watching a progress bar (RELIABILITY.md 29). For the
    same reason the garbage collector pauses during the imports and then freezes what they left
    (:func:`collector_paused`).
    """

    def run(progress: Progress) -> list[str]:
        with collector_paused():
            return import_all(progress)

    def import_all(progress: Progress) -> list[str]:
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
