"""What `make demo` prints once its run has ended: the run, its history, its output, next steps."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

from batchcore.runs.model import PUBLIC_FIELDS
from stack import config

RUNS_PATH = "/api/v1/pipeline-runs"
MANIFEST_NAME = "_manifest.json"
SUCCESS_NAME = "_SUCCESS"
MANIFEST_MAX_LINES = 30


def local_dir(uri: str) -> Path | None:
    """The local directory of a file:// URI, or None for another scheme."""
    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parts.path))


# ------------------------------------------------------------------------------ HTTP


def clip(text: str, width: int) -> str:
    """Text cut to width characters, marked with an ellipsis when cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def history_table(history: list[dict[str, Any]], message_width: int = 60) -> list[str]:
    """The audit trail as aligned rows: at, previous → status, source, message."""
    rows = [("at", "transition", "source", "message")]
    for event in history:
        previous = event.get("previous_status") or "(new)"
        rows.append(
            (
                str(event.get("at") or ""),
                f"{previous} → {event.get('status')}",
                str(event.get("source") or ""),
                clip(str(event.get("message") or ""), message_width),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [
        f"  {row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}".rstrip()
        for row in rows
    ]


def show_run(run: dict[str, Any], out: TextIO | None = None) -> None:
    """Print the run's fields that have a value, and its history table."""
    out = out if out is not None else sys.stdout
    print("\nThe run:", file=out)
    shown = [name for name in PUBLIC_FIELDS if run.get(name) not in (None, "")]
    width = max((len(name) for name in shown), default=0)
    for name in shown:
        value = run[name]
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
        print(f"  {name:<{width}}  {text}", file=out)
    history = run.get("history") or []
    print(f"\nIts history ({len(history)} events, oldest first):", file=out)
    for line in history_table(history):
        print(line, file=out)


def show_output(output_uri: str, out: TextIO | None = None) -> None:
    """List what the job wrote under the output prefix and pretty-print its manifest."""
    out = out if out is not None else sys.stdout
    print(f"\nWhat the job wrote under {output_uri}:", file=out)
    output_dir = local_dir(output_uri)
    if output_dir is None:
        print("  (not a local file:// prefix; nothing to list here)", file=out)
        return
    if not output_dir.is_dir():
        print(f"  nothing: {output_dir} does not exist", file=out)
        return
    files = sorted(p for p in output_dir.rglob("*") if p.is_file())
    if not files:
        print(f"  nothing: {output_dir} is empty", file=out)
    for path in files:
        print(f"  {path.stat().st_size:>8} B  {path.relative_to(output_dir).as_posix()}", file=out)
    if not (output_dir / SUCCESS_NAME).exists():
        print(f"  (no {SUCCESS_NAME} marker: the job did not report success here)", file=out)
    manifest = output_dir / MANIFEST_NAME
    if not manifest.is_file():
        return
    try:
        text = json.dumps(json.loads(manifest.read_text(encoding="utf-8")), indent=2)
    except (OSError, ValueError) as exc:
        print(f"  cannot read {manifest}: {exc}", file=out)
        return
    lines = text.splitlines()
    print(f"\n{MANIFEST_NAME}:", file=out)
    for line in lines[:MANIFEST_MAX_LINES]:
        print(f"  {line}", file=out)
    if len(lines) > MANIFEST_MAX_LINES:
        print(f"  … {len(lines) - MANIFEST_MAX_LINES} more lines in {manifest}", file=out)


def show_next_steps(env: dict[str, str], run: dict[str, Any], out: TextIO | None = None) -> None:
    """Print where the stack's endpoints are and how to go on from here."""
    out = out if out is not None else sys.stdout
    gateway, token = env["GATEWAY_URL"].rstrip("/"), env["GATEWAY_API_TOKEN"]
    conductor = env["CONDUCTOR_SERVER_URL"].rstrip("/")
    auth = f'-H "Authorization: Bearer {token}"'
    env_file = Path(env.get("STACK_DIR") or config.STACK_DIR) / "stack.env"
    lines = [
        "",
        "How to go on (the stack is left running):",
        f"  gateway        {gateway}   (OpenAPI at {gateway}/openapi.json)",
        f"  dev token      {token}",
        f"  list runs      curl -s {auth} '{gateway}{RUNS_PATH}?limit=5'",
        f"  this run       curl -s {auth} '{gateway}{RUNS_PATH}/{run.get('id')}'",
        f"  Conductor API  {conductor}",
    ]
    if workflow_id := run.get("conductor_workflow_id"):
        lines.append(f"  its workflow   curl -s '{conductor}/workflow/{workflow_id}'")
    lines += [
        "  Conductor UI   not bundled with the Maven jar this stack runs;",
        "                 the compose stack has it (`docker compose up`, then",
        "                 http://127.0.0.1:8127 unless CONDUCTOR_UI_PORT says otherwise)",
        f"  all endpoints  set -a && . {env_file} && set +a",
        "  make status    each process and whether it is ready",
        "  make logs      the last lines of every process's log",
        "  make down      stop the stack (only what `make up` started)",
    ]
    print("\n".join(lines), file=out)


def show_run_browser(env: dict[str, str], run: dict[str, Any], out: TextIO | None = None) -> None:
    """Print the run browser's page of this run and how to sign in to it."""
    out = out if out is not None else sys.stdout
    gateway, token = env["GATEWAY_URL"].rstrip("/"), env["GATEWAY_API_TOKEN"]
    print(f"\nThe run in the run browser: {gateway}/ui/runs/{run.get('id')}", file=out)
    print(f"  sign in with the dev token (GATEWAY_API_TOKEN): {token}", file=out)
