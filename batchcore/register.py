"""Register the Conductor task and workflow definitions, and report what changed.

`python -m batchcore.register` (or `batchcore-register`); scripts/register_workflows.py
runs the same. See --help.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import requests

from . import registration, settings
from .conductor import ConductorClient
from .notifications.loop import NOTIFIER_CORRELATION_ID, NOTIFIER_WORKFLOW
from .registration import CREATE, UNCHANGED, UPDATE, Change, RegistrationError
from .runs.workflow import POLLER_CORRELATION_ID, POLLER_WORKFLOW

DONE = {CREATE: "created", UPDATE: "updated", UNCHANGED: "unchanged"}
WOULD = {CREATE: "would be created", UPDATE: "would be updated", UNCHANGED: "unchanged"}
# The loops the poller worker service keeps alive: each keeps the definitions it started with.
LOOPS = ((POLLER_WORKFLOW, POLLER_CORRELATION_ID), (NOTIFIER_WORKFLOW, NOTIFIER_CORRELATION_ID))


def parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command line."""
    if prog is None:
        console_script = Path(sys.argv[0]).name == "batchcore-register"
        prog = "batchcore-register" if console_script else "python -m batchcore.register"
    p = argparse.ArgumentParser(
        prog=prog,
        description="Register the Conductor task definitions, then the workflow definitions, "
        "creating what is missing and updating what differs; definitions already as on the "
        "server are left alone. Every definition is checked locally first.",
        epilog="Exit status: 0 done, 1 a definition is invalid or was refused, or the server "
        "could not be reached, 2 a bad command line.",
    )
    p.add_argument(
        "--server",
        metavar="URL",
        help="the Conductor server's REST base, ending in /api (default: CONDUCTOR_SERVER_URL, "
        "else http://127.0.0.1:8080/api)",
    )
    p.add_argument(
        "--definitions",
        metavar="DIR",
        type=Path,
        help="a folder with tasks/*.json and workflows/*.json (default: the definitions "
        "shipped with the package, workflow_defs/ in a checkout)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check every definition and show what would change on the server; write nothing",
    )
    p.add_argument(
        "--replace-poller-loop",
        nargs="?",
        const="if-changed",
        choices=("if-changed", "always"),
        metavar="WHEN",
        help=f"terminate the running {POLLER_WORKFLOW} and {NOTIFIER_WORKFLOW} loops so that "
        "the poller worker service starts new ones on the registered definitions: 'if-changed' "
        "(the default when the flag is given without a value) each loop that runs on "
        "definitions other than these (a running workflow keeps those it started with), or "
        "'always'",
    )
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    cli = parser(prog)
    args = cli.parse_args(argv)
    if args.server:
        try:
            settings.load({"CONDUCTOR_SERVER_URL": args.server})
        except settings.SettingsError as exc:
            cli.error(f"--server {args.server!r}: {exc}")
    try:
        base = settings.load(
            {"CONDUCTOR_SERVER_URL": args.server or os.environ.get("CONDUCTOR_SERVER_URL", "")}
        ).conductor_server_url
        found = registration.definitions(args.definitions or registration.DEFINITIONS_DIR)
        with requests.Session() as session:
            server = registration.Server(base, session)
            changes = registration.plan(server, found)
            for change in changes:
                if not args.dry_run and change.action != UNCHANGED:
                    server.write(change)
                _say(_line(change, WOULD if args.dry_run else DONE))
        _say(_summary(changes, base, args.dry_run))
        for name, correlation_id in LOOPS:
            _replace_loop(base, found, name, correlation_id, args.replace_poller_loop, args.dry_run)
    except (settings.SettingsError, RegistrationError) as exc:
        print(f"register: {exc}", file=sys.stderr)
        return 1
    return 0


def _line(change: Change, verbs: dict[str, str]) -> str:
    fields = f" ({', '.join(change.fields)})" if change.fields else ""
    return f"{change.definition.label}: {verbs[change.action]}{fields}"


def _summary(changes: list[Change], base: str, dry_run: bool) -> str:
    count = {action: sum(c.action == action for c in changes) for action in DONE}
    if dry_run:
        return (
            f"dry run, nothing written to {base}: {count[CREATE]} to create, "
            f"{count[UPDATE]} to update, {count[UNCHANGED]} unchanged"
        )
    return (
        f"{count[CREATE]} created, {count[UPDATE]} updated, {count[UNCHANGED]} unchanged at {base}"
    )


def _replace_loop(
    base: str, found: list, name: str, correlation_id: str, when: str | None, dry_run: bool
) -> None:
    """Replace the running loop `name` when asked to, or say when it runs on old definitions."""
    conductor = ConductorClient(base)
    try:
        try:
            loops = registration.poller_loops(conductor, found, name, correlation_id)
        except RegistrationError as exc:
            if when is not None:
                raise
            print(f"register: could not check the {name} loop: {exc}", file=sys.stderr)
            return
        outdated = {loop_id: labels for loop_id, labels in loops.items() if labels}
        if when is None:
            for loop_id, labels in outdated.items():
                _say(
                    f"the running {name} loop {loop_id} runs on outdated "
                    f"{', '.join(labels)}: --replace-poller-loop replaces it"
                )
            return
        replace = loops if when == "always" else outdated
        if not loops:
            _say(f"no {name} loop is running: the poller worker service starts one")
        elif not replace:
            _say(f"the running {name} loop is up to date: it stays")
        for loop_id in replace:
            labels = outdated.get(loop_id)
            reason = "replaced by register: " + (
                f"it ran on outdated {', '.join(labels)}"
                if labels
                else "--replace-poller-loop=always"
            )
            if dry_run:
                _say(f"would terminate the {name} loop {loop_id} ({reason})")
                continue
            registration.terminate_poller_loops(conductor, [loop_id], reason)
            _say(
                f"terminated the {name} loop {loop_id} ({reason}); the poller "
                "worker service starts a new one at its next check"
            )
    finally:
        conductor.close()


def _say(line: str) -> None:
    print(f"register: {line}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
