"""Which model a case runs on, loaded once and shared.

``predict`` and ``self-test`` name a model file (or none: the bundled one) and a device; the
desktop app takes the same three facts from its settings. :class:`ModelChoice` is those facts,
:func:`load_chosen_model` the one way to load them (the bundled model is always checked against
the SHA-256 recorded beside it, an imported one against the hash the user accepted), and
:class:`ModelHolder` keeps the loaded model between cases.

Thread safety: the holder's ``lock`` must be held while the network runs (prediction,
Grad-CAM), because Grad-CAM registers hooks on the shared module and two threads using it at
once would mix their activations.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.case.imports import importing
from app.errors import InputError
from app.progress import NULL_PROGRESS, Progress

if TYPE_CHECKING:  # pragma: no cover - typing only; the inference layer imports torch
    from app.inference.weights import LoadedModel

log = logging.getLogger(__name__)

#: The file a random-initialised model is written to when no trained model is installed.
RANDOM_MODEL_NAME = "random-initialised.safetensors"


@dataclass(frozen=True)
class ModelChoice:
    """Which model file to use on which device.

    Attributes
    ----------
    path:
        A model file, or None for the bundled model.
    sha256:
        The hash an imported file must have (None: not checked; the bundled model is always
        checked against its recorded hash).
    device:
        ``auto``, ``cpu`` or ``cuda``.
    random_if_missing:
        Without a bundled model, create and use a random-initialised one (the desktop app, to
        show the whole flow before trained weights exist; its card says the results are
        meaningless). The commands refuse instead.
    """

    path: Path | None = None
    sha256: str | None = None
    device: str = "auto"
    random_if_missing: bool = False


def resolve_model_path(choice: ModelChoice, progress: Progress = NULL_PROGRESS) -> Path:
    """The file to load: the chosen one, else the bundled one, else (if allowed) a random one."""
    if choice.path is not None:
        return Path(choice.path)
    with importing(progress):
        from app.inference.weights import create_random_model, default_model_path
        from app.paths import models_dir

    default = Path(default_model_path())
    if default.exists() or not choice.random_if_missing:
        return default
    path = models_dir() / RANDOM_MODEL_NAME
    if not path.exists():
        progress.update(0.0, "creating a random-initialised model (no trained model found)")
        log.warning("no bundled model at %s; using a random-initialised model", default)
        create_random_model(path)
    return path


def load_chosen_model(choice: ModelChoice, progress: Progress = NULL_PROGRESS) -> LoadedModel:
    """Load the model ``choice`` names, its SHA-256 checked.

    Raises
    ------
    InputError
        The chosen file does not exist.
    ModelFileError
        The file is damaged, has another hash than expected, or a bundled model has no
        recorded hash (the loader's own errors, passed on).
    """
    path = resolve_model_path(choice, progress)
    with importing(progress):
        from app.inference.weights import ModelFileError, load_model, recorded_sha256

    if choice.path is not None and not path.is_file():
        raise InputError(f"model file not found: {path}")
    if choice.path is None and not path.is_file():
        raise ModelFileError(f"no bundled model at {path}")
    expected = choice.sha256 if choice.path is not None else recorded_sha256(path)
    if choice.path is None and expected is None:
        raise ModelFileError(f"the bundled model {path.name} has no recorded SHA-256 "
                             f"({path.name}.sha256)")
    progress.update(0.0, f"loading model {path.name}")
    model = load_model(path, choice.device, expected_sha256=expected)
    progress.update(1.0, "model loaded")
    return model


class ModelHolder:
    """The loaded model, loaded lazily once per (file, hash, device), shared by cases.

    ``lock`` is held by workers while the network runs (and while a model loads), possibly for
    many seconds; :meth:`forget` is called on the GUI thread (a model accepted, the settings
    changed) and so never waits for it: the cached model and its key have a lock of their own,
    held only for an assignment. A prediction already running goes on with the model it has
    (and records that model's identity); a load that was under way when the model was
    forgotten is returned to its caller but not kept.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._state = threading.Lock()  # guards _model, _key, _generation; never held long
        self._key: tuple[str, str | None, str] | None = None
        self._model: LoadedModel | None = None
        self._generation = 0

    @property
    def loaded(self) -> LoadedModel | None:
        """The currently loaded model, or None."""
        return self._model

    def forget(self) -> None:
        """Drop the loaded model (the settings changed, or its file did); does not wait for a
        running prediction."""
        with self._state:
            self._model = None
            self._key = None
            self._generation += 1

    def get(self, choice: ModelChoice, progress: Progress = NULL_PROGRESS) -> LoadedModel:
        """Load (or reuse) the model for ``choice``; raises :func:`load_chosen_model`'s errors."""
        with self.lock:
            key = (str(resolve_model_path(choice, progress)), choice.sha256, choice.device)
            with self._state:
                if self._model is not None and self._key == key:
                    return self._model
                generation = self._generation
            model = load_chosen_model(choice, progress)
            with self._state:
                if self._generation == generation:  # not forgotten meanwhile
                    self._model, self._key = model, key
            return model
