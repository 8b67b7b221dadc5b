"""`hcc-response evaluate` — not built yet (see the open issues)."""

from __future__ import annotations

import argparse

from app.errors import NotAvailable


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    raise NotAvailable("the 'evaluate' command is not available in this version yet")
