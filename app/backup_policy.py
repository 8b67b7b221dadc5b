"""When and where the case register is backed up automatically (Qt-free, no database imports).

A settings value (:class:`app.settings.Settings` ``register_backup``), kept apart from
:mod:`app.register.autobackup`, which makes the backups, so that reading the settings never
imports the database layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import InputError


class BackupPolicyError(InputError):
    """A backup setting is invalid (a count below 1, an interval that is not positive)."""


@dataclass(frozen=True)
class BackupPolicy:
    """When and where the register is backed up, and how many backups are kept.

    Attributes
    ----------
    enabled:
        Back up automatically (on by default).
    folder:
        Where the backups go; None means ``app.paths.default_backup_dir()`` (beside the
        register, in the per-user data folder - better a folder on another disk or a share).
    keep:
        How many scheduled backups are kept (the oldest beyond that are deleted).
    interval_hours:
        A new backup is made once the newest is older than this.
    """

    enabled: bool = True
    folder: str | None = None
    keep: int = 14
    interval_hours: float = 24.0

    def __post_init__(self) -> None:
        if isinstance(self.keep, bool) or not isinstance(self.keep, int) or self.keep < 1:
            raise BackupPolicyError(f"backups to keep must be a whole number of at least 1, not {self.keep!r}")
        if isinstance(self.interval_hours, bool) or not isinstance(self.interval_hours, (int, float)) \
                or not 0 < self.interval_hours <= 24 * 365:
            raise BackupPolicyError(
                f"the backup interval must be more than 0 and at most a year in hours, not {self.interval_hours!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "folder": self.folder, "keep": self.keep,
                "interval_hours": self.interval_hours}

    @classmethod
    def from_dict(cls, doc: Any) -> BackupPolicy:
        """Parse the settings file's entry; raises :class:`BackupPolicyError` for a bad one."""
        if not isinstance(doc, dict):
            raise BackupPolicyError("the backup settings are not an object")
        enabled = doc.get("enabled", True)
        folder = doc.get("folder")
        if not isinstance(enabled, bool):
            raise BackupPolicyError(f"'enabled' must be true or false, not {enabled!r}")
        if folder is not None and not isinstance(folder, str):
            raise BackupPolicyError(f"'folder' must be a path, not {folder!r}")
        return cls(enabled=enabled, folder=folder or None, keep=doc.get("keep", 14),
                   interval_hours=doc.get("interval_hours", 24.0))

    def backup_dir(self) -> Path:
        """The folder the backups go to (the default one when none is set)."""
        if self.folder:
            return Path(self.folder).expanduser()
        from app.paths import default_backup_dir

        return default_backup_dir()
