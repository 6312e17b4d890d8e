"""The Conductor task and workflow definitions the package ships: check, compare, register.

Definitions live in workflow_defs/ (shipped as batchcore._workflow_defs). Task definitions
come first: Conductor refuses a workflow that names an unknown task.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from urllib.parse import quote

import requests

from .conductor import ConductorClient
from .errors import ConductorUnavailable
from .runs.workflow import LIVE, POLLER_CORRELATION_ID, POLLER_WORKFLOW

DEFINITIONS_DIR = files("batchcore._workflow_defs")
RETRY_LOGICS = {"FIXED", "EXPONENTIAL_BACKOFF", "LINEAR_BACKOFF"}
TIMEOUT_POLICIES = {"RETRY", "TIME_OUT_WF", "ALERT_ONLY"}

CREATE, UPDATE, UNCHANGED = "create", "update", "unchanged"


class RegistrationError(RuntimeError):
    """A definition is invalid, the server refused one, or it could not be reached."""


@dataclass(frozen=True)
class Definition:
    """One task or workflow definition, as its file has it."""

    kind: str  # "task" or "workflow"
    body: dict
    source: str  # the file it came from, for messages

    @property
    def name(self) -> str:
        return self.body["name"]

    @property
    def title(self) -> str:
        """The name, with the version for a workflow."""
        return f"{self.name} v{self.body['version']}" if self.kind == "workflow" else self.name

    @property
    def label(self) -> str:
        return f"{self.kind} {self.title}"


@dataclass(frozen=True)
class Change:
    """What registering one definition does to the server's copy."""

    definition: Definition
    action: str  # CREATE, UPDATE or UNCHANGED
    fields: tuple[str, ...] = ()  # top-level fields that differ, for UPDATE


def load(kind: str, defs: Traversable = DEFINITIONS_DIR) -> list[dict]:
    """The definitions of one kind ('tasks' or 'workflows'), parsed, in file-name order."""
    problems: list[str] = []
    found = _read(kind, defs, problems)
    if problems:
        raise RegistrationError("; ".join(problems))
    return [d.body for d in found]


def definitions(defs: Traversable = DEFINITIONS_DIR) -> list[Definition]:
    """Every definition, tasks first, checked locally; RegistrationError lists each problem."""
    problems: list[str] = []
    found = [*_read("tasks", defs, problems), *_read("workflows", defs, problems)]
    if not found and not problems:
        raise RegistrationError(f"no definitions found in {defs} (tasks/*.json, workflows/*.json)")
    problems += check(found)
    if problems:
        raise RegistrationError(
            f"{len(problems)} problem(s) in the definitions in {defs}:\n  " + "\n  ".join(problems)
        )
    return found


def _read(kind: str, defs: Traversable, problems: list[str]) -> list[Definition]:
    folder = defs / kind
    paths = sorted(
        (p for p in folder.iterdir() if p.name.endswith(".json")) if folder.is_dir() else [],
        key=lambda p: p.name,
    )
    found = []
    for path in paths:
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            problems.append(f"{kind}/{path.name}: not valid JSON: {exc}")
            continue
        found.append(Definition(kind.removesuffix("s"), body, f"{kind}/{path.name}"))
    return found


def check(found: list[Definition]) -> list[str]:
    """What Conductor would refuse, or what would break a run, found before any request."""
    problems: list[str] = []
    task_names = {
        d.body.get("name") for d in found if d.kind == "task" and isinstance(d.body, dict)
    }
    seen: set[tuple[str, object, object]] = set()
    for d in found:
        body = d.body
        if not _is_obj(body) or not isinstance(body.get("name"), str) or not body["name"]:
            problems.append(f"{d.source}: needs a non-empty string 'name'")
            continue
        key = (d.kind, body["name"], body.get("version"))
        if key in seen:
            problems.append(f"{d.source}: {d.kind} {body['name']} is defined twice")
        seen.add(key)
        if d.kind == "task":
            problems += [f"{d.source}: {p}" for p in _task_problems(body)]
        else:
            problems += [f"{d.source}: {p}" for p in _workflow_problems(body, task_names)]
    return problems


def _is_obj(value: object) -> bool:
    return isinstance(value, dict)


def _task_problems(task: dict) -> Iterator[str]:
    for field in ("retryCount", "retryDelaySeconds", "timeoutSeconds", "responseTimeoutSeconds"):
        value = task.get(field, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            yield f"{field} must be a whole number >= 0, not {value!r}"
    if task.get("retryLogic", "FIXED") not in RETRY_LOGICS:
        yield f"retryLogic {task['retryLogic']!r} is not one of {sorted(RETRY_LOGICS)}"
    if task.get("timeoutPolicy", "TIME_OUT_WF") not in TIMEOUT_POLICIES:
        yield f"timeoutPolicy {task['timeoutPolicy']!r} is not one of {sorted(TIMEOUT_POLICIES)}"
    timeout, response = task.get("timeoutSeconds"), task.get("responseTimeoutSeconds")
    if isinstance(timeout, int) and isinstance(response, int) and 0 < timeout < response:
        yield f"responseTimeoutSeconds ({response}) must not exceed timeoutSeconds ({timeout})"


def _workflow_problems(wf: dict, task_names: set) -> Iterator[str]:
    version = wf.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        yield f"version must be a whole number >= 1, not {version!r}"
    if wf.get("schemaVersion") != 2:
        yield "schemaVersion must be 2"
    if not isinstance(wf.get("tasks"), list) or not wf["tasks"]:
        yield "tasks must be a non-empty list"
        return
    references: set[str] = set()
    for where, task in _workflow_tasks(wf["tasks"], "tasks"):
        if not isinstance(task, dict):
            yield f"{where} is not an object"
            continue
        for field in ("name", "taskReferenceName", "type"):
            if not isinstance(task.get(field), str) or not task[field]:
                yield f"{where} needs a non-empty string {field!r}"
        ref = task.get("taskReferenceName")
        if isinstance(ref, str) and ref:
            if ref in references:
                yield f"{where}: taskReferenceName {ref!r} is used twice"
            references.add(ref)
        if task.get("type") == "SIMPLE" and task.get("name") not in task_names:
            yield f"{where}: SIMPLE task {task.get('name')!r} has no task definition in tasks/"


def _workflow_tasks(tasks: list, where: str) -> Iterator[tuple[str, object]]:
    """Every task of a workflow with where it sits, nested ones (loops, switches, forks) too."""
    for i, task in enumerate(tasks):
        here = f"{where}[{i}]"
        yield here, task
        if not isinstance(task, dict):
            continue
        for field in ("loopOver", "defaultCase"):
            if isinstance(task.get(field), list):
                yield from _workflow_tasks(task[field], f"{here}.{field}")
        for case, branch in (task.get("decisionCases") or {}).items():
            if isinstance(branch, list):
                yield from _workflow_tasks(branch, f"{here}.decisionCases.{case}")
        for j, branch in enumerate(task.get("forkTasks") or []):
            if isinstance(branch, list):
                yield from _workflow_tasks(branch, f"{here}.forkTasks[{j}]")


class Server:
    """The metadata API of one Conductor server (`base` ends in /api)."""

    def __init__(self, base: str, session: requests.Session, timeout: float = 30.0):
        self.base = base.rstrip("/")
        self.session = session
        self.timeout = timeout

    def stored(self, d: Definition) -> dict | None:
        """The server's copy of a definition, or None when it has none."""
        if d.kind == "task":
            path = f"/metadata/taskdefs/{quote(d.name, safe='')}"
            params = None
        else:
            path = f"/metadata/workflow/{quote(d.name, safe='')}"
            params = {"version": d.body["version"]}
        resp = self._send("GET", path, params=params)
        # Some releases answer a missing task definition with 200 and an empty body.
        if resp.status_code == 404 or (resp.status_code == 200 and not resp.content):
            return None
        if resp.status_code != 200:
            raise RegistrationError(
                f"could not read {d.label} from {self.base} (HTTP {resp.status_code}): "
                f"{_reason(resp)}"
            )
        try:
            return resp.json()
        except ValueError as exc:
            raise RegistrationError(
                f"{self.base} answered {d.label} with something other than JSON: "
                f"{resp.text[:200]!r}"
            ) from exc

    def write(self, change: Change) -> None:
        """Create or update the server's copy."""
        d = change.definition
        if d.kind == "workflow":  # PUT takes a list and creates or updates each
            resp = self._send("PUT", "/metadata/workflow", json=[d.body])
        elif change.action == CREATE:
            resp = self._send("POST", "/metadata/taskdefs", json=[d.body])
        else:
            resp = self._send("PUT", "/metadata/taskdefs", json=d.body)
        if resp.status_code >= 300:
            raise RegistrationError(
                f"{d.kind} definition '{d.title}' rejected "
                f"(HTTP {resp.status_code}): {_reason(resp)}"
            )

    def _send(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            return self.session.request(
                method, f"{self.base}{path}", timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise RegistrationError(
                f"Conductor server at {self.base} unreachable: {type(exc).__name__} "
                f"({method} {path})"
            ) from exc


def plan(server: Server, found: list[Definition]) -> list[Change]:
    """Compare each definition with the server's copy; nothing is written."""
    changes = []
    for d in found:
        stored = server.stored(d)
        if stored is None:
            changes.append(Change(d, CREATE))
            continue
        differing = tuple(k for k in d.body if not _same(d.body[k], stored.get(k)))
        changes.append(Change(d, UPDATE if differing else UNCHANGED, differing))
    return changes


def _same(ours: object, theirs: object) -> bool:
    """Whether the server's value says what ours says; it may add fields of its own.

    Only the fields a file sets are compared: the server fills in defaults for the rest.
    """
    if theirs is None:
        return ours in (None, [], {})
    if isinstance(ours, dict):
        return isinstance(theirs, dict) and all(_same(v, theirs.get(k)) for k, v in ours.items())
    if isinstance(ours, list):
        return (
            isinstance(theirs, list)
            and len(ours) == len(theirs)
            and all(_same(a, b) for a, b in zip(ours, theirs, strict=True))
        )
    return ours == theirs and isinstance(ours, bool) == isinstance(theirs, bool)


def poller_loops(
    conductor: ConductorClient,
    found: list[Definition],
    name: str = POLLER_WORKFLOW,
    correlation_id: str = POLLER_CORRELATION_ID,
) -> dict[str, list[str]]:
    """Each running loop `name` (batch_status_poller unless told), with the definitions in
    `found` it runs otherwise.

    A workflow keeps the definitions it started with (its own and, embedded, its tasks'), so
    a loop started before a change goes on with the old ones until it is replaced.
    """
    workflows = [d for d in found if d.kind == "workflow" and d.name == name]
    tasks = {d.name: d for d in found if d.kind == "task"}
    try:
        running = [
            wf["workflowId"]
            for wf in conductor.correlated(name, correlation_id)
            if wf.get("status") in LIVE
        ]
        snapshots = {
            loop_id: conductor.get_workflow(loop_id, include_tasks=False).get("workflowDefinition")
            or {}
            for loop_id in running
        }
    except ConductorUnavailable as exc:
        raise RegistrationError(exc.message) from exc
    result = {}
    for loop_id, snapshot in snapshots.items():
        differs = [d.label for d in workflows if not _same(d.body, snapshot)]
        used = {
            task["name"]: task.get("taskDefinition")
            for _, task in _workflow_tasks(snapshot.get("tasks") or [], "tasks")
            if isinstance(task, dict) and task.get("type") == "SIMPLE" and task.get("name") in tasks
        }
        differs += [
            tasks[name].label for name, taken in used.items() if not _same(tasks[name].body, taken)
        ]
        result[loop_id] = differs
    return result


def terminate_poller_loops(conductor: ConductorClient, loop_ids: list[str], reason: str) -> None:
    """End the running loops; the poller worker service's keeper starts a new one."""
    for loop_id in loop_ids:
        try:
            conductor.terminate(loop_id, reason)
        except ConductorUnavailable as exc:
            raise RegistrationError(exc.message) from exc


def _reason(resp: requests.Response) -> str:
    """Conductor's message and each validation error, or the start of the body."""
    try:
        body = resp.json()
    except ValueError:
        return " ".join(resp.text.split())[:500] or resp.reason
    if not isinstance(body, dict):
        return str(body)[:500]
    parts = [str(body.get("message", ""))]
    parts += [
        f"{e.get('path', '')}: {e.get('message', '')}" for e in body.get("validationErrors") or []
    ]
    return "; ".join(p for p in parts if p)
