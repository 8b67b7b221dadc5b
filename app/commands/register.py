"""`hcc-response register` — list, show, record outcomes, export, back up, verify, statistics.

::

    hcc-response register [--register DB] list [--search S] [--model M] [--outcome F] ...
    hcc-response register show ID
    hcc-response register outcome ID CATEGORY [--date D] [--by NAME] [--note TEXT]
    hcc-response register export CSV [--pseudonymise] [--key-file F]
    hcc-response register export-images ID FOLDER --deidentify
    hcc-response register backup FILE
    hcc-response register backup --scheduled [--force]
    hcc-response register pending
    hcc-response register verify
    hcc-response register stats

``--register``, ``--read-only`` and ``--json`` may be given before or after the action. Exit
status: 0 success, 2 bad input (unknown case, bad category, refused or damaged register), 1 when
``verify`` finds a problem.

``list``, ``show``, ``verify`` and ``stats`` only read: they open the register read-only, so
they work on an archive copy on read-only media and on a full disk, and can never change it.
``export`` and ``backup`` record an audit event in the same step that makes their file appear
(a failure writes nothing); ``--read-only`` runs them on a register that cannot be written, at
the price of no event.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from app.commands._common import print_json, say


def _common(p: argparse.ArgumentParser, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    p.add_argument("--register", metavar="DB", type=Path, default=default,
                   help="register file (default: the one in the per-user data directory)")
    p.add_argument("--json", action="store_true",
                   default=argparse.SUPPRESS if suppress else False,
                   help="print one JSON document on stdout")
    p.add_argument("--read-only", action="store_true",
                   default=argparse.SUPPRESS if suppress else False,
                   help="open the register read-only (an archive copy); export and backup are "
                        "then not recorded in its audit trail")


def add_parser(parser: argparse.ArgumentParser) -> None:
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="list cases (newest first)")
    _common(p, suppress=True)
    p.add_argument("--search", default="", help="words to find in patient ID, name, accession")
    p.add_argument("--model", default=None, help="only this model name")
    p.add_argument("--model-version", default=None, help="only this model version")
    p.add_argument("--outcome", default="any",
                   help="any | with | without | responder | non-responder | CR | PR | SD | PD")
    p.add_argument("--sort", default="created_at", help="created_at | id | patient_id | "
                   "patient_name | study_date | label | score | votes | model | outcome")
    p.add_argument("--ascending", action="store_true", help="sort ascending")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)

    p = sub.add_parser("show", help="everything recorded about one case")
    _common(p, suppress=True)
    p.add_argument("id", type=int)

    p = sub.add_parser("outcome", help="record (or correct) the RECIST outcome of a case")
    _common(p, suppress=True)
    p.add_argument("id", type=int)
    p.add_argument("category", help="CR, PR, SD or PD")
    p.add_argument("--date", default=None, help="assessment date YYYY-MM-DD (default today)")
    p.add_argument("--by", default=None, help="who enters it (default: the OS login)")
    p.add_argument("--note", default="", help="free-text note")

    p = sub.add_parser("export", help="export every case to CSV")
    _common(p, suppress=True)
    p.add_argument("csv", type=Path)
    p.add_argument("--pseudonymise", "--pseudonymize", action="store_true",
                   help="keyed hash instead of patient ID, no names, shifted dates")
    p.add_argument("--key-file", type=Path, default=None,
                   help="file with the pseudonymisation key (default: the register's own)")

    p = sub.add_parser("export-images", help="write a case's three phases as de-identified "
                       "DICOM (PS3.15 basic profile) into a new folder")
    _common(p, suppress=True)
    p.add_argument("id", type=int, help="case id")
    p.add_argument("folder", type=Path, help="new folder for the images")
    p.add_argument("--deidentify", action="store_true", required=True,
                   help="required: images leave this computer de-identified only")

    p = sub.add_parser("backup", help="copy the register with SQLite's backup API")
    _common(p, suppress=True)
    p.add_argument("file", type=Path, nargs="?",
                   help="the new backup file (not with --scheduled)")
    p.add_argument("--scheduled", action="store_true",
                   help="the desktop app's automatic backup, for a task scheduler: into the "
                        "settings' backup folder when the last one is older than the interval, "
                        "the oldest beyond the number to keep removed")
    p.add_argument("--force", action="store_true", help="with --scheduled: back up even when not due")

    p = sub.add_parser("pending", help="predictions waiting to be recorded (kept when the "
                       "register could not take them), with the reason")
    _common(p, suppress=True)

    p = sub.add_parser("verify", help="check database integrity and the audit chain")
    _common(p, suppress=True)
    p.add_argument("--head", default=None, metavar="HASH",
                   help="a chain head printed by an earlier verify; it must still be there")

    p = sub.add_parser("stats", help="counts and local performance per model version")
    _common(p, suppress=True)


_VERB = {"export": "export it", "backup": "back it up", "export-images": "export them"}
#: Actions that only read: always opened read-only (nothing can be written, nothing upgraded).
READ_ACTIONS = frozenset({"list", "show", "verify", "stats"})


def _open(args: argparse.Namespace) -> Any:
    from app import paths
    from app.register import RegisterReadOnlyError, open_register

    path = args.register if args.register is not None else paths.default_register_path()
    if args.read_only or (args.action in READ_ACTIONS and Path(path).expanduser().is_file()):
        try:
            return open_register(path, read_only=True)
        except RegisterReadOnlyError:
            if args.read_only:
                raise
            # an older register: upgrading it (with its backup) needs the writable open below
    try:
        return open_register(path)
    except RegisterReadOnlyError as exc:
        if args.action in _VERB:
            raise RegisterReadOnlyError(
                f"{exc.message}. To {_VERB[args.action]} anyway without an audit event, add "
                f"--read-only", details=exc.details) from exc
        raise


def run(args: argparse.Namespace) -> int:
    if args.action == "pending":  # the pending file, not a register
        return _pending(args)
    if args.action == "backup":
        _check_backup_arguments(args)
    # A register named on the command line must exist: a typo would otherwise create a new,
    # empty register and "list" would answer "no cases" with exit 0.
    if args.register is not None and not Path(args.register).expanduser().is_file():
        from app.errors import InputError

        raise InputError(f"no case register at {args.register} (check the path; the app "
                         "creates its own register in the per-user data directory)")
    with _open(args) as reg:
        handler = _HANDLERS[args.action]
        return handler(reg, args)


# ------------------------------------------------------------------------------------------------


def _list(reg: Any, args: argparse.Namespace) -> int:
    rows = reg.list_cases(search=args.search, model=args.model, outcome=args.outcome,
                          sort=args.sort, descending=not args.ascending, limit=args.limit,
                          offset=args.offset, model_version=args.model_version)
    total = reg.count_cases(search=args.search, model=args.model, outcome=args.outcome,
                            model_version=args.model_version)
    from app.register.display import unshown_predictions, unshown_text

    unshown = unshown_predictions(reg)  # recorded by the app, never shown (issue 14, item 9)
    if args.json:
        print_json({"register": str(reg.path), "total": total, "offset": args.offset,
                    "cases": [dict(dataclasses.asdict(r), vote_split=r.vote_split,
                                   shown=r.id not in unshown) for r in rows],
                    "never_shown": unshown})
        return 0
    out = sys.stdout
    out.write(f"{'id':>6}  {'recorded (UTC)':<16}  {'patient ID':<14} {'name':<20} "
              f"{'study':<10}  {'prediction':<13} {'score':>5} {'votes':>7}  "
              f"{'model':<18} outcome\n")
    for r in rows:
        mark = "!" if r.id in unshown else " "
        out.write(f"{mark}{r.id:>5}  {r.created_at:%Y-%m-%d %H:%M}  {r.patient_id[:14]:<14} "
                  f"{r.patient_name[:20]:<20} {r.study_date:<10}  {r.label:<13} "
                  f"{r.score:5.2f} {r.vote_split:>7}  "
                  f"{(r.model_name + ' ' + r.model_version)[:18]:<18} {r.outcome or '-'}\n")
    out.write(f"{len(rows)} of {total} case(s) shown; register {reg.path}\n")
    if unshown:
        out.write(f"! {unshown_text(unshown)}\n")
    return 0


def _show(reg: Any, args: argparse.Namespace) -> int:
    d = reg.get_prediction(args.id)
    if args.json:
        print_json({"id": d.id, "record": d.record, "outcomes": d.outcomes,
                    "events": d.events})
        return 0
    r = d.record
    lines = [
        f"case {d.id}   recorded {r.created_at:%Y-%m-%d %H:%M:%S} UTC by {r.os_user or '?'}",
        f"patient     {r.patient_id}  {r.patient_name}  born {r.birth_date or '?'}  "
        f"sex {r.sex or '?'}",
        f"study       {r.study_uid}  date {r.study_date or '?'}  accession {r.accession or '-'}"
        f"  {r.study_description}",
        f"prediction  {r.label}  score {r.score:.3f}{_score_rule(r.decided_by)}  votes "
        f"{r.responder_votes}/{r.total_votes}" + (f"  (tie: {r.tie_rule})" if r.tie else ""),
        f"model       {r.model_name} {r.model_version}  sha256 {r.model_sha256}  "
        f"{r.weights_kind}  on {r.device or '?'}",
        f"software    HCC Response {r.app_version}; run time "
        + (f"{r.run_time_s:.1f} s" if r.run_time_s is not None else "?"),
        f"source      {r.source_folder or '?'}",
    ]
    for phase, uid in r.series_uids.items():
        rng = r.liver_range_mm.get(phase)
        extra = f"  liver {rng[0]:.1f}..{rng[1]:.1f} mm" if rng else ""
        lines.append(f"  {phase:<9} {uid}{extra}")
    if r.overrides:
        lines.append(f"overrides   {r.overrides}")
    for w in r.warnings:
        lines.append(f"warning     {w}")
    if d.outcomes:
        for o in d.outcomes:
            tag = "current" if o is d.outcomes[-1] else "corrected"
            lines.append(f"outcome     {o.category} on {o.outcome_date or '?'} entered by "
                         f"{o.entered_by or '?'} at {o.entered_at:%Y-%m-%d %H:%M} ({tag})")
    else:
        lines.append("outcome     none entered yet")
    from app.register.display import unshown_predictions

    if d.id in unshown_predictions(reg):
        lines.append("shown       NEVER: recorded by the app, which ended before showing it")
    lines.append(f"slices      {len(r.slice_results)} (per-slice results kept; --json shows them)")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _score_rule(decided_by: str) -> str:
    """`` (patient-level model on the tumour's measures)``: how the score was made, or nothing
    for a case recorded before the register kept it."""
    from app.inference.config import probability_words

    how = probability_words(decided_by)
    return f" ({how})" if how else ""


def _outcome(reg: Any, args: argparse.Namespace) -> int:
    entry = reg.record_outcome(args.id, args.category, args.date, entered_by=args.by,
                               note=args.note)
    if args.json:
        print_json(entry)
    else:
        corr = f" (corrects outcome {entry.supersedes})" if entry.supersedes else ""
        say(f"case {entry.prediction_id}: {entry.category} on {entry.outcome_date} recorded"
              f"{corr}")
    return 0


def _export(reg: Any, args: argparse.Namespace) -> int:
    from app.errors import InputError

    key = None
    if args.key_file is not None:
        if not args.pseudonymise:
            raise InputError("--key-file only makes sense with --pseudonymise")
        try:
            key = args.key_file.read_bytes().strip()
        except OSError as exc:
            raise InputError(f"cannot read the key file {args.key_file}: {exc.strerror}") from exc
    summary = reg.export_csv(args.csv, pseudonymise=args.pseudonymise, key=key)
    if args.json:
        print_json(summary)
    else:
        kind = "pseudonymised " if summary.pseudonymised else ""
        say(f"wrote {summary.rows} case(s) to {summary.path} ({kind}CSV)")
    return 0


def _pending(args: argparse.Namespace) -> int:
    from app.register.pending import pending_entries, pending_file

    entries = pending_entries()
    if args.json:
        print_json({"file": pending_file(), "pending": [
            {"id": e.id, "register": e.register or "(default)", "reason": e.reason,
             "kept_at": e.kept_at, "attempts": e.attempts, "patient_id": e.record.patient_id,
             "study_uid": e.record.study_uid, "label": e.record.label}
            for e in entries]})
        return 0
    if not entries:
        say("no prediction is waiting to be recorded")
        return 0
    for e in entries:
        say(f"{e.id}  kept {e.kept_at[:16]}  patient {e.record.patient_id}  study "
            f"{e.record.study_uid}  {e.record.label}  → {e.register or '(default register)'}")
        say(f"      {e.attempts} attempt(s); last reason: {e.reason}")
    say(f"{len(entries)} prediction(s) in {pending_file()}; they are recorded at the next start "
        f"once the register can take them")
    return 0


def _export_images(reg: Any, args: argparse.Namespace) -> int:
    summary = reg.export_images(args.id, args.folder, deidentify=args.deidentify)
    if args.json:
        print_json(summary)
    else:
        per_phase = ", ".join(f"{phase} {n}" for phase, n in summary.files.items())
        say(f"case {summary.case_id}: de-identified images written to {summary.path} "
            f"({per_phase} files; patient pseudonym {summary.patient_key})")
    return 0


def _check_backup_arguments(args: argparse.Namespace) -> None:
    """A FILE or --scheduled, not both; --scheduled backs up the register the app uses, with
    the settings' policy (``args.policy``), checked before the register is opened."""
    from app.errors import InputError

    if args.scheduled == (args.file is not None):
        raise InputError("register backup needs a FILE, or --scheduled for the automatic backup "
                         "into the settings' backup folder (not both)")
    if args.force and not args.scheduled:
        raise InputError("--force goes with --scheduled")
    if not args.scheduled:
        return
    from app import paths
    from app.settings import load_settings

    settings = load_settings()
    args.policy = settings.register_backup
    if args.register is None:
        configured = settings.register_path
        args.register = Path(configured) if configured else paths.default_register_path()
        if not args.register.expanduser().is_file():  # never a new, empty register to back up
            raise InputError(f"no case register at {args.register}: nothing to back up yet")
    if not args.policy.enabled and not args.force:
        raise InputError("automatic register backups are turned off in the settings; add "
                         "--force to make one anyway")


def _backup(reg: Any, args: argparse.Namespace) -> int:
    if args.scheduled:
        from app.register.autobackup import run_scheduled_backup

        outcome = run_scheduled_backup(reg, args.policy, force=args.force)
        if args.json:
            print_json({"backup": outcome.path, "pruned": outcome.pruned, "message": outcome.message})
        else:
            say(outcome.message)
        return 0
    dest = reg.backup(args.file)
    if args.json:
        print_json({"backup": dest})
    else:
        say(f"register backed up to {dest}")
    return 0


def _verify(reg: Any, args: argparse.Namespace) -> int:
    report = reg.verify(expected_head=args.head)
    if args.json:
        print_json(report)
    elif report.ok:
        say(f"register OK: integrity ok, {report.n_events} audit events chained, "
              f"{report.n_predictions} case(s) and {report.n_outcomes} outcome(s) match "
              f"their events")
        if report.last_hash:
            say(f"chain head {report.last_hash} (keep it: a later verify can check the "
                  f"chain still leads to it)")
    else:
        say(f"register FAILED verification ({len(report.problems)} problem(s)):")
        for p in report.problems:
            say(f"  - {p}")
    return 0 if report.ok else 1


def _fmt(x: float | None, ci: tuple[float, float] | None = None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")


def _stats(reg: Any, args: argparse.Namespace) -> int:
    counts = reg.stats()
    perf = reg.performance()
    if args.json:
        print_json({"register": str(reg.path), "counts": counts, "performance": perf})
        return 0
    say(f"register {reg.path}")
    say("  " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()))
    if not perf:
        say("no outcomes recorded yet: local performance needs RECIST outcomes")
        return 0
    for row in perf:
        ref = row.reference
        say(f"\nmodel {row.model_name} {row.model_version}: n = {row.n} "
              f"({row.n_responders} responders)")
        say(f"  {'':<12} {'this site':<22} paper ({ref.model}, n = {ref.n})")
        say(f"  {'AUC':<12} {_fmt(row.auc, row.auc_ci):<22} {_fmt(ref.auc, ref.auc_ci)}")
        say(f"  {'sensitivity':<12} {_fmt(row.sensitivity, row.sensitivity_ci):<22} "
              f"{ref.sensitivity:.3f}")
        say(f"  {'specificity':<12} {_fmt(row.specificity, row.specificity_ci):<22} "
              f"{ref.specificity:.3f}")
        say(f"  {'accuracy':<12} {_fmt(row.accuracy, row.accuracy_ci):<22} "
              f"{ref.accuracy:.3f}")
    return 0


_HANDLERS = {"list": _list, "show": _show, "outcome": _outcome, "export": _export,
             "export-images": _export_images,
             "backup": _backup, "verify": _verify, "stats": _stats}
