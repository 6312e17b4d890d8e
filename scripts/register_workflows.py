"""Register the task definitions, then the workflows, with the Conductor server.

Re-running updates them. Exits non-zero naming the definition and the server's reason
when one is rejected, or the server when it cannot be reached.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batchcore import settings  # noqa: E402

DEFS = ROOT / "workflow_defs"


class RegistrationError(RuntimeError):
    """The server refused a definition or could not be reached."""


def _reason(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500] or resp.reason
    parts = [str(body.get("message", ""))]
    parts += [
        f"{e.get('path', '')}: {e.get('message', '')}" for e in body.get("validationErrors") or []
    ]
    return "; ".join(p for p in parts if p)


def _send(session: requests.Session, method: str, url: str, body, what: str) -> requests.Response:
    try:
        resp = session.request(method, url, json=body, timeout=30)
    except requests.RequestException as exc:
        raise RegistrationError(f"Conductor server at {url} unreachable: {exc}") from exc
    return resp


def load(kind: str, defs: Path = DEFS) -> list[dict]:
    """The hand-written definitions of one kind ('tasks' or 'workflows')."""
    return [json.loads(p.read_text()) for p in sorted((defs / kind).glob("*.json"))]


def register_task(session: requests.Session, base: str, task: dict) -> str:
    """Create the task definition, or update it when it exists."""
    name = task["name"]
    existing = _send(session, "GET", f"{base}/metadata/taskdefs/{name}", None, name)
    if existing.status_code == 200 and existing.content:
        resp = _send(session, "PUT", f"{base}/metadata/taskdefs", task, name)
        verb = "updated"
    else:
        resp = _send(session, "POST", f"{base}/metadata/taskdefs", [task], name)
        verb = "created"
    if resp.status_code >= 300:
        raise RegistrationError(
            f"task definition {name!r} rejected (HTTP {resp.status_code}): {_reason(resp)}"
        )
    return verb


def register_workflow(session: requests.Session, base: str, wf: dict) -> None:
    """Create or update one workflow definition (PUT takes a list and upserts)."""
    label = f"{wf['name']} v{wf.get('version', 1)}"
    resp = _send(session, "PUT", f"{base}/metadata/workflow", [wf], label)
    if resp.status_code >= 300:
        raise RegistrationError(
            f"workflow definition {label!r} rejected (HTTP {resp.status_code}): {_reason(resp)}"
        )


def register_all(base: str, defs: Path = DEFS) -> list[str]:
    """Task definitions first (a workflow naming an unknown task is refused), then workflows."""
    done = []
    with requests.Session() as session:
        for task in load("tasks", defs):
            done.append(f"task {task['name']}: {register_task(session, base, task)}")
        for wf in load("workflows", defs):
            register_workflow(session, base, wf)
            done.append(f"workflow {wf['name']} v{wf.get('version', 1)}: registered")
    return done


def main() -> int:
    try:
        base = settings.load().conductor_server_url
        for line in register_all(base):
            print(f"register: {line}")
    except (settings.SettingsError, RegistrationError) as exc:
        print(f"register: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
