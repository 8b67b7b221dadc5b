"""``hcc-response pacs echo|find|retrieve|store``: the DICOM network link, headless.

Uses the node configured in the settings file (Settings → DICOM network in the app); with the
link off, every subcommand refuses with exit status 2 and says how to turn it on. The same
functions as the app's PACS dialog and "Send result to PACS".
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app.commands._common import TerminalProgress, print_json, say


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node", default=None, help="node name (default: the first configured)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("echo", help="C-ECHO: is the node there and does it accept us?")
    find = sub.add_parser("find", help="C-FIND studies")
    find.add_argument("--patient-id", default="")
    find.add_argument("--patient-name", default="", help="DICOM wildcards: DOE^J*")
    find.add_argument("--date", default="", help="YYYYMMDD or YYYYMMDD-YYYYMMDD")
    get = sub.add_parser("retrieve", help="retrieve a study (all or nothing) into a folder")
    get.add_argument("study_uid")
    get.add_argument("--to", type=Path, required=True, metavar="DIR", help="import folder")
    get.add_argument("--quiet", action="store_true", help="no progress bar")
    store = sub.add_parser("store", help="C-STORE DICOM files (e.g. predict --dicom-out's)")
    store.add_argument("files", nargs="+", type=Path)


def run(args: argparse.Namespace) -> int:
    from app.dicomnet.errors import NetworkDisabled
    from app.dicomnet.link import DicomLink
    from app.settings import load_settings

    net = load_settings().dicom_network
    if not net.enabled or not net.nodes:
        raise NetworkDisabled("the DICOM network link is off or no node is configured; set it "
                              "up in the app under Settings → DICOM network")
    link = DicomLink(net, net.node(args.node))
    if args.action == "echo":
        echo = link.echo()
        doc: object = echo
        text = f"{echo.node} answered in {echo.round_trip_ms:.0f} ms"
    elif args.action == "find":
        studies = link.find_studies(patient_id=args.patient_id, patient_name=args.patient_name,
                                    study_date=args.date)
        doc = studies
        text = "\n".join(f"{s.study_uid}  {s.patient_id}  {s.patient_name}  {s.study_date}  "
                         f"{'/'.join(s.modalities)}  {s.n_instances} images  {s.study_description}"
                         for s in studies) or "no study matches"
    elif args.action == "retrieve":
        from app.dicomnet.retrieve import retrieve_study

        progress = TerminalProgress("retrieve", enabled=not args.quiet)
        got = retrieve_study(link, args.study_uid, args.to, progress)
        doc = got
        text = f"{got.n_files} files retrieved into {got.folder} ({got.method}, {got.seconds:.1f} s)"
    else:
        from app.dicomnet.store import store_files

        stored = store_files(link, args.files)
        doc = stored
        text = f"{len(stored.stored)} object(s) stored on {stored.node}"
    if args.json:
        print_json(doc)
    else:
        say(text)
    return 0
