"""Where things live: writable per-user data and read-only bundled resources.

Writable data (register, logs, settings, imported models) goes under the per-user data
directory from platformdirs, overridable with ``HCC_RESPONSE_HOME`` (tests and portable
installs). Read-only resources are found relative to the package, so the same code works from a
source checkout, an installed wheel and a PyInstaller bundle (``sys._MEIPASS``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "hcc-response"
APP_AUTHOR = "HCCResponse"


def user_data_dir() -> Path:
    """Per-user writable directory (created on demand)."""
    override = os.environ.get("HCC_RESPONSE_HOME")
    base = Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR))
    base.mkdir(parents=True, exist_ok=True)
    return base


def log_dir() -> Path:
    d = user_data_dir() / "logs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def settings_file() -> Path:
    return user_data_dir() / "settings.json"


def default_register_path() -> Path:
    return user_data_dir() / "register.sqlite"


def default_backup_dir() -> Path:
    """Where scheduled register backups go unless the settings name a folder
    (:mod:`app.register.autobackup`); a site does better to choose one on another disk."""
    return user_data_dir() / "register-backups"


def pending_records_file() -> Path:
    """Predictions the register could not take, kept until they can be recorded (issue 19)."""
    return user_data_dir() / "pending-records.jsonl"


def has_pending_records() -> bool:
    """Whether anything is waiting to be recorded (cheap: the start-up check of every command).

    Also true for the claim a replay interrupted by a crash left behind.
    """
    main = pending_records_file()
    return main.exists() or any(main.parent.glob(main.name + ".replaying-*"))


def models_dir() -> Path:
    """Where imported site models are copied."""
    d = user_data_dir() / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def demo_dir() -> Path:
    """Where the locally generated demo study is written."""
    return user_data_dir() / "demo"


def resources_dir() -> Path:
    """Read-only resources (bundled model, icons): frozen bundle first, then the source tree."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))
