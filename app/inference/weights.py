"""Model files: safetensors weights with the model description inside, checked before use.

File format (decided here)
--------------------------
One ``.safetensors`` file. Its metadata holds ``format = "hcc-response-model"``,
``format_version`` and ``description``: the JSON of :class:`ModelDescription`, which includes
the architecture (:class:`~app.inference.config.ModelConfig`, i.e. also the preprocessing) that
rebuilds the network. One file means the description cannot drift away from its weights; a
``.json`` beside it would be a second source of truth. :func:`read_description` shows the card
without loading the tensors.

Identity
--------
The model's identity is the SHA-256 of the file's bytes exactly as stored (tensors AND embedded
description), so ``sha256sum model.safetensors`` reproduces it, and changing a single weight or
a word of the card (e.g. its ``weights_kind``) gives a new identity. The register records it
with every prediction. The bundled model's expected hash sits beside it in
``<file>.sha256`` (``sha256sum`` format) and a changed file is refused (RELIABILITY.md 17).

Safety (RELIABILITY.md 16–18)
-----------------------------
Only tensors are ever read — no pickle, no ``torch.load``. Before anything is built the header
is parsed by hand so that an empty, truncated or foreign file gets a specific message; then
keys, shapes and dtypes are compared with the network the description asks for, and every
floating tensor is checked for NaN/Inf. Every refusal is a :class:`ModelFileError` (exit 2).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import threading
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from app import INTENDED_USE, __version__
from app.errors import InputError
from app.inference.config import CLASSES, ConfigError, ModelConfig
from app.inference.device import DeviceChoice, place_with_fallback, select_device
from app.inference.model import MultiPhaseNet, build_model, fold_batchnorm
from app.inference.preprocess import preprocessing_summary

FORMAT = "hcc-response-model"
FORMAT_VERSION = 1
DEFAULT_MODEL_NAME = "demo-model.safetensors"

#: What the weights are — said plainly on every model card and echoed with every prediction.
WEIGHTS_RANDOM = "random-initialised — not trained"
WEIGHTS_SYNTHETIC = "trained on synthetic phantoms"
WEIGHTS_SITE = "site-trained"
WEIGHTS_KINDS: tuple[str, ...] = (WEIGHTS_RANDOM, WEIGHTS_SYNTHETIC, WEIGHTS_SITE)

_FLOAT_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32}
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
                "U8": 1, "BOOL": 1, "U16": 2, "U32": 4, "U64": 8}
# the header is JSON describing tensors: generous, but a bound that refuses garbage quickly
_MAX_HEADER = 64 * 1024 * 1024


class ModelFileError(InputError):
    """A model file that is refused: unreadable, foreign, damaged, changed or incompatible."""


@dataclass
class ModelDescription:
    """The model card stored inside every model file.

    Attributes
    ----------
    name, version:
        Human name and version of this model ("hcc-response-3phase", "2026.1").
    weights_kind:
        One of :data:`WEIGHTS_KINDS`: random-initialised (not trained), trained on synthetic
        phantoms, or site-trained. The predictor warns when the weights are not trained.
    created:
        ISO 8601 UTC time the file was written.
    architecture:
        ``ModelConfig.to_dict()`` — filled in by :func:`save_model` from the model itself.
    preprocessing:
        Summary of the preprocessing (filled in by :func:`save_model`).
    phases:
        Phases the model reads (filled in by :func:`save_model`).
    classes:
        Order of the logits.
    training_data:
        Summary of the training data (cohort size, responder rate, source, split ...).
    metrics:
        Validation metrics (AUC with CI, accuracy, sensitivity, specificity ...).
    intended_use:
        The intended-use statement.
    notes:
        Free text (limitations, provenance, what differs from the paper).
    software_version:
        Version of this software that wrote the file.
    """

    name: str
    version: str
    weights_kind: str
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    architecture: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    phases: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=lambda: list(CLASSES))
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    intended_use: str = INTENDED_USE
    notes: str = ""
    software_version: str = __version__

    def __post_init__(self) -> None:
        if self.weights_kind not in WEIGHTS_KINDS:
            raise ModelFileError(
                f"unknown weights_kind {self.weights_kind!r}; expected one of {list(WEIGHTS_KINDS)}")

    @property
    def is_trained(self) -> bool:
        """False for randomly initialised weights, whose predictions mean nothing."""
        return self.weights_kind != WEIGHTS_RANDOM

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> ModelDescription:
        """Rebuild from :meth:`to_dict`; unknown keys are kept out, missing required ones refused."""
        if not isinstance(d, dict):
            raise ModelFileError("model description is not a JSON object")
        names = {f.name for f in fields(cls)}
        missing = [k for k in ("name", "version", "weights_kind", "architecture") if k not in d]
        if missing:
            raise ModelFileError(f"model description lacks {', '.join(missing)}")
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except TypeError as exc:
            raise ModelFileError(f"model description is invalid: {exc}") from exc


@dataclass
class LoadedModel:
    """A checked model on its device, ready for :func:`app.inference.predictor.predict`.

    ``model`` is in eval mode with ``requires_grad`` off (inference only; Grad-CAM does not need
    parameter gradients), normally with BatchNorm folded into its convolutions. ``device_choice`` says why this device; the predictor may move the
    model to the CPU after a GPU failure and updates it.
    """

    model: MultiPhaseNet
    config: ModelConfig
    description: ModelDescription
    sha256: str
    path: Path | None
    device_choice: DeviceChoice
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @property
    def device(self) -> torch.device:
        return self.device_choice.device

    @property
    def identity(self) -> str:
        """Short form for display: name, version and the first 12 hex digits of the hash."""
        return f"{self.description.name} {self.description.version} ({self.sha256[:12]})"


# ------------------------------------------------------------------------------------ writing


def save_model(
    model: MultiPhaseNet,
    config: ModelConfig,
    description: ModelDescription,
    path: str | Path,
    *,
    half: bool = False,
) -> str:
    """Write ``model`` with its description to ``path`` (atomically) and return the SHA-256.

    Parameters
    ----------
    model:
        The network; its ``config`` must equal ``config``.
    config:
        The architecture; written into ``description.architecture`` (with the preprocessing and
        phases), so that the card always matches the tensors.
    description:
        The model card; a copy is stored, the caller's object is left untouched.
    path:
        Destination ``.safetensors`` file. Written to a temporary file in the same folder and
        renamed, so a crash never leaves a half-written model under the real name.
    half:
        Store floating tensors as float16 (half the size: a shared-trunk three-phase ResNet-18
        fits in ~24 MB). Loading converts back to float32.

    Returns
    -------
    str
        The SHA-256 (hex) of the written file — the model's identity.
    """
    if model.config != config:
        raise ModelFileError("the model was built for a different configuration than the one given")
    if model.folded:
        raise ModelFileError("this network was folded for inference (load_model does that); save the "
                             "trained network itself")
    desc = ModelDescription.from_dict(description.to_dict())
    desc.architecture = config.to_dict()
    desc.preprocessing = preprocessing_summary(config)
    desc.phases = list(config.phases)
    tensors: dict[str, torch.Tensor] = {}
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu")
        if t.is_floating_point():
            t = t.to(torch.float16 if half else torch.float32)
        tensors[name] = t.contiguous().clone()  # clone: safetensors refuses shared storage
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
                "description": json.dumps(desc.to_dict(), ensure_ascii=False)}
    blob = st_save(tensors, metadata=metadata)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return hashlib.sha256(blob).hexdigest()


def sha256_file(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_sha256_file(path: str | Path) -> Path:
    """Record the model's hash beside it as ``<file>.sha256`` (``sha256sum`` format)."""
    path = Path(path)
    out = path.with_name(path.name + ".sha256")
    out.write_text(f"{sha256_file(path)}  {path.name}\n", encoding="ascii")
    return out


def recorded_sha256(path: str | Path) -> str | None:
    """The hash recorded in ``<file>.sha256`` beside a model file, or None when there is none."""
    path = Path(path)
    rec = path.with_name(path.name + ".sha256")
    if not rec.is_file():
        return None
    parts = rec.read_text(encoding="ascii", errors="replace").split()
    if not parts or len(parts[0]) != 64:
        raise ModelFileError(f"{rec.name} does not hold a SHA-256")
    return parts[0].lower()


# ------------------------------------------------------------------------------------ reading


@dataclass
class _Header:
    tensors: dict[str, dict[str, Any]]
    metadata: dict[str, str]
    data_start: int


def _parse_header(blob: bytes, name: str) -> _Header:
    """Parse and check a safetensors header by hand, so each kind of damage gets its message."""
    if len(blob) == 0:
        raise ModelFileError(f"model file {name} is empty")
    if len(blob) < 8:
        raise ModelFileError(f"model file {name} is truncated ({len(blob)} bytes)")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > _MAX_HEADER:
        raise ModelFileError(f"{name} is not a safetensors model file (implausible header size {n})")
    if 8 + n > len(blob):
        raise ModelFileError(
            f"model file {name} is truncated or not a safetensors file: its header needs {n} bytes, "
            f"the file has {len(blob) - 8} after the size field")
    try:
        header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{name} is not a safetensors model file (header is not JSON)") from exc
    if not isinstance(header, dict):
        raise ModelFileError(f"{name} is not a safetensors model file (header is not an object)")
    metadata = header.pop("__metadata__", None) or {}
    data_len = len(blob) - 8 - n
    need = 0
    for tname, info in header.items():
        try:
            start, end = (int(v) for v in info["data_offsets"])
            dtype = str(info["dtype"])
            shape = [int(s) for s in info["shape"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{name}: malformed header entry for tensor {tname!r}") from exc
        count = 1
        for s in shape:
            count *= s
        if dtype in _DTYPE_BYTES and end - start != count * _DTYPE_BYTES[dtype]:
            raise ModelFileError(f"{name}: tensor {tname!r} has {end - start} bytes for shape {shape} {dtype}")
        need = max(need, end)
    if need > data_len:
        raise ModelFileError(
            f"model file {name} is truncated: the tensors need {need} bytes, the file holds {data_len}")
    return _Header(header, dict(metadata), 8 + n)


def _description_from_metadata(meta: dict[str, str], name: str) -> ModelDescription:
    if meta.get("format") != FORMAT or "description" not in meta:
        raise ModelFileError(f"{name} is not an HCC Response model file (no model description inside)")
    try:
        version = int(meta.get("format_version", "0"))
    except ValueError as exc:
        raise ModelFileError(f"{name}: invalid format_version {meta.get('format_version')!r}") from exc
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{name} was written by a newer version (model format {version}); this "
                             f"version reads format {FORMAT_VERSION} — update HCC Response")
    if version < 1:
        raise ModelFileError(f"{name}: unknown model format version {version}")
    try:
        raw = json.loads(meta["description"])
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{name}: the model description is not valid JSON ({exc.msg})") from exc
    return ModelDescription.from_dict(raw)


def read_description(path: str | Path) -> ModelDescription:
    """Read the model card of a file without loading its tensors (for showing before import)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ModelFileError(f"model file {path.name} is {'empty' if not head else 'truncated'}")
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER:
                raise ModelFileError(f"{path.name} is not a safetensors model file")
            body = f.read(n)
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    if len(body) < n:
        raise ModelFileError(f"model file {path.name} is truncated")
    try:
        meta = json.loads(body.decode("utf-8")).get("__metadata__") or {}
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise ModelFileError(f"{path.name} is not a safetensors model file") from exc
    return _description_from_metadata(meta, path.name)


def _names(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(sorted(items)[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _check_against_model(header: _Header, model: MultiPhaseNet, name: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in header.tensors]
    unexpected = [k for k in header.tensors if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensor(s) ({_names(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensor(s) ({_names(unexpected)})")
        raise ModelFileError(f"{name} does not match its architecture: " + "; ".join(parts))
    for k, ref in expected.items():
        info = header.tensors[k]
        shape = tuple(int(s) for s in info["shape"])
        if shape != tuple(ref.shape):
            raise ModelFileError(f"{name}: tensor {k} has shape {list(shape)}, the architecture needs "
                                 f"{list(ref.shape)}")
        dtype = info["dtype"]
        if ref.is_floating_point() and dtype not in _FLOAT_DTYPES:
            raise ModelFileError(f"{name}: tensor {k} has dtype {dtype}; weights must be float16, "
                                 "bfloat16 or float32")
        if not ref.is_floating_point() and dtype != "I64":
            raise ModelFileError(f"{name}: tensor {k} has dtype {dtype}; expected I64")


def load_model(
    path: str | Path,
    device: str | torch.device = "cpu",
    expected_sha256: str | None = None,
    fold: bool = True,
) -> LoadedModel:
    """Read, check and build a model file, ready on ``device`` in eval mode.

    Parameters
    ----------
    path:
        The ``.safetensors`` model file.
    device:
        ``"auto"``, ``"cpu"``, ``"cuda"`` (see :func:`app.inference.device.select_device`; a
        broken GPU falls back to the CPU with the reason recorded).
    expected_sha256:
        When given, a file whose SHA-256 differs is refused (the bundled model, a model the
        register names).
    fold:
        Fold BatchNorm into the convolutions (:func:`app.inference.model.fold_batchnorm`) and
        use channels-last weights: the same outputs to rounding, 1.5–2× faster on the CPU. The
        loaded network is then for inference only; pass False to fine-tune it.

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelFileError
        Missing, empty, truncated or foreign file; changed file; invalid or newer description;
        missing/unexpected keys, wrong shapes or dtypes; NaN/Inf weights. The message names the
        tensor(s) concerned.
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    sha = hashlib.sha256(blob).hexdigest()
    if expected_sha256 is not None and sha != expected_sha256.lower():
        raise ModelFileError(f"model file {name} has changed: SHA-256 {sha[:16]}…, expected "
                             f"{expected_sha256.lower()[:16]}…; refusing to use it")
    header = _parse_header(blob, name)
    description = _description_from_metadata(header.metadata, name)
    try:
        config = ModelConfig.from_dict(description.architecture)
    except ConfigError as exc:
        raise ModelFileError(f"{name}: {exc.message}") from exc
    model = build_model(config)
    _check_against_model(header, model, name)
    try:
        tensors = st_load(blob)
    except Exception as exc:  # noqa: BLE001 - the reader's own errors: the file is damaged
        raise ModelFileError(f"{name}: the tensor data cannot be read ({exc})") from exc
    bad = [k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise ModelFileError(f"{name}: NaN or infinite values in tensor(s) {_names(bad)}")
    state = {k: (t.float() if t.is_floating_point() else t) for k, t in tensors.items()}
    model.load_state_dict(state, strict=True)
    model.eval().requires_grad_(False)
    if fold:
        fold_batchnorm(model)
    # channels-last on the chosen device (oneDNN and cuDNN both run faster in NHWC); a GPU
    # that fails while the weights move to it leaves the model on the CPU, with the reason
    loaded = LoadedModel(model, config, description, sha, path, select_device("cpu"))
    place_with_fallback(loaded, select_device(device))
    return loaded


def wrap_model(model: MultiPhaseNet, description: ModelDescription | None = None,
               device: str | torch.device = "cpu") -> LoadedModel:
    """A :class:`LoadedModel` around an in-memory network (training, tests), identity computed
    from its tensors as they would be saved (float32)."""
    description = description or ModelDescription(
        name="in-memory", version="0", weights_kind=WEIGHTS_RANDOM, architecture=model.config.to_dict())
    blob = st_save({k: v.detach().cpu().float().contiguous().clone() if v.is_floating_point()
                    else v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()})
    model.eval()
    loaded = LoadedModel(model, model.config, description, hashlib.sha256(blob).hexdigest(), None,
                         select_device("cpu"))
    choice = select_device(device)
    if choice.device.type != "cpu":
        place_with_fallback(loaded, choice)
    else:
        loaded.device_choice = choice  # in-memory networks keep their memory format on the CPU
    return loaded


# ---------------------------------------------------------------------------- bundled / demo


def default_model_path() -> Path:
    """The model bundled with the application (``resources/models/demo-model.safetensors``)."""
    from app.paths import resources_dir

    return resources_dir() / "models" / DEFAULT_MODEL_NAME


def load_bundled_model(device: str | torch.device = "auto", path: str | Path | None = None) -> LoadedModel:
    """Load the bundled model, refusing it unless its recorded SHA-256 (``.sha256`` beside it)
    matches (RELIABILITY.md 17)."""
    path = Path(path) if path is not None else default_model_path()
    if not path.is_file():
        raise ModelFileError(f"no bundled model at {path}")
    expected = recorded_sha256(path)
    if expected is None:
        raise ModelFileError(f"the bundled model {path.name} has no recorded SHA-256 ({path.name}.sha256)")
    return load_model(path, device=device, expected_sha256=expected)


def create_random_model(
    path: str | Path,
    config: ModelConfig | None = None,
    *,
    seed: int = 0,
    half: bool = False,
    record_sha256: bool = True,
) -> str:
    """Write a RANDOMLY INITIALISED model whose card says so plainly; returns its SHA-256.

    For demonstrating the software until trained weights exist: predictions made with it are
    meaningless, and the predictor says so with every result.
    """
    config = config or ModelConfig()
    torch.manual_seed(seed)
    model = build_model(config)
    desc = ModelDescription(
        name="hcc-response-random-demo",
        version="0",
        weights_kind=WEIGHTS_RANDOM,
        training_data={"patients": 0, "source": "none — not trained"},
        notes=(f"Randomly initialised weights (seed {seed}) for demonstrating the software only. "
               "Its predictions carry no information about treatment response."),
    )
    sha = save_model(model, config, desc, path, half=half)
    if record_sha256:
        write_sha256_file(path)
    return sha
