"""One status sweep: claim due runs, ask the Workbench, record what changed, finish workflows."""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from psycopg2.extras import Json

from batchcore import statuses
from batchcore.backoff import backoff_delay
from batchcore.conductor import ConductorClient
from batchcore.db import Database
from batchcore.errors import ConductorUnavailable, WorkbenchError
from batchcore.queries import Q
from batchcore.workbench import JobStatus, WorkbenchClient

from . import metrics

log = logging.getLogger(__name__)

WAIT_TASK_REF = "await_completion"
# A Retry-After longer than this is honoured by scheduling the next poll, not by sleeping.
MAX_INLINE_WAIT_SECONDS = 5.0
MAX_FAILURE_BACKOFF_SECONDS = 300
ORDER = {
    statuses.PENDING: 0,
    statuses.SUBMITTED: 1,
    statuses.RUNNING: 2,
    statuses.COMPLETED: 3,
    statuses.FAILED: 3,
}
MESSAGES = {
    "RUNNING": "Workbench job is running",
    "SUCCEEDED": "Workbench job succeeded",
    "FAILED": "Workbench job failed",
    "CANCELLED": "Workbench job was cancelled",
}


@dataclass(frozen=True)
class SweepConfig:
    """The knobs of one sweep."""

    batch_size: int = 200
    concurrency: int = 16
    max_retries: int = 3
    lease_seconds: int = 60
    interval_seconds: int = 5
    retry_base_seconds: float = 0.2
    retry_cap_seconds: float = 5.0
    # Below poll_status's responseTimeoutSeconds (60): a sweep must answer before Conductor
    # gives its task up, and a killed poller then holds the loop for at most that long.
    time_budget_seconds: float = 40.0


@dataclass
class Outcome:
    """What one status call taught us about one run."""

    run_id: str
    expected: str
    new_status: str | None = None
    message: str | None = None
    details: dict = field(default_factory=dict)
    error_message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    poll_error: str | None = None
    error_kind: str | None = None
    retry_at: datetime | None = None


def decide(current: str, job: JobStatus) -> str | None:
    """The run status to move to, or None: same status, backwards, or out of a terminal one."""
    target = job.run_status
    if target == current:
        return None
    if statuses.is_terminal(current) or ORDER[target] < ORDER[current]:
        log.warning(
            "ignoring Workbench status %s for run in %s (job %s): it would move back",
            job.workbench_status,
            current,
            job.job_id,
        )
        return None
    return target if statuses.can_transition(current, target) else None


def fetch_status(
    client: WorkbenchClient, job_id: str, cfg: SweepConfig, rng: random.Random, sleep=time.sleep
) -> JobStatus:
    """One job's status, retrying transient errors with jittered backoff and Retry-After."""
    attempt = 0
    while True:
        try:
            return client.get_job(job_id)
        except WorkbenchError as exc:
            metrics.WORKBENCH_ERRORS.labels(kind=exc.kind).inc()
            if not exc.transient or attempt >= cfg.max_retries:
                raise
            delay = backoff_delay(
                attempt, cfg.retry_base_seconds, cfg.retry_cap_seconds, exc.retry_after, rng
            )
            if delay > MAX_INLINE_WAIT_SECONDS:
                raise
            sleep(delay)
            attempt += 1


def poll_one(client: WorkbenchClient, run: dict, cfg: SweepConfig, rng: random.Random) -> Outcome:
    """Ask about one claimed run; never raises for a Workbench problem."""
    run_id, current = str(run["id"]), run["status"]
    outcome = Outcome(run_id=run_id, expected=current)
    try:
        job = fetch_status(client, run["workbench_job_id"], cfg, rng)
    except WorkbenchError as exc:
        failures = run["poll_failures"] + 1
        backoff = min(MAX_FAILURE_BACKOFF_SECONDS, cfg.interval_seconds * 2 ** min(failures, 10))
        wait = max(backoff * rng.uniform(0.5, 1.0), exc.retry_after or 0)
        log.error(
            "poll failed run=%s job=%s kind=%s attempts=%d: %s",
            run_id,
            run["workbench_job_id"],
            exc.kind,
            cfg.max_retries + 1,
            exc.message,
        )
        outcome.poll_error = exc.message
        outcome.error_kind = exc.kind
        outcome.retry_at = datetime.now(UTC) + timedelta(seconds=wait)
        outcome.details = {
            "kind": exc.kind,
            "status_code": exc.status_code,
            "consecutive_failures": failures,
            "next_poll_in_seconds": round(wait),
        }
        return outcome
    outcome.new_status = decide(current, job)
    if outcome.new_status:
        outcome.message = MESSAGES.get(
            job.workbench_status, f"Workbench job {job.workbench_status}"
        )
        outcome.error_message = job.error_message
        outcome.started_at, outcome.finished_at = job.started_at, job.finished_at
        outcome.details = {
            k: v
            for k, v in {
                "workbench_job_id": job.job_id,
                "workbench_status": job.workbench_status,
                "error_message": job.error_message,
                "started_at": job.started_at.isoformat() if job.started_at else None,
                "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            }.items()
            if v is not None
        }
        if job.error_message and outcome.new_status == statuses.FAILED:
            outcome.message = f"{outcome.message}: {job.error_message}"
    return outcome


def apply(db: Database, outcomes: list[Outcome], interval_seconds: int) -> list[dict]:
    """Record a batch's outcomes in one statement; return the runs that moved."""
    cols = {
        "ids": [o.run_id for o in outcomes],
        "expected": [o.expected for o in outcomes],
        "new_status": [o.new_status for o in outcomes],
        "error_message": [o.error_message for o in outcomes],
        "started_at": [o.started_at for o in outcomes],
        "finished_at": [o.finished_at for o in outcomes],
        "poll_error": [o.poll_error for o in outcomes],
        "error_kind": [o.error_kind for o in outcomes],
        "retry_at": [o.retry_at for o in outcomes],
        "message": [o.message for o in outcomes],
        "details": [Json(o.details) for o in outcomes],
    }
    # One statement, atomic by itself: autocommit spares the BEGIN and COMMIT round trips.
    with db.autocommit() as cur:
        cur.execute(Q["apply_poll_results"], {**cols, "interval_seconds": interval_seconds})
        return cur.fetchall()


def sync_workflows(
    db: Database, conductor: ConductorClient, pool: ThreadPoolExecutor, limit: int
) -> int:
    """Complete the WAIT task of ended runs whose workflow still waits; return how many."""
    with db.autocommit() as cur:
        cur.execute(Q["unsynced_terminal_runs"], {"limit": limit})
        runs = cur.fetchall()
    if not runs:
        return 0
    done = [
        r["id"]
        for r, ok in zip(runs, pool.map(lambda r: finish_workflow(conductor, r), runs), strict=True)
        if ok
    ]
    if done:
        with db.autocommit() as cur:
            cur.execute(Q["mark_workflows_synced"], {"ids": done})
    return len(done)


def finish_workflow(conductor: ConductorClient, run: dict) -> bool:
    """Complete the run's WAIT task with its outcome; True once nothing is left to do."""
    wf_id = run["conductor_workflow_id"]
    output = {
        "status": run["status"],
        "workbench_job_id": run["workbench_job_id"],
        "error_message": run["error_message"],
    }
    try:
        conductor.complete_task(wf_id, WAIT_TASK_REF, "COMPLETED", output)
        return True
    except ConductorUnavailable as first:
        try:
            workflow = conductor.get_workflow(wf_id, include_tasks=False)
        except ConductorUnavailable:
            log.warning(
                "could not finish workflow %s of run %s: %s", wf_id, run["id"], first.message
            )
            return False
        if workflow.get("status") not in ("RUNNING", "PAUSED"):
            log.info("workflow %s of run %s is already %s", wf_id, run["id"], workflow["status"])
            return True
        # Still running: its WAIT task may not be scheduled yet; a later sweep tries again.
        return False


def sweep(
    db: Database,
    client: WorkbenchClient,
    conductor: ConductorClient,
    cfg: SweepConfig,
    pool: ThreadPoolExecutor,
    rng: random.Random | None = None,
) -> dict:
    """Poll every due run once, batch by batch, within the time budget; return a summary."""
    rng = rng or random.Random()
    started = time.monotonic()
    checked = changed = failed = batches = 0
    while time.monotonic() - started < cfg.time_budget_seconds:
        # The claim is one statement (its lease is taken and committed at once): autocommit.
        with db.autocommit() as cur:
            cur.execute(
                Q["claim_due_runs"],
                {"batch_size": cfg.batch_size, "lease_seconds": cfg.lease_seconds},
            )
            claimed = cur.fetchall()
        if not claimed:
            break
        batches += 1
        outcomes = list(pool.map(lambda run: poll_one(client, run, cfg, rng), claimed))
        moved = apply(db, outcomes, cfg.interval_seconds)
        checked += len(claimed)
        changed += len(moved)
        failed += sum(1 for o in outcomes if o.poll_error)
        for row in moved:
            metrics.TRANSITIONS.labels(status=row["status"]).inc()
        if len(claimed) < cfg.batch_size:
            break
    synced = sync_workflows(db, conductor, pool, limit=max(cfg.batch_size, 100))
    duration = time.monotonic() - started
    metrics.SWEEPS.inc()
    metrics.SWEEP_SECONDS.observe(duration)
    metrics.RUNS_POLLED.inc(checked)
    summary = {
        "checked": checked,
        "changed": changed,
        "failed": failed,
        "synced": synced,
        "batches": batches,
        "duration_ms": round(duration * 1000),
    }
    log.info("sweep %s", summary)
    return summary
