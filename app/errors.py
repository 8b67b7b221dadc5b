"""Typed exceptions shared by every layer.

The core raises these; only the UI and the CLI decide how to show them. ``exit_code`` is the
command-line contract of DESIGN.md: 2 for bad or refused input, 1 for internal errors.
Packages derive their own specific errors from these bases (``app.dicom.errors`` etc.).
"""

from __future__ import annotations


class HCCError(Exception):
    """Base of every error the application raises on purpose.

    Parameters
    ----------
    message:
        One line a user can act on ("series 3 has a gap of 10.0 mm at z = -120.0 mm").
    details:
        Optional longer text for a "details" section of an error dialog or a log.
    """

    exit_code: int = 1

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class InputError(HCCError):
    """The input (a folder, a file, an argument) is bad or outside the intended use."""

    exit_code = 2


class Cancelled(HCCError):
    """The user cancelled a long job; nothing partial was kept."""

    exit_code = 2

    def __init__(self, message: str = "cancelled by the user") -> None:
        super().__init__(message)


class NotAvailable(InputError):
    """A feature that is not built (yet) or not available in this installation."""


#: Exceptions that stop the program on purpose (the user interrupted, the interpreter exits):
#: never turned into an error message.
STOPPING: tuple[type[BaseException], ...] = (KeyboardInterrupt, SystemExit, GeneratorExit)


def is_crash(exc: BaseException) -> bool:
    """True for any failure that is not the program being stopped on purpose.

    Not only ``Exception``: a compiled decoder can raise a ``BaseException`` subclass — pyo3's
    ``PanicException`` (a Rust panic in pylibjpeg-rle, found by ``bench/fuzz_dicom.py`` on a
    corrupt RLE frame) derives from ``BaseException`` and went past ``except Exception`` to a
    traceback. Catch ``BaseException`` and re-raise unless this is true."""
    return not isinstance(exc, STOPPING)


def cut_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how many were cut (a decoder's or a
    library's message may quote whole buffers; a log line or an error must stay readable)."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} chars cut)"


def one_line(text: str, limit: int = 300) -> str:
    """``text`` as one line of at most ``limit`` characters (see :func:`cut_text`)."""
    return cut_text(" ".join(text.split()), limit)
