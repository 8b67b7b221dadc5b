"""Typed errors of the DICOM layer.

The scan itself never raises for a bad *file* (every file gets an outcome with a reason); these
errors are for a bad *folder*, a series that cannot be loaded, or a study that cannot be
assembled. All derive from :class:`app.errors.InputError` (exit status 2): they are problems with
the user's input, not bugs.
"""

from __future__ import annotations

from app.errors import InputError


class DicomError(InputError):
    """Base of the DICOM layer's input errors."""


class FolderError(DicomError):
    """The folder to scan is missing, not a folder, or unreadable."""


class NoDicomFound(DicomError):
    """A folder was scanned but held no usable DICOM image."""


class VolumeLoadError(DicomError):
    """A slice of a series could not be read or decoded; the message names the file."""


class AssemblyError(DicomError):
    """A study cannot be assembled: a phase is missing, or an override names a bad series."""
