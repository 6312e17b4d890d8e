"""One status sweep: claim due runs, ask the Workbench, record what changed, finish workflows."""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from batchcore import settings
from batchcore.backoff import backoff_delay, next_poll_delay
from batchcore.conductor import ConductorClient
from batchcore.errors import ConductorUnavailable, DatabaseUnavailable, WorkbenchError
from batchcore.runs import cancels, lifecycle, workflow
from batchcore.runs.model import PollOutcome, Run
from batchcore.runs.store import RunStore
from batchcore.workbench import JobStatus, WorkbenchClient
from batchcore.workbench_errors import public_details

from . import cancelling, metrics

log = logging.getLogger(__name__)

# A Retry-After longer than this is honoured by scheduling the next poll, not by sleeping.
MAX_INLINE_WAIT_SECONDS = 5.0
MAX_FAILURE_BACKOFF_SECONDS = 300
# Kept free at the end of a batch's deadline to write its outcomes back.
WRITE_MARGIN_SECONDS = 5.0
# A status call is not started with less time than this left before the deadline.
MIN_CALL_SECONDS = 0.5
# The kind recorded for a run whose outcome could not be written even alone.
KIND_UNWRITABLE = "unwritable"


@dataclass(frozen=True)
class SweepConfig:
    """The knobs of one sweep."""

    batch_size: int = settings.default("POLL_BATCH_SIZE")
    concurrency: int = settings.default("POLL_CONCURRENCY")
    max_retries: int = settings.default("POLL_MAX_RETRIES")
    lease_seconds: int = settings.default("POLL_LEASE_SECONDS")
    interval_seconds: int = settings.default("POLL_INTERVAL_SECONDS")
    retry_base_seconds: float = 0.2
    retry_cap_seconds: float = 5.0
    # Below poll_status's responseTimeoutSeconds (60): a sweep must answer before Conductor
    # gives its task up, and a killed poller then holds the loop for at most that long.
    time_budget_seconds: float = 40.0
    # How long past a run's deadline the Workbench may take to confirm its job's cancel
    # before the run ends without that word.
    cancel_grace_seconds: int = 300
    duties: bool = True  # deadlines, ended runs' jobs, workflow syncs: one slot per iteration

    @classmethod
    def from_settings(cls, cfg: settings.Settings) -> SweepConfig:
        """The knobs the environment sets; the others keep their defaults."""
        return cls(
            batch_size=cfg.poll_batch_size,
            concurrency=cfg.poll_concurrency,
            max_retries=cfg.poll_max_retries,
            lease_seconds=cfg.poll_lease_seconds,
            interval_seconds=cfg.poll_interval_seconds,
        )


def decide(current: str, job: JobStatus) -> str | None:
    """The run status to move to, or None: same status, backwards, or out of a terminal one."""
    target = lifecycle.forward(current, job.run_status)
    if target is None and job.run_status != current:
        log.warning(
            "ignoring Workbench status %s for run in %s (job %s): it would move back",
            job.workbench_status,
            current,
            job.job_id,
        )
    return target


class OutOfTime(Exception):
    """The batch's deadline came before a run's status call could start."""


def fetch_status(client: WorkbenchClient, job_id: str, *args, **kwargs) -> JobStatus:
    """One job's status: `client.get_job` through with_retries (which takes the rest)."""
    return with_retries(client.get_job, job_id, *args, **kwargs)


def with_retries(
    call: Callable[..., Any],
    job_id: str,
    cfg: SweepConfig,
    rng: random.Random,
    sleep=time.sleep,
    deadline: float | None = None,
    monotonic: Callable[[], float] = time.monotonic,
):
    """`call(job_id, timeout=...)` (a status or a cancel call), retrying transient errors with
    jittered backoff and Retry-After; every attempt and wait ends by `deadline` (monotonic),
    and none starts without time left (OutOfTime before the first)."""
    attempt = 0
    while True:
        timeout = None
        if deadline is not None:
            timeout = deadline - monotonic()
            if timeout < MIN_CALL_SECONDS:
                raise OutOfTime(job_id)
        try:
            return call(job_id, timeout=timeout)
        except WorkbenchError as exc:
            metrics.WORKBENCH_ERRORS.labels(kind=exc.kind).inc()
            if not exc.transient or attempt >= cfg.max_retries:
                raise
            delay = backoff_delay(
                attempt, cfg.retry_base_seconds, cfg.retry_cap_seconds, exc.retry_after, rng
            )
            if delay > MAX_INLINE_WAIT_SECONDS:
                raise
            if deadline is not None and monotonic() + delay + MIN_CALL_SECONDS > deadline:
                raise
            sleep(delay)
            attempt += 1


def poll_one(
    client: WorkbenchClient,
    run: Run,
    cfg: SweepConfig,
    rng: random.Random,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    deadline: float | None = None,
) -> PollOutcome:
    """Ask about one claimed run by `deadline` (monotonic); never raises for a Workbench
    problem."""
    outcome = PollOutcome(run_id=str(run.id), expected=run.status, lease_token=run.poll_lease_token)
    try:
        if run.cancel_requested_at is not None and run.cancel_sent_at is None:
            with_retries(client.cancel_job, run.workbench_job_id, cfg, rng, deadline=deadline)
            outcome.cancel_sent = True
        job = fetch_status(client, run.workbench_job_id, cfg, rng, deadline=deadline)
    except OutOfTime:
        outcome.deferred = True
        return outcome
    except WorkbenchError as exc:
        failures = run.poll_failures + 1
        wait = failure_backoff(failures, cfg.interval_seconds, exc.retry_after, rng)
        log.error(
            "poll failed run=%s job=%s kind=%s attempts=%d: %s",
            run.id,
            run.workbench_job_id,
            exc.kind,
            cfg.max_retries + 1,
            exc.message,
        )
        outcome.poll_error = exc.message
        outcome.error_kind = exc.kind
        outcome.retry_at = now() + timedelta(seconds=wait)
        outcome.details = {
            "kind": exc.kind,
            "status_code": exc.status_code,
            "consecutive_failures": failures,
            "next_poll_in_seconds": round(wait),
            # The answer as the client read it (body excerpt redacted there), without the
            # Workbench's address: clients read this in the run's history.
            "answer": public_details(exc.details) or None,
        }
        return outcome
    outcome.new_status = decide(run.status, job)
    if outcome.new_status:
        outcome.message = lifecycle.message_for(job.workbench_status, job.error_message)
        outcome.error_message = lifecycle.error_message_for(job.workbench_status, job.error_message)
        outcome.started_at, outcome.finished_at = job.started_at, job.finished_at
        outcome.details = job.event_details()
        if run.cancel_requested_at is not None and lifecycle.is_terminal(outcome.new_status):
            cancels.judge_cancelled(run, job.workbench_status, outcome)
    return outcome


def failure_backoff(
    failures: int, interval_seconds: int, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds until a run whose status calls failed `failures` sweeps in a row is asked
    again: the interval doubled per failure, jittered, capped, never before Retry-After."""
    backoff = min(MAX_FAILURE_BACKOFF_SECONDS, interval_seconds * 2 ** min(failures, 10))
    return next_poll_delay(backoff * rng.uniform(0.5, 1.0), retry_after)


@functools.cache
def executor(concurrency: int) -> ThreadPoolExecutor:
    """This process's pool for sweeps of this concurrency: a sweep's calls in flight at once
    are bounded by its own SweepConfig, whoever calls it."""
    return ThreadPoolExecutor(concurrency, thread_name_prefix=f"poll{concurrency}")


def sync_workflows(
    store: RunStore, conductor: ConductorClient, pool: ThreadPoolExecutor, limit: int
) -> int:
    """Complete the WAIT task of ended runs whose workflow still waits; return how many."""
    runs = store.unsynced_terminal_runs(limit)
    if not runs:
        return 0
    done = [
        r.id
        for r, ok in zip(runs, pool.map(lambda r: finish_workflow(conductor, r), runs), strict=True)
        if ok
    ]
    if done:
        store.mark_workflows_synced(done)
    return len(done)


def finish_workflow(conductor: ConductorClient, run: Run) -> bool:
    """Complete the run's WAIT task with its outcome; True once nothing is left to do."""
    wf_id = run.conductor_workflow_id
    output = {
        "status": run.status,
        "workbench_job_id": run.workbench_job_id,
        "error_message": run.error_message,
        "reason": f"Run cancelled by {run.cancel_requested_by}"
        if run.status == lifecycle.CANCELLED
        else run.error_message,
    }
    # Synced only once the workflow has left RUNNING, whatever the completion answered: a
    # completion sent while Conductor was still scheduling the WAIT has been seen not to
    # stick (the run marked synced, its WAIT left IN_PROGRESS), so the workflow is read back.
    try:
        if conductor.complete_task(wf_id, workflow.WAIT_TASK_REF, "COMPLETED", output):
            problem = "it still runs after its WAIT task was completed"
        else:
            problem = "its WAIT task is not pending"
    except ConductorUnavailable as exc:
        problem = exc.message
    try:
        found = conductor.get_workflow(wf_id, include_tasks=False)
    except ConductorUnavailable:
        log.warning("could not finish workflow %s of run %s: %s", wf_id, run.id, problem)
        return False
    if found.get("status") not in workflow.LIVE:
        log.info("workflow %s of run %s is already %s", wf_id, run.id, found["status"])
        return True
    # Still running: its WAIT task is not scheduled yet (Conductor answers 200 with no task
    # id then, having completed nothing), or the completion did not stick; a later sweep
    # tries again, and the reconciler finishes a workflow that stays stuck.
    log.info("workflow %s of run %s: %s yet; a later sweep retries", wf_id, run.id, problem)
    return False


def record_outcomes(
    store: RunStore,
    claimed: list[Run],
    outcomes: list[PollOutcome],
    cfg: SweepConfig,
    rng: random.Random,
    clock: Callable[[], datetime],
) -> list[dict]:
    """Write a batch's outcomes in one statement; when that fails, run by run, so a run whose
    outcome cannot be written gets a failure recorded and a later poll, never holding up the
    others. A lost database connection is not one run's fault: it is raised."""
    try:
        return store.apply_poll_results(outcomes, cfg.interval_seconds)
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        metrics.WRITE_FALLBACKS.inc()
        log.warning(
            "batch write of %d poll outcomes failed (%s); writing them one by one",
            len(outcomes),
            type(exc).__name__,
        )
    failures = {str(run.id): run.poll_failures for run in claimed}
    moved: list[dict] = []
    for outcome in outcomes:
        try:
            moved += store.apply_poll_results([outcome], cfg.interval_seconds)
            continue
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            problem = type(exc).__name__
        metrics.UNWRITABLE_OUTCOMES.inc()
        wait = failure_backoff(failures.get(outcome.run_id, 0) + 1, cfg.interval_seconds, None, rng)
        log.error("poll outcome of run %s could not be written (%s)", outcome.run_id, problem)
        try:
            store.record_poll_write_failure(
                outcome,
                f"The poller could not record the Workbench's answer ({problem})",
                KIND_UNWRITABLE,
                clock() + timedelta(seconds=wait),
            )
        except DatabaseUnavailable:
            raise
        except Exception:  # its lease lapses; a later sweep asks again
            log.exception("could not record the write failure of run %s", outcome.run_id)
    return moved


def sweep(
    store: RunStore,
    client: WorkbenchClient,
    conductor: ConductorClient,
    cfg: SweepConfig,
    rng: random.Random | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict:
    """Poll every due run once, batch by batch, within the time budget; return a summary.

    At most cfg.concurrency Workbench or Conductor calls are in flight at once. A sweep that
    raises is counted in poller_sweeps_aborted_total.
    """
    try:
        return _sweep(store, client, conductor, cfg, rng or random.Random(), clock)
    except Exception:
        metrics.SWEEPS_ABORTED.inc()
        raise


def _sweep(
    store: RunStore,
    client: WorkbenchClient,
    conductor: ConductorClient,
    cfg: SweepConfig,
    rng: random.Random,
    clock: Callable[[], datetime],
) -> dict:
    pool = executor(cfg.concurrency)
    started = time.monotonic()
    budget_end = started + cfg.time_budget_seconds
    checked = changed = failed = deferred = batches = expired = settled = synced = 0
    if cfg.duties:
        expired = cancelling.enforce_deadlines(store, cfg.cancel_grace_seconds, cfg.batch_size)
    while budget_end - time.monotonic() > WRITE_MARGIN_SECONDS + MIN_CALL_SECONDS:
        claimed = store.claim_due_runs(cfg.batch_size, cfg.lease_seconds)
        if not claimed:
            break
        # Every call of the batch ends while the sweep still holds the runs and within its
        # budget (so before poll_status's response timeout), with time left to write back.
        deadline = min(budget_end, time.monotonic() + cfg.lease_seconds) - WRITE_MARGIN_SECONDS
        batches += 1
        ask = functools.partial(poll_one, client, cfg=cfg, rng=rng, now=clock, deadline=deadline)
        outcomes = list(pool.map(ask, claimed))
        asked = [o for o in outcomes if not o.deferred]
        # Runs not asked in time are not written: their lease lapses and they come first next.
        deferred += len(outcomes) - len(asked)
        moved = record_outcomes(store, claimed, asked, cfg, rng, clock) if asked else []
        checked += len(asked)
        changed += len(moved)
        failed += sum(1 for o in asked if o.poll_error)
        for row in moved:
            metrics.TRANSITIONS.labels(status=row["status"]).inc()
        if len(claimed) < cfg.batch_size or len(asked) < len(outcomes):
            break
    if cfg.duties:
        settled = cancelling.cancel_jobs_of_ended_runs(store, client, pool)
        synced = sync_workflows(store, conductor, pool, limit=max(cfg.batch_size, 100))
    duration = time.monotonic() - started
    metrics.SWEEPS.inc()
    metrics.SWEEP_SECONDS.observe(duration)
    metrics.RUNS_POLLED.inc(checked)
    metrics.RUNS_DEFERRED.inc(deferred)
    summary = {
        "checked": checked,
        "changed": changed,
        "failed": failed,
        "deferred": deferred,
        "synced": synced,
        "deadlines": expired,
        "ended_jobs_cancelled": settled,
        "batches": batches,
        "duration_ms": round(duration * 1000),
    }
    log.info("sweep %s", summary)
    return summary
