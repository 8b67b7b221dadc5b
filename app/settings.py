"""User settings of the desktop app, as a small JSON file (Qt-free).

Layers (STYLE.md 10): packaged defaults < the user's settings file (``app.paths.settings_file()``)
< environment (``HCC_RESPONSE_DEVICE``) < command line. The result is validated once into a
frozen :class:`Settings`; changes produce a new object (``dataclasses.replace``) that
:func:`save_settings` writes atomically (temporary file + ``os.replace``), so a crash while saving
never leaves half a file behind.

Why JSON and not QSettings: the core and the CLI read the same choices (device, model, register)
without Qt, and the file is human-readable for support. Only the window's geometry/state are Qt
blobs; they are stored here as base64 text so that there is still just one file.

A damaged or unreadable settings file must never stop the app from starting: it is renamed to
``settings.json.bad`` (kept for support), a warning is logged and the defaults are used.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from app.backup_policy import BackupPolicy, BackupPolicyError
from app.dicomnet.config import NetworkSettings
from app.dicomnet.errors import NodeConfigError
from app.errors import InputError

log = logging.getLogger(__name__)

DeviceSetting = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")

#: Environment variable overriding the device setting (e.g. for a machine whose GPU misbehaves).
DEVICE_ENV = "HCC_RESPONSE_DEVICE"


class SettingsError(InputError):
    """A setting value is invalid (e.g. an unknown device name)."""


@dataclass(frozen=True)
class Settings:
    """Everything the user can choose that survives a restart.

    Attributes
    ----------
    device:
        ``"auto"`` (CUDA when it works, else CPU), ``"cpu"`` or ``"cuda"``.
    model_path:
        The active model file (.safetensors); None means the bundled default model.
    model_sha256:
        SHA-256 the active model must have (recorded when the user imported it, so that a
        changed file is refused, RELIABILITY.md 17); None for the bundled model, whose hash the
        inference layer checks itself.
    register_path:
        The SQLite case register; None means ``app.paths.default_register_path()``.
    last_folder:
        The folder last imported (start point of the folder dialog).
    window_geometry, window_state:
        Base64 of ``QMainWindow.saveGeometry()`` / ``saveState()``.
    demo_offered:
        True once the first-start demo offer was shown (it is offered once).
    recent_folders:
        Most recent first, at most :data:`MAX_RECENT`.
    dicom_network:
        The optional DICOM network link (off by default, no nodes).
    register_backup:
        Automatic backups of the register (on by default: daily, 14 kept, in the per-user data
        folder unless a folder is set; :mod:`app.register.autobackup`).
    """

    device: str = "auto"
    model_path: str | None = None
    model_sha256: str | None = None
    register_path: str | None = None
    last_folder: str | None = None
    window_geometry: str | None = None
    window_state: str | None = None
    demo_offered: bool = False
    recent_folders: tuple[str, ...] = field(default_factory=tuple)
    dicom_network: NetworkSettings = field(default_factory=NetworkSettings)
    register_backup: BackupPolicy = field(default_factory=BackupPolicy)

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise SettingsError(
                f"unknown device {self.device!r}: choose one of {', '.join(DEVICES)}"
            )

    def with_recent_folder(self, folder: Path | str) -> Settings:
        """Return settings with ``folder`` as last and most recent folder."""
        text = str(folder)
        recent = (text, *(f for f in self.recent_folders if f != text))[:MAX_RECENT]
        return dataclasses.replace(self, last_folder=text, recent_folders=recent)

    def to_dict(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["recent_folders"] = list(self.recent_folders)
        doc["dicom_network"] = self.dicom_network.to_dict()
        doc["register_backup"] = self.register_backup.to_dict()
        return doc


MAX_RECENT = 8


def _from_dict(doc: dict[str, Any]) -> Settings:
    """Build settings from a parsed file, ignoring unknown keys and bad values one by one.

    Field-by-field so that one bad value (say a device name from a newer version) costs only
    that value, not all of the user's settings.
    """
    defaults = Settings()
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        if f.name not in doc:
            continue
        value = doc[f.name]
        default = getattr(defaults, f.name)
        if f.name == "recent_folders":
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                values[f.name] = tuple(value)[:MAX_RECENT]
            else:
                log.warning("settings: ignoring invalid recent_folders")
        elif f.name == "dicom_network":
            try:
                values[f.name] = NetworkSettings.from_dict(value)
            except NodeConfigError as exc:
                log.warning("settings: ignoring the DICOM network settings (%s); the link stays off",
                            exc)
        elif f.name == "register_backup":
            try:
                values[f.name] = BackupPolicy.from_dict(value)
            except BackupPolicyError as exc:
                log.warning("settings: ignoring the register backup settings (%s); using the "
                            "defaults", exc)
        elif f.name == "demo_offered":
            if isinstance(value, bool):
                values[f.name] = value
            else:
                log.warning("settings: ignoring invalid demo_offered=%r", value)
        elif f.name == "device":
            if value in DEVICES:
                values[f.name] = value
            else:
                log.warning("settings: unknown device %r, using %r", value, default)
        elif value is None or isinstance(value, str):
            values[f.name] = value
        else:
            log.warning("settings: ignoring invalid %s=%r", f.name, value)
    return Settings(**values)


def load_settings(path: Path | None = None, *, environ: dict[str, str] | None = None) -> Settings:
    """Read the settings file (defaults when absent or damaged) and apply the environment.

    Parameters
    ----------
    path:
        The settings file; default ``app.paths.settings_file()``.
    environ:
        The environment to read overrides from (default ``os.environ``; tests pass a dict).

    Returns
    -------
    Settings
        Never raises for a damaged file: that file is moved aside to ``*.bad`` and logged.
    """
    from app.paths import settings_file

    path = path or settings_file()
    settings = Settings()
    if path.exists():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict):
                raise ValueError("the settings file does not hold a JSON object")
            settings = _from_dict(doc)
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError included
            log.warning("settings file %s is damaged (%s); using defaults", path, exc)
            try:
                path.replace(path.with_name(path.name + ".bad"))
            except OSError:
                log.warning("could not move the damaged settings file aside", exc_info=True)
    env = os.environ if environ is None else environ
    device = env.get(DEVICE_ENV)
    if device:
        if device in DEVICES:
            settings = dataclasses.replace(settings, device=device)
        else:
            log.warning("%s=%r is not one of %s; ignored", DEVICE_ENV, device, DEVICES)
    return settings


def save_settings(settings: Settings, path: Path | None = None) -> None:
    """Write the settings atomically (temporary file in the same folder, then rename).

    Raises
    ------
    OSError
        When the folder is not writable; the caller (the UI) tells the user, the old file stays.
    """
    from app.paths import settings_file

    path = path or settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    data = json.dumps(settings.to_dict(), indent=2, ensure_ascii=False)
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def update_settings(path: Path | None = None, **changes: Any) -> Settings:
    """Load, change some fields, validate and save; returns the new settings."""
    settings = dataclasses.replace(load_settings(path, environ={}), **changes)
    save_settings(settings, path)
    return settings
