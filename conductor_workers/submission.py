"""The logic behind submit_to_workbench and persist_run, free of the SDK."""

from __future__ import annotations

import logging

from batchcore.errors import InvalidTransition, NotFound, WorkbenchError
from batchcore.runs import lifecycle
from batchcore.runs.model import Run, Transition
from batchcore.runs.store import RunStore
from batchcore.workbench import SubmittedJob, WorkbenchClient

log = logging.getLogger(__name__)


class PermanentFailure(Exception):
    """Retrying cannot fix this; the worker turns it into a terminal task failure."""


class TransientFailure(Exception):
    """Retrying may fix this; Conductor retries the task per its definition."""


def start_job(client: WorkbenchClient, run: Run) -> SubmittedJob:
    """Start `run`'s Workbench job; the run id, its Idempotency-Key, finds one it started."""
    return client.submit_job(
        str(run.id), run.pipeline, run.input_path_prefix, run.output_path_prefix, run.parameters
    )


def submit(store: RunStore, client: WorkbenchClient, run_id: str) -> dict:
    """Start the run's Workbench job once; reuse a job id already known. A run cancelled (or
    ended) before this asks gets no job; a job whose answer comes back for a run that ended
    meanwhile is recorded, and the poller cancels it."""
    try:
        run = store.begin_submit(run_id)
    except NotFound as exc:
        raise PermanentFailure(exc.message) from exc
    if run.workbench_job_id:
        return {"workbench_job_id": run.workbench_job_id, "reused": True}
    if run.is_terminal or run.submit_started_at is None:
        raise PermanentFailure(
            f"Run {run_id} is already {run.status}; no Workbench job was started"
        )
    try:
        job = start_job(client, run)
    except WorkbenchError as exc:
        log.warning(
            "submit run=%s failed (%s, transient=%s): %s",
            run_id,
            exc.kind,
            exc.transient,
            exc.message,
        )
        if exc.transient:
            raise TransientFailure(exc.message) from exc
        raise PermanentFailure(exc.message) from exc
    log.info("submit run=%s job=%s created=%s", run_id, job.job_id, job.created)
    run = store.attach_job(run.id, job.job_id)
    if run.is_terminal:
        raise PermanentFailure(
            f"Run {run_id} became {run.status} while its Workbench job {job.job_id} was being "
            "created; the job is cancelled at the Workbench"
        )
    return {
        "workbench_job_id": job.job_id,
        "workbench_status": job.status,
        "reused": not job.created,
    }


def persist(
    store: RunStore,
    run_id: str,
    status: str,
    source: str,
    workbench_job_id: str | None = None,
    error_message: str | None = None,
    error_details: dict | None = None,
) -> dict:
    """Apply one transition with its audit event; repeating it changes nothing."""
    if status not in (lifecycle.SUBMITTED, lifecycle.FAILED):
        raise PermanentFailure(f"persist_run records SUBMITTED or FAILED, not {status!r}")
    if status == lifecycle.SUBMITTED and not workbench_job_id:
        raise PermanentFailure("persist_run needs workbench_job_id to record SUBMITTED")
    if status == lifecycle.SUBMITTED:
        t = Transition(
            status,
            source,
            "Workbench accepted the job",
            {"workbench_job_id": workbench_job_id},
            workbench_job_id=workbench_job_id,
        )
    else:
        reason = (error_message or "").strip() or "Submission to the Workbench failed"
        t = Transition(
            status,
            source,
            "Submission to the Workbench failed",
            error_details or {},
            error_message=reason,
            error_details=error_details or {},
        )
    try:
        if status == lifecycle.FAILED:
            return _fail_if_pending(store, run_id, t)
        run, changed = store.transition(run_id, t)
    except NotFound as exc:
        raise PermanentFailure(exc.message) from exc
    except InvalidTransition as exc:
        already = _already_past_submitted(store, run_id, status, workbench_job_id)
        if already:
            return already
        raise PermanentFailure(exc.message) from exc
    log.info("persist run=%s status=%s changed=%s", run_id, status, changed)
    return {"status": run.status, "changed": changed}


def _fail_if_pending(store: RunStore, run_id: str, t: Transition) -> dict:
    """Record a failed submission only while the run is PENDING: a run the Workbench
    accepted (a late or repeated failure task) keeps its status."""
    previous = store.transition_if_pending(store.get_run(run_id).id, t)
    changed = previous == lifecycle.PENDING
    if not changed and previous != lifecycle.FAILED:
        log.warning("persist run=%s FAILED ignored: the run is already %s", run_id, previous)
    log.info("persist run=%s status=FAILED changed=%s", run_id, changed)
    return {"status": lifecycle.FAILED if changed else previous, "changed": changed}


def _already_past_submitted(
    store: RunStore, run_id: str, status: str, workbench_job_id: str | None
) -> dict | None:
    """A repeated SUBMITTED for a run the poller has since moved on: nothing to do, except
    for an ended run, whose workflow (restarted by an operator) waits again: the poller is
    asked to finish it once more, with the run's outcome, instead of leaving it waiting."""
    if status != lifecycle.SUBMITTED:
        return None
    run = store.get_run(run_id)
    if run.workbench_job_id == workbench_job_id and run.status != lifecycle.PENDING:
        if run.is_terminal and store.mark_workflow_unsynced(run.id):
            log.info(
                "persist run=%s is %s: its restarted workflow is finished again", run_id, run.status
            )
        return {"status": run.status, "changed": False}
    return None
