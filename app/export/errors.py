"""Typed errors of the DICOM export."""

from __future__ import annotations

from app.errors import InputError


class ExportError(InputError):
    """The result objects cannot be built or written (source files gone, folder not writable).

    An :class:`~app.errors.InputError` (exit status 2): it is about the user's files or folder,
    and the prediction itself is unaffected and can be exported again.
    """
