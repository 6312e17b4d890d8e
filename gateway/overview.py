"""The run browser's read-only use cases beyond the API's: counts, the poller, the services.

Like gateway.services: no Flask, plain data back, no connection held across a remote call.
"""

from __future__ import annotations

import logging

import requests

from batchcore.db import Database
from batchcore.errors import ConductorUnavailable
from batchcore.runs import overview
from batchcore.runs.workflow import POLLER_SWEEP_TASK

from . import services, workflow_view

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 2.0


def count_runs_by_status(db: Database, pipeline: str | None = None) -> dict[str, int]:
    """{status: runs} for every status, for one pipeline or all."""
    return overview.count_by_status(db, pipeline)


def system_status(db: Database, conductor, workbench_url: str | None) -> dict:
    """What an operator looks at first: the services' health, the poller loop, active runs."""
    checks = services.check_readiness(db, conductor, PROBE_TIMEOUT)
    health = {
        "PostgreSQL": checks["database"],
        "Conductor": checks["conductor"],
        "Workbench": workbench_answers(workbench_url),
    }
    runs = None
    if checks["database"] == "ok":
        try:
            runs = overview.poller_overview(db)
        except Exception as exc:  # the page still shows what it could read
            log.warning("system page: the poller overview could not be read: %s", exc)
    loop = None
    if runs and runs.get("loop_workflow_id") and checks["conductor"] == "ok":
        loop = poller_loop(conductor, runs["loop_workflow_id"])
    return {"health": health, "runs": runs, "loop": loop}


def poller_loop(conductor, workflow_id: str) -> dict:
    """The recorded batch_status_poller loop in Conductor: its status and its last sweep."""
    try:
        execution = conductor.get_workflow(workflow_id, include_tasks=True)
    except ConductorUnavailable as exc:
        return {"workflow_id": workflow_id, "status": None, "problem": exc.message}
    shaped = workflow_view.shape(execution)
    sweeps = [
        task
        for task in sorted(execution.get("tasks") or [], key=lambda task: task.get("seq") or 0)
        if task.get("taskType") == POLLER_SWEEP_TASK and task.get("status") == "COMPLETED"
    ]
    last = sweeps[-1] if sweeps else None
    return {
        "workflow_id": workflow_id,
        "status": shaped["status"],
        "start_time": shaped["start_time"],
        "problem": None,
        "last_sweep_at": workflow_view.from_millis(last.get("endTime")) if last else None,
        "last_sweep": last.get("outputData") if last else None,
    }


def workbench_answers(url: str | None, timeout: float = PROBE_TIMEOUT) -> str:
    """ "ok" when the Workbench's base URL answers HTTP at all, else why not."""
    if not url:
        return "not configured"
    try:
        requests.get(url, timeout=timeout, allow_redirects=False).close()
    except requests.Timeout:
        return "timeout"
    except requests.RequestException:
        return "unavailable"
    return "ok"
