"""Typed errors of the case register.

Every failure of the register reaches the caller as one of these, with a message a user can act
on. They derive from :mod:`app.errors`, so the CLI maps them to its exit codes (2 for bad or
refused input, 1 for internal trouble) and the UI shows them in a dialog. None of them means
that the caller's own data is lost: a prediction that could not be saved is still in the
caller's hands and can be saved again (RELIABILITY.md 24).
"""

from __future__ import annotations

from pathlib import Path

from app.errors import HCCError, InputError


class RegisterError(HCCError):
    """Something went wrong inside the register (internal error, exit 1)."""


class RegisterInputError(InputError):
    """Bad input for the register: an unknown case ID, an unknown RECIST category (exit 2)."""


class NotARegisterError(InputError):
    """The file is not an HCC Response register (another SQLite file, or not SQLite at all)."""


class RegisterNewerSchemaError(InputError):
    """The register was written by a newer version of the application; it was left unchanged."""

    def __init__(self, found: str, known: str) -> None:
        super().__init__(
            f"this register was written by a newer version of HCC Response (schema {found}); "
            f"this version understands up to {known} — it was left unchanged"
        )
        self.found = found
        self.known = known


class RegisterReadOnlyError(RegisterError):
    """The register's file or folder cannot be written (read-only location or mode)."""


class RegisterFullError(RegisterError):
    """The disk (or the register's size limit) is full; nothing of the failed write was kept."""


class RegisterBusyError(RegisterError):
    """Another program held the register locked for longer than the busy timeout."""


class RegisterDamagedError(RegisterError):
    """The register file is damaged (SQLite's integrity check or a read failed); refused.

    Exit code 2: the file given is unusable as it is, like a file that is not a register. The
    message names the newest backup found (``backup``, None when there is none), so the user
    knows what to restore from; nothing was written to the damaged file.
    """

    exit_code = 2

    def __init__(self, message: str, details: str | None = None,
                 backup: Path | None = None) -> None:
        super().__init__(message, details)
        self.backup = backup
