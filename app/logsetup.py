"""Logging bootstrap: one rotating log file in the per-user log directory, optional stderr.

Called once by the CLI / GUI entry (STYLE.md 9). Library code only uses ``logging.getLogger``.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys

_configured = False


def setup_logging(verbose: bool = False, console: bool = True) -> None:
    """Configure the root logger (idempotent)."""
    global _configured
    if _configured:
        return
    _configured = True
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
    try:
        from app.paths import log_dir

        fh = logging.handlers.RotatingFileHandler(
            log_dir() / "hcc-response.log", maxBytes=5_000_000, backupCount=3, encoding="utf-8"
        )
        fh.setFormatter(fmt)
        fh.setLevel(logging.DEBUG)
        root.addHandler(fh)
    except OSError:
        # A read-only home must not stop the program; we still log to stderr below.
        console = True
    if console:
        sh = logging.StreamHandler(sys.stderr)
        sh.setLevel(logging.DEBUG if verbose else logging.WARNING)
        sh.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        root.addHandler(sh)
    for noisy in ("PIL", "matplotlib", "pydicom"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
