"""``hcc-response gui [FOLDER]`` — start the desktop application."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", nargs="?", type=Path, help="DICOM folder to import at start")
    parser.add_argument(
        "--no-demo",
        action="store_true",
        help="do not offer the demo study when started without data",
    )
    parser.add_argument(
        "--exit-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help=argparse.SUPPRESS,  # smoke tests / start-up timing: quit after the window shows
    )
    parser.add_argument("--screenshot", type=Path, default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from app.ui.application import run_gui

    return run_gui(
        folder=args.folder,
        offer_demo=not args.no_demo,
        exit_after=args.exit_after,
        screenshot=args.screenshot,
    )
