"""The gateway's use cases: each opens its own short transactions and returns plain data.

No Flask here: routes parse and render, these functions decide. A database connection
is never held across a call to Conductor or a sleep.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from batchcore.conductor import WorkflowNotStarted, is_not_found
from batchcore.db import Database
from batchcore.errors import (
    ConductorUnavailable,
    DomainError,
    NotFound,
    ValidationFailed,
)
from batchcore.runs import lifecycle, workflow
from batchcore.runs.model import REQUEST_FIELDS, NewRun, Run, Transition
from batchcore.runs.paging import open_cursor, seal_cursor
from batchcore.runs.store import RunStore

from . import workflow_view
from .problems import problem, raise_if_any
from .validation import ListFilters, RunRequest

log = logging.getLogger(__name__)

# ?wait= polling: start quick (most runs leave PENDING within a second), back off to this.
WAIT_FIRST_DELAY = 0.1
WAIT_MAX_DELAY = 0.5
READINESS_TIMEOUT = 2.0


class PipelineNotFound(NotFound):
    """The request names a pipeline the catalog does not have."""

    code = "pipeline_not_found"


class RunNotFound(NotFound):
    """No run has the id asked for."""

    code = "run_not_found"


class Conductor(Protocol):
    """What the services need from a Conductor client (a fake in unit tests)."""

    base_url: str

    def start_workflow(self, name: str, version: int, correlation_id: str, inputs: dict) -> str:
        """Start a workflow and return its id."""

    def terminate_correlated(self, name: str, correlation_id: str, reason: str) -> list[str]:
        """Terminate running workflows with this correlation id."""

    def check_health(self, timeout: float = 2.0) -> None:
        """Raise ConductorUnavailable unless the server is healthy."""


@dataclass(frozen=True)
class RunView:
    """One run row and its audit trail, oldest event first."""

    run: dict
    history: list[dict]


@dataclass(frozen=True)
class AcceptedRun:
    """The outcome of submit_run: the run as it now is, and whether this call created it."""

    run: dict
    history: list[dict]
    created: bool


@dataclass(frozen=True)
class RunPage:
    """One page of runs, newest first, and the cursor of the next page (None at the end)."""

    items: list[dict]
    next_cursor: str | None


def submit_run(
    db: Database,
    conductor: Conductor,
    request: RunRequest,
    idempotency_key: str | None = None,
    wait_seconds: float = 0.0,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> AcceptedRun:
    """Store a PENDING run, start its workflow, and optionally wait until it leaves PENDING.

    An idempotent replay (same key, same request) returns the stored run with
    created=False and starts nothing. When Conductor cannot start the workflow the run
    is stored FAILED with the reason and ConductorUnavailable names the run id.
    """
    store = RunStore(db)
    new = NewRun(
        **{name: getattr(request, name) for name in REQUEST_FIELDS},
        idempotency_key=idempotency_key,
    )
    pipeline, run, created = store.create_run(new, admit=lambda found: _admit(found, request))
    if created:
        _start_workflow(store, conductor, pipeline, run)
    if wait_seconds > 0:
        _wait_while_pending(store, run.id, wait_seconds, sleep, clock)
    view = get_run(db, run.id)
    return AcceptedRun(run=view.run, history=view.history, created=created)


def get_run(db: Database, run_id: str | uuid.UUID) -> RunView:
    """The run with its history; RunNotFound naming the id (also for a non-UUID id)."""
    try:
        run, history = RunStore(db).get_run_with_history(run_id)
    except NotFound as exc:
        raise RunNotFound(exc.message) from None
    return RunView(run=run.to_dict(), history=history)


def list_runs(db: Database, filters: ListFilters, cursor_key: bytes) -> RunPage:
    """One page of runs, newest first; ValidationFailed for a cursor this API never issued."""
    position = None
    if filters.cursor is not None:
        try:
            position = open_cursor(filters.cursor, cursor_key)
        except ValueError:
            text = "is not a cursor this API returned; use next_cursor from a previous page"
            raise_if_any([problem("cursor", "invalid", text)], "query", "parameter")
    runs, next_position = RunStore(db).list_runs(
        filters.statuses, filters.pipeline, filters.limit, position
    )
    next_cursor = seal_cursor(next_position, cursor_key) if next_position else None
    return RunPage(items=[run.to_dict() for run in runs], next_cursor=next_cursor)


def list_pipelines(db: Database) -> list[dict]:
    """The whole catalog, by name."""
    return RunStore(db).list_pipelines()


def check_readiness(
    db: Database, conductor: Conductor, timeout: float = READINESS_TIMEOUT
) -> dict[str, str]:
    """{"database": ..., "conductor": ...}, each "ok", "unavailable" or "timeout".

    Both checks run at once in background threads, so the answer comes within
    `timeout` even when a dependency hangs; a check still in flight from an earlier
    probe is joined rather than started again, so slow probes cannot pile up threads.
    """
    deadline = time.monotonic() + timeout
    flights = {
        "database": _flight("database", db, db.ping),
        "conductor": _flight("conductor", conductor, lambda: conductor.check_health(timeout)),
    }
    return {
        name: flight.outcome(max(0.0, deadline - time.monotonic()))
        for name, flight in flights.items()
    }


# ----------------------------------------------------------------------------- helpers


def _admit(pipeline: dict | None, request: RunRequest) -> None:
    """Refuse a request for a pipeline the catalog lacks, has disabled, or runs otherwise."""
    if pipeline is None:
        raise PipelineNotFound(
            f"No pipeline named {request.pipeline!r}; GET /api/v1/pipelines lists them.",
            details=[
                {
                    "field": "pipeline",
                    "rule": "not_found",
                    "message": f"pipeline: {request.pipeline!r} is not in the catalog",
                }
            ],
        )
    if not pipeline["enabled"]:
        raise ValidationFailed(
            f"Pipeline {request.pipeline!r} is disabled and takes no new runs.",
            details=[
                {
                    "field": "pipeline",
                    "rule": "disabled",
                    "message": f"pipeline: {request.pipeline!r} is disabled",
                }
            ],
        )
    if pipeline["mode"] != request.mode:
        raise ValidationFailed(
            f"Pipeline {request.pipeline!r} runs in mode {pipeline['mode']}, not {request.mode}.",
            details=[
                {
                    "field": "mode",
                    "rule": "pipeline_mode",
                    "message": f"mode: pipeline {request.pipeline!r} runs in mode "
                    f"{pipeline['mode']}",
                }
            ],
        )


def _start_workflow(store: RunStore, conductor: Conductor, pipeline: dict, run: Run) -> None:
    try:
        workflow_id = workflow.start_run_workflow(
            conductor, run, pipeline["workflow_name"], pipeline["workflow_version"]
        )
    except ConductorUnavailable as exc:
        _record_start_failure(store, conductor, pipeline, run.id, exc)
        return
    store.set_workflow_id(run.id, workflow_id)
    log.info("run %s started as Conductor workflow %s", run.id, workflow_id)


def _record_start_failure(
    store: RunStore, conductor: Conductor, pipeline: dict, run_id: uuid.UUID, exc: DomainError
) -> None:
    """Store the run FAILED with the reason, then raise ConductorUnavailable naming it.

    Returns normally only when the run has already moved on (a start that timed out
    but did happen): then the workflow is running and the caller answers as usual.
    """
    if isinstance(exc, WorkflowNotStarted):
        error_details = exc.error_details()
        maybe_started = exc.maybe_started
    else:
        error_details = {"conductor_url": conductor.base_url}
        maybe_started = False
    conductor_url = error_details["conductor_url"]
    error_message = f"{exc.message}; the run was not started"
    log.warning("run %s: %s", run_id, error_message)
    # Under the row lock: a start that timed out may still have happened, and its workflow
    # may already have moved the run on; only a PENDING run is failed here.
    current = store.transition_if_pending(
        run_id,
        Transition(
            status=lifecycle.FAILED,
            source="gateway",
            message="Conductor could not start the workflow",
            details=error_details,
            error_message=error_message,
            error_details=error_details,
        ),
    )
    if current != lifecycle.PENDING:
        log.warning("run %s is %s although starting it seemed to fail", run_id, current)
        return
    if maybe_started:
        _terminate_stray_workflows(conductor, pipeline, run_id)
    raise ConductorUnavailable(
        f"Run {run_id} was stored but Conductor at {conductor_url} could not start its "
        "workflow; the run is FAILED. Submit it again later.",
        details=[
            {
                "run_id": str(run_id),
                "conductor_url": conductor_url,
                "message": error_message,
            }
        ],
    ) from exc


def _terminate_stray_workflows(conductor: Conductor, pipeline: dict, run_id: uuid.UUID) -> None:
    try:
        stray = conductor.terminate_correlated(
            pipeline["workflow_name"],
            str(run_id),
            "the gateway gave up starting this run; it is FAILED",
        )
    except Exception:
        # Best effort: the workers refuse to act for a FAILED run anyway.
        log.warning("run %s: could not look for stray workflows", run_id, exc_info=True)
        return
    if stray:
        log.warning("run %s: terminated stray workflow(s) %s", run_id, ", ".join(stray))


def _wait_while_pending(
    store: RunStore,
    run_id: uuid.UUID,
    seconds: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> None:
    deadline = clock() + seconds
    delay = WAIT_FIRST_DELAY
    while True:
        # One short read each time: no connection is held while sleeping.
        status = store.run_status(run_id)
        remaining = deadline - clock()
        if status != lifecycle.PENDING or remaining <= 0:
            return
        sleep(min(delay, remaining))
        delay = min(delay * 2, WAIT_MAX_DELAY)


class _Flight:
    """One readiness check running in a daemon thread, shared by concurrent probes."""

    def __init__(self, key: tuple, check: Callable[[], None]):
        self._key = key
        self._check = check
        self._done = threading.Event()
        self._result = "unavailable"

    def run(self) -> None:
        try:
            self._check()
            self._result = "ok"
        except Exception as exc:
            log.warning("readiness: %s check failed: %s", self._key[0], exc)
        finally:
            with _flights_lock:
                _flights.pop(self._key, None)
            self._done.set()

    def outcome(self, timeout: float) -> str:
        if not self._done.wait(timeout):
            log.warning("readiness: %s check did not finish in time", self._key[0])
            return "timeout"
        return self._result


_flights: dict[tuple, _Flight] = {}
_flights_lock = threading.Lock()


def _flight(name: str, target: object, check: Callable[[], None]) -> _Flight:
    key = (name, id(target))
    with _flights_lock:
        flight = _flights.get(key)
        if flight is None:
            flight = _flights[key] = _Flight(key, check)
            threading.Thread(target=flight.run, name=f"readyz-{name}", daemon=True).start()
    return flight


# ------------------------------------------------------------- the workflow behind a run


class WorkflowNotFound(NotFound):
    """The run names a workflow that Conductor no longer has (removed or archived)."""

    code = "workflow_not_found"


def get_run_workflow(db: Database, conductor, run_id: str | uuid.UUID) -> dict:
    """The Conductor workflow behind a run, shaped as the API shows it; all fields null and
    no tasks while the run has none; ConductorUnavailable when Conductor cannot answer."""
    run = get_run(db, run_id).run
    workflow_id = run.get("conductor_workflow_id")
    if not workflow_id:
        return workflow_view.not_started()
    try:
        execution = conductor.get_workflow(workflow_id, include_tasks=True)
    except ConductorUnavailable as exc:
        if is_not_found(exc):
            raise WorkflowNotFound(
                f"Conductor has no workflow {workflow_id} (run {run['id']}'s); it may have"
                " been removed from Conductor's store",
                details=[{"run_id": str(run["id"]), "workflow_id": workflow_id}],
            ) from None
        raise
    return workflow_view.shape(execution)
