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

from batchcore.conductor import is_not_found
from batchcore.db import Database
from batchcore.errors import (
    ConductorUnavailable,
    NotFound,
)
from batchcore.notifications.store import NotificationStore
from batchcore.runs.paging import open_cursor, seal_cursor
from batchcore.runs.store import RunStore

from . import workflow_view
from .problems import problem, raise_if_any

# Submitting and re-running live in their own modules; these names are the services' as well.
from .reruns import rerun_run  # noqa: F401
from .submission import AcceptedRun, PipelineNotFound, submit_run  # noqa: F401
from .validation import ListFilters

log = logging.getLogger(__name__)

READINESS_TIMEOUT = 2.0


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

    def terminate(self, workflow_id: str, reason: str) -> None:
        """Terminate a running workflow."""

    def check_health(self, timeout: float = 2.0) -> None:
        """Raise ConductorUnavailable unless the server is healthy."""


@dataclass(frozen=True)
class RunView:
    """One run row and its audit trail, oldest event first."""

    run: dict
    history: list[dict]


@dataclass(frozen=True)
class RunPage:
    """One page of runs, newest first, and the cursor of the next page (None at the end)."""

    items: list[dict]
    next_cursor: str | None


def get_run(db: Database, run_id: str | uuid.UUID) -> RunView:
    """The run with its history; RunNotFound naming the id (also for a non-UUID id)."""
    try:
        run, history = RunStore(db).get_run_with_history(run_id)
    except NotFound as exc:
        raise RunNotFound(exc.message) from None
    return RunView(run=run.to_dict(), history=history)


def cancel_run(db: Database, conductor: Conductor, run_id: str, actor: str) -> RunView:
    """Cancel a run for `actor`: at once when no job was asked for (its workflow is ended
    too, best effort), else by the poller through the Workbench; RunTerminal once it ended."""
    try:
        run, ended = RunStore(db).request_cancel(run_id, actor)
    except NotFound as exc:
        raise RunNotFound(exc.message) from None
    if ended and run.conductor_workflow_id:
        reason = f"Run {run.id} was cancelled by {actor} before a Workbench job was asked for"
        try:
            conductor.terminate(run.conductor_workflow_id, reason)
        except ConductorUnavailable as exc:
            # Its submit task finds the run CANCELLED and ends it; the reconciler checks.
            log.warning(
                "could not end workflow %s of cancelled run %s: %s",
                run.conductor_workflow_id,
                run.id,
                exc.message,
            )
    return get_run(db, run.id)


def list_notifications(db: Database, run_id: str | uuid.UUID) -> list[dict]:
    """The run's notifications with their attempts, oldest first; RunNotFound naming the id."""
    try:
        return NotificationStore(db).for_run(run_id)
    except NotFound as exc:
        raise RunNotFound(exc.message) from None


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
