"""The logic behind submit_to_workbench and persist_run, free of the SDK."""

from __future__ import annotations

import logging

from batchcore import statuses, store
from batchcore.db import Database
from batchcore.errors import InvalidTransition, NotFound, WorkbenchError
from batchcore.workbench import WorkbenchClient

log = logging.getLogger(__name__)


class PermanentFailure(Exception):
    """Retrying cannot fix this; the worker turns it into a terminal task failure."""


class TransientFailure(Exception):
    """Retrying may fix this; Conductor retries the task per its definition."""


def submit(db: Database, client: WorkbenchClient, run_id: str) -> dict:
    """Start the run's Workbench job once; reuse a job id already known."""
    try:
        with db.transaction() as cur:
            run = store.get_run(cur, run_id)
    except NotFound as exc:
        raise PermanentFailure(exc.message) from exc
    if run["workbench_job_id"]:
        return {"workbench_job_id": run["workbench_job_id"], "reused": True}
    if statuses.is_terminal(run["status"]):
        raise PermanentFailure(
            f"Run {run_id} is already {run['status']}; no Workbench job was started"
        )
    try:
        job = client.submit_job(
            str(run["id"]),
            run["pipeline"],
            run["input_path_prefix"],
            run["output_path_prefix"],
            run["parameters"],
        )
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
    return {
        "workbench_job_id": job.job_id,
        "workbench_status": job.status,
        "reused": not job.created,
    }


def persist(
    db: Database,
    run_id: str,
    status: str,
    source: str,
    workbench_job_id: str | None = None,
    error_message: str | None = None,
    error_details: dict | None = None,
) -> dict:
    """Apply one transition with its audit event; repeating it changes nothing."""
    if status not in (statuses.SUBMITTED, statuses.FAILED):
        raise PermanentFailure(f"persist_run records SUBMITTED or FAILED, not {status!r}")
    if status == statuses.SUBMITTED and not workbench_job_id:
        raise PermanentFailure("persist_run needs workbench_job_id to record SUBMITTED")
    if status == statuses.SUBMITTED:
        t = store.Transition(
            status,
            source,
            "Workbench accepted the job",
            {"workbench_job_id": workbench_job_id},
            workbench_job_id=workbench_job_id,
        )
    else:
        reason = (error_message or "").strip() or "Submission to the Workbench failed"
        t = store.Transition(
            status,
            source,
            "Submission to the Workbench failed",
            error_details or {},
            error_message=reason,
            error_details=error_details or {},
        )
    try:
        with db.transaction() as cur:
            run, changed = store.transition(cur, run_id, t)
    except NotFound as exc:
        raise PermanentFailure(exc.message) from exc
    except InvalidTransition as exc:
        already = _already_past_submitted(db, run_id, status, workbench_job_id)
        if already:
            return already
        raise PermanentFailure(exc.message) from exc
    log.info("persist run=%s status=%s changed=%s", run_id, status, changed)
    return {"status": run["status"], "changed": changed}


def _already_past_submitted(
    db: Database, run_id: str, status: str, workbench_job_id: str | None
) -> dict | None:
    """A repeated SUBMITTED for a run the poller has since moved on: nothing to do."""
    if status != statuses.SUBMITTED:
        return None
    with db.transaction() as cur:
        run = store.get_run(cur, run_id)
    if run["workbench_job_id"] == workbench_job_id and run["status"] != statuses.PENDING:
        return {"status": run["status"], "changed": False}
    return None
