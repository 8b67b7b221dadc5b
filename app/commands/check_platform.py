"""``python -m app.commands.check_platform``: run.sh's check, before Qt starts, that the X11
platform plugin's libraries are there; prints the packages to install and exits 2 when not.

The check itself is :mod:`app.platform_check` (no printing there); this is its command-line
face, so that ``run.sh`` can refuse with a clear message instead of Qt's bare abort.
"""

from __future__ import annotations

from app.commands._common import say
from app.platform_check import check


def main() -> int:
    report = check()
    if report.ok:
        return 0
    say(report.message(), err=True)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
