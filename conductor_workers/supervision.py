"""Readiness of a worker service, and keeping exactly one batch_status_poller loop alive."""

from __future__ import annotations

import logging
import threading

from batchcore.conductor import ConductorClient
from batchcore.db import Database
from batchcore.errors import DomainError
from batchcore.queries import Q

POLLER_WORKFLOW = "batch_status_poller"
POLLER_VERSION = 1
POLLER_CORRELATION_ID = "batch-status-poller"
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


def ensure_poller_loop(conductor: ConductorClient, db: Database, interval: int) -> str | None:
    """Start the poller loop unless one is running; return its id (None: another is checking)."""
    with db.transaction() as cur:
        cur.execute(Q["try_poller_loop_lock"])
        if not cur.fetchone()["locked"]:
            return None
        for wf in conductor.correlated(POLLER_WORKFLOW, POLLER_CORRELATION_ID):
            if wf.get("status") in ("RUNNING", "PAUSED"):
                return wf["workflowId"]
        workflow_id = conductor.start_workflow(
            POLLER_WORKFLOW,
            POLLER_VERSION,
            POLLER_CORRELATION_ID,
            {"poll_interval_seconds": interval},
        )
        log.info("started %s loop %s (interval %ss)", POLLER_WORKFLOW, workflow_id, interval)
        return workflow_id


def keep_poller_loop_running(
    conductor: ConductorClient, db: Database, interval: int, stop: threading.Event
) -> threading.Thread:
    """Check now and then every CHECK_EVERY_SECONDS, from a daemon thread."""

    def loop() -> None:
        while not stop.is_set():
            try:
                ensure_poller_loop(conductor, db, interval)
            except DomainError as exc:
                log.warning("could not check the %s loop: %s", POLLER_WORKFLOW, exc.message)
            stop.wait(CHECK_EVERY_SECONDS)

    thread = threading.Thread(target=loop, name="poller-loop-keeper", daemon=True)
    thread.start()
    return thread
