"""Command-line entry point (``hcc-response`` / ``python -m app``).

Each sub-command lives in its own module under :mod:`app.commands` exposing
``add_parser(subparsers)`` and ``run(args) -> int``; heavy imports (torch, Qt) happen inside
``run`` so that ``--help`` and ``--version`` stay instant.

Exit status (DESIGN.md): 0 success; 2 bad or refused input (one line on stderr, no traceback);
1 internal error (one line on stderr, the traceback goes to the log file).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from app import __version__
from app.errors import HCCError, is_crash

#: (command, module under app.commands, one-line help) in the order shown by --help.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("gui", "gui", "start the desktop app, optionally importing FOLDER"),
    ("scan", "scan", "scan a DICOM folder and print the study/series/phase report"),
    ("predict", "predict", "the whole flow headless: scan, assemble, predict, explain, record"),
    ("demo-data", "demo_data", "write a synthetic multiphase liver CT cohort with labels.csv"),
    ("train", "train", "train a model on a labelled cohort"),
    ("evaluate", "evaluate", "evaluate models on a labelled cohort"),
    ("fit-patient-head", "fit_head", "give a trained lesion-head model a patient-level head"),
    ("register", "register", "list, show, export, back up and verify the case register"),
    ("pacs", "pacs", "the optional DICOM network link: echo, find, retrieve, store (off by default)"),
    ("self-test", "self_test", "offline end-to-end check of this installation"),
)

log = logging.getLogger("app.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hcc-response",
        description=(
            "HCC Response: predicts response to lenvatinib + immune checkpoint inhibitors in "
            "unresectable HCC from pre-treatment multiphase liver CT. Offline; research use."
        ),
    )
    parser.add_argument("--version", action="version", version=f"hcc-response {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in COMMANDS:
        mod = importlib.import_module(f"app.commands.{module}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_parser(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (also used by ``python -m app``)."""
    from app.logsetup import setup_logging

    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.command is None:
        # No sub-command: the desktop app, as a double-click on the launcher would do.
        args = parser.parse_args(["gui", *(list(argv) if argv else [])])
    setup_logging(verbose=args.verbose, console=args.command != "gui")
    # The offline guarantee (RELIABILITY.md 25) holds for every command, the GUI included.
    from app.offline import forbid_network

    forbid_network()
    # predictions that could not be recorded earlier are recorded now where possible
    from app import paths

    if paths.has_pending_records():
        from app.register.pending import replay_at_start

        replay_at_start(lambda text: print(f"hcc-response: {text}", file=sys.stderr))
    from app.commands._common import json_error, reset_json_state

    reset_json_state()
    want_json = bool(getattr(args, "json", False))
    try:
        return int(args._module.run(args) or 0)
    except HCCError as exc:
        log.info("%s: %s", type(exc).__name__, exc.message, exc_info=exc.exit_code == 1)
        print(f"hcc-response {args.command}: {exc.message}", file=sys.stderr)
        if want_json:
            json_error(exc, exc.message, exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print(f"hcc-response {args.command}: interrupted", file=sys.stderr)
        if want_json:
            json_error(exc, "interrupted", 2)
        return 2
    except BrokenPipeError:
        return 0
    except BaseException as exc:  # the last line of defence: log the traceback, show one line
        if not is_crash(exc):
            raise
        log.exception("internal error in %s", args.command)
        message = f"internal error: {type(exc).__name__}: {exc} (details in the log file)"
        print(f"hcc-response {args.command}: {message}", file=sys.stderr)
        if want_json:
            json_error(exc, message, 1)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
