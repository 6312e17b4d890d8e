"""Submitting a run: store it, start its workflow, and wait (bounded) until it leaves PENDING.

Once the run is stored, every answer names it. A database error after that point does not
turn into an anonymous 503: the workflow is running (or the reconciler restarts it), and a
client that resubmitted without a key would make a second run and a second job.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

from batchcore.conductor import WorkflowNotStarted
from batchcore.db import CONNECTION_ERRORS, Database
from batchcore.errors import ConductorUnavailable, DatabaseUnavailable, NotFound, ValidationFailed
from batchcore.runs import lifecycle, workflow
from batchcore.runs.model import NewRun, Run, Transition
from batchcore.runs.store import RunStore
from batchcore.setting_checks import DEFAULT_TOKEN_NAME

log = logging.getLogger(__name__)

# ?wait= polling: start quick (most runs leave PENDING within a second), back off to this.
WAIT_FIRST_DELAY = 0.1
WAIT_MAX_DELAY = 0.5
# A database that fails after the run was stored: the answer is the run as this request knows it.
_DATABASE_DOWN = (DatabaseUnavailable, *CONNECTION_ERRORS)


class PipelineNotFound(NotFound, code="pipeline_not_found"):
    """The request names a pipeline the catalog does not have."""


class RunNotStarted(ConductorUnavailable):
    """Conductor did not start a stored run's workflow; the message is for clients (no
    address, no upstream answer) and names the run, whose URL goes in Location."""

    def __init__(self, message: str, run_id: uuid.UUID):
        super().__init__(message, details=[{"run_id": str(run_id)}])
        self.run_id = run_id
        self.public = True


class AcceptedRun(NamedTuple):
    """The outcome of submit_run: the run as it now is, and whether this call created it."""

    run: dict
    history: list[dict]
    created: bool


class WaitingRoom:
    """At most `capacity` requests of this process wait for their run at once (?wait=), so
    that waits never hold every thread; past it a request answers at once."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._slots = threading.BoundedSemaphore(capacity) if capacity > 0 else None

    @contextmanager
    def seat(self) -> Iterator[bool]:
        """True while this request holds a seat; False (at once) when none is free."""
        taken = self._slots is not None and self._slots.acquire(blocking=False)
        try:
            yield taken
        finally:
            if taken:
                self._slots.release()


def waiting_capacity(threads: int) -> int:
    """Half of a worker's threads (at least one stays free: /readyz and ordinary requests)."""
    return min(threads // 2, threads - 1)


def run_url(run_id: uuid.UUID | str) -> str:
    """The run's URL path (the Location of every answer that names it)."""
    return f"/api/v1/pipeline-runs/{run_id}"


def submit_run(
    db: Database,
    conductor,
    request: NewRun,
    idempotency_key: str | None = None,
    wait_seconds: float = 0.0,
    *,
    submitted_by: str = DEFAULT_TOKEN_NAME,
    default_deadline_seconds: int | None = None,
    waiting_room: WaitingRoom | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> AcceptedRun:
    """Store a PENDING run, start its workflow, and optionally wait until it leaves PENDING.

    An idempotent replay (same key, same request) returns the stored run with
    created=False and starts nothing; keys are scoped to `submitted_by` (the token's name,
    also the actor of the events this request causes). When Conductor cannot start the
    workflow the run is stored FAILED with the reason and RunNotStarted names it. A run
    whose request and pipeline name no deadline gets `default_deadline_seconds`
    (RUN_DEADLINE_SECONDS; its default when None).
    """
    store = RunStore(db)
    new = dataclasses.replace(request, idempotency_key=idempotency_key, submitted_by=submitted_by)
    if default_deadline_seconds is not None:
        new = dataclasses.replace(new, default_deadline_seconds=default_deadline_seconds)
    pipeline, run, created, history = store.create_run(
        new, admit=lambda found: _admit(found, request)
    )
    # A new run answered at once needs no read back: the store's answers are the run as it
    # is (set_workflow_id returns the row) and, while it has one event, its whole history.
    known = False
    if created:
        run, known = _start_workflow(store, conductor, pipeline, run)
    if known and wait_seconds <= 0:
        return AcceptedRun(
            run=dataclasses.replace(run, reruns=[]).to_dict(), history=history, created=True
        )
    try:
        if wait_seconds > 0:
            with (waiting_room or WaitingRoom(1)).seat() as seated:
                if seated:
                    _wait_while_pending(store, run.id, wait_seconds, sleep, clock)
                else:
                    log.info("run %s: every waiting seat is taken; answering at once", run.id)
        run, history = store.get_run_with_history(run.id)
    except _DATABASE_DOWN as exc:
        log.warning(
            "run %s: the database could not be read after the run was accepted (%s);"
            " answering with the run as this request knows it",
            run.id,
            exc,
        )
    return AcceptedRun(run=run.to_dict(), history=history, created=created)


def _admit(pipeline: dict | None, request: NewRun) -> None:
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


def _start_workflow(store: RunStore, conductor, pipeline: dict, run: Run) -> tuple[Run, bool]:
    """The run with its workflow started, and whether the run and its first event are all
    there is (the answer needs no read back); RunNotStarted when Conductor did not start it."""
    try:
        workflow_id = workflow.start_run_workflow(
            conductor, run, pipeline["workflow_name"], pipeline["workflow_version"]
        )
    except ConductorUnavailable as exc:
        _record_start_failure(store, conductor, pipeline, run, exc)
        return run, False
    try:
        recorded = store.set_workflow_id(run.id, workflow_id)
    except _DATABASE_DOWN as exc:
        # The workflow runs and will move the run on; the reconciler attaches its id later.
        log.warning(
            "run %s: workflow %s started, but its id could not be recorded (%s)",
            run.id,
            workflow_id,
            exc,
        )
        recorded = None
    log.info("run %s started as Conductor workflow %s", run.id, workflow_id)
    if recorded is None:
        return dataclasses.replace(run, conductor_workflow_id=workflow_id), False
    return recorded.run, recorded.event_count == 1


def start_failure_reason(exc: ConductorUnavailable) -> tuple[str, dict]:
    """A sentence and details about a failed start that are fit for clients: no address, no
    upstream answer (those go to the log only)."""
    details: dict = {"code": ConductorUnavailable.code}
    if isinstance(exc, WorkflowNotStarted) and exc.status_code is not None:
        details["status_code"] = exc.status_code
        return f"Conductor refused to start the workflow (HTTP {exc.status_code})", details
    if isinstance(exc, WorkflowNotStarted) and exc.maybe_started:
        return "Conductor did not answer in time", details
    return "Conductor could not be reached", details


def _record_start_failure(
    store: RunStore, conductor, pipeline: dict, run: Run, exc: ConductorUnavailable
) -> None:
    """Store the run FAILED with the reason, then raise RunNotStarted naming it.

    Returns normally only when the run has already moved on (a start that timed out
    but did happen): then the workflow is running and the caller answers as usual.
    """
    run_id = run.id
    reason, error_details = start_failure_reason(exc)
    upstream = exc.error_details() if isinstance(exc, WorkflowNotStarted) else exc.details
    log.warning("run %s: workflow not started: %s (%s)", run_id, exc.message, upstream)
    maybe_started = isinstance(exc, WorkflowNotStarted) and exc.maybe_started
    error_message = f"{reason}; the run was not started"
    try:
        # Under the row lock: a start that timed out may still have happened, and its
        # workflow may already have moved the run on; only a PENDING run is failed here.
        current = store.transition_if_pending(
            run_id,
            Transition(
                status=lifecycle.FAILED,
                source="gateway",
                message="Conductor could not start the workflow",
                details=error_details,
                error_message=error_message,
                error_details=error_details,
                actor=run.submitted_by,
            ),
        )
    except _DATABASE_DOWN as db_exc:
        log.warning("run %s: could not be stored FAILED (%s); it stays PENDING", run_id, db_exc)
        raise RunNotStarted(
            f"Run {run_id} was stored, but {reason[0].lower()}{reason[1:]} and the database"
            " could not record that: the run stays PENDING and the service starts it again"
            f" within minutes. Do not submit it again; follow it at {run_url(run_id)}.",
            run_id,
        ) from exc
    if current != lifecycle.PENDING:
        log.warning("run %s is %s although starting it seemed to fail", run_id, current)
        return
    if maybe_started:
        _terminate_stray_workflows(conductor, pipeline, run_id)
    raise RunNotStarted(
        f"Run {run_id} was stored, but {reason[0].lower()}{reason[1:]}: the run is FAILED"
        " and nothing was started. Submit it again later (the same Idempotency-Key makes a"
        " new attempt).",
        run_id,
    ) from exc


def _terminate_stray_workflows(conductor, pipeline: dict, run_id: uuid.UUID) -> None:
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
