"""Readiness of a worker service, and keeping exactly one batch_status_poller loop alive."""

from __future__ import annotations

import logging
import threading

from batchcore.conductor import ConductorClient, is_not_found
from batchcore.db import Database
from batchcore.errors import ConductorUnavailable, DomainError
from batchcore.runs.store import RunStore
from batchcore.runs.workflow import LIVE, POLLER_CORRELATION_ID, POLLER_VERSION, POLLER_WORKFLOW

CHECK_EVERY_SECONDS = 15

log = logging.getLogger(__name__)


def readiness(db: Database, conductor: ConductorClient) -> dict:
    """Whether the database and Conductor both answer, each named."""
    checks = {}
    try:
        db.ping()
        checks["database"] = "ok"
    except DomainError as exc:
        checks["database"] = exc.message
    checks["conductor"] = "ok" if conductor.healthy() else "unreachable"
    return {"ok": all(v == "ok" for v in checks.values()), "checks": checks}


def ensure_poller_loop(
    conductor: ConductorClient,
    store: RunStore,
    interval: int,
    *,
    name: str = POLLER_WORKFLOW,
    version: int = POLLER_VERSION,
    correlation_id: str = POLLER_CORRELATION_ID,
) -> str | None:
    """Make sure exactly one poller loop runs; return its id (None: another is checking).

    The loop's id is kept in the database and read back by id, a consistent read; loops
    found by correlation id besides it are duplicates and are terminated. The loop's names
    are the contract's; tests name a private one.
    """
    with store.poller_loop_lock() as loop:
        if loop is None:
            return None
        recorded = loop.workflow_id
        keep = recorded if recorded and _is_live(conductor, recorded) else None
        others = [
            wf["workflowId"]
            for wf in conductor.correlated(name, correlation_id)
            if wf.get("status") in LIVE and wf["workflowId"] != keep
        ]
        if keep is None and others:
            keep = others.pop(0)
        if keep is None:
            keep = conductor.start_workflow(
                name, version, correlation_id, {"poll_interval_seconds": interval}
            )
            log.info("started %s loop %s (interval %ss)", name, keep, interval)
        for duplicate in others:
            conductor.terminate(duplicate, f"duplicate {name} loop; {keep} is kept")
            log.warning("terminated duplicate %s loop %s", name, duplicate)
        loop.record(keep)
        return keep


def _is_live(conductor: ConductorClient, workflow_id: str) -> bool:
    try:
        workflow = conductor.get_workflow(workflow_id, include_tasks=False)
    except ConductorUnavailable as exc:
        if is_not_found(exc):
            return False
        raise
    return workflow.get("status") in LIVE


def keep_poller_loop_running(
    conductor: ConductorClient, store: RunStore, interval: int, stop: threading.Event
) -> threading.Thread:
    """Check now and then every CHECK_EVERY_SECONDS, from a daemon thread."""

    def loop() -> None:
        while not stop.is_set():
            try:
                ensure_poller_loop(conductor, store, interval)
            except DomainError as exc:
                log.warning("could not check the %s loop: %s", POLLER_WORKFLOW, exc.message)
            stop.wait(CHECK_EVERY_SECONDS)

    thread = threading.Thread(target=loop, name="poller-loop-keeper", daemon=True)
    thread.start()
    return thread
