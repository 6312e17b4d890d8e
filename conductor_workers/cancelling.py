"""The poller's cancel duties: deadlines, and the jobs of runs that ended while one may run."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from batchcore.errors import WorkbenchError
from batchcore.runs.model import Run
from batchcore.runs.store import RunStore
from batchcore.workbench import WorkbenchClient

from . import metrics
from .submission import start_job

log = logging.getLogger(__name__)

# Ended runs whose job is cancelled per sweep: each costs up to two Workbench calls.
ENDED_RUNS_PER_SWEEP = 20


def enforce_deadlines(store: RunStore, grace_seconds: int, limit: int) -> int:
    """Act on the open runs past their deadline; return how many were touched."""
    touched = store.enforce_deadlines(grace_seconds, limit)
    for run in touched:
        log.info("deadline of run %s (%s): %s", run.id, run.deadline_at, run.status)
    return len(touched)


def cancel_jobs_of_ended_runs(
    store: RunStore, client: WorkbenchClient, pool: ThreadPoolExecutor
) -> int:
    """Cancel the jobs that may still run for runs that have ended; return how many were
    settled (the others are tried again at the next sweep)."""
    runs = store.ended_runs_to_cancel(ENDED_RUNS_PER_SWEEP)
    return sum(pool.map(lambda run: _cancel_job_of(store, client, run), runs))


def _cancel_job_of(store: RunStore, client: WorkbenchClient, run: Run) -> bool:
    job_id = run.workbench_job_id
    try:
        if job_id is None:
            # The submission's answer was lost: the same Idempotency-Key finds the job it
            # created (or creates one now, cancelled at once: no job is left running unseen).
            job = start_job(client, run)
            job_id = job.job_id
        result = client.cancel_job(job_id)
    except WorkbenchError as exc:
        metrics.WORKBENCH_ERRORS.labels(kind=exc.kind).inc()
        if not exc.transient:
            # Refused for good: no job can be created for this run (none exists), or the
            # Workbench will not cancel this one (it no longer knows it); asking again is vain.
            return store.record_ended_run_cancel(run, job_id, f"refused: {exc.kind}")
        log.warning("cancel of the job of ended run %s failed (%s): %s", run.id, exc.kind, exc)
        return False
    log.info("cancelled job %s of ended run %s (%s)", job_id, run.id, result.workbench_status)
    return store.record_ended_run_cancel(run, job_id, result.workbench_status)
