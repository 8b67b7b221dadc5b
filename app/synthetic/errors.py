"""Errors of the synthetic generator."""

from __future__ import annotations

from app.errors import HCCError, InputError


class SyntheticInputError(InputError):
    """A refused request: bad option value, output folder that must not be overwritten."""


class SyntheticError(HCCError):
    """Writing a synthetic study failed for a reason that is not the user's input."""
