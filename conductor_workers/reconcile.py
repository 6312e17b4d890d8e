"""The reconciler: repairs runs that the normal path left behind, so none stays open forever."""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass

from psycopg2.extras import Json

from batchcore import statuses, store
from batchcore.conductor import ConductorClient, is_not_found
from batchcore.db import Database
from batchcore.errors import ConductorUnavailable, DomainError
from batchcore.queries import Q

log = logging.getLogger(__name__)

LIVE = ("RUNNING", "PAUSED")


@dataclass(frozen=True)
class ReconcileConfig:
    """Thresholds of one reconcile pass."""

    pending_after_seconds: int = 120
    check_workflows_every_seconds: int = 300
    batch: int = 50
    max_restarts: int = 3
    max_not_found_failures: int = 10


def reconcile(db: Database, conductor: ConductorClient, cfg: ReconcileConfig) -> dict:
    """One pass over stuck PENDING runs, active runs' workflows, and jobs the Workbench lost."""
    done: collections.Counter = collections.Counter()
    with db.transaction() as cur:
        cur.execute(
            Q["stuck_pending_runs"], {"older_than": cfg.pending_after_seconds, "limit": cfg.batch}
        )
        pending = cur.fetchall()
        cur.execute(
            Q["active_runs_to_check"],
            {"every": cfg.check_workflows_every_seconds, "limit": cfg.batch},
        )
        active = cur.fetchall()
        cur.execute(
            Q["runs_lost_on_workbench"],
            {"min_failures": cfg.max_not_found_failures, "limit": cfg.batch},
        )
        lost = cur.fetchall()
    for repair, runs in ((repair_pending, pending), (check_active, active), (fail_lost, lost)):
        for run in runs:
            try:
                done[repair(db, conductor, run, cfg)] += 1
            except DomainError as exc:
                log.warning("reconcile of run %s postponed: %s", run["id"], exc.message)
                done["postponed"] += 1
    return dict(done)


def repair_pending(
    db: Database, conductor: ConductorClient, run: dict, cfg: ReconcileConfig
) -> str:
    """Attach, recover, restart or fail one run stuck in PENDING."""
    workflows = conductor.correlated(run["workflow_name"], str(run["id"]), include_closed=True)
    latest = max(workflows, key=lambda w: w.get("startTime") or 0, default=None)
    ended = None
    if latest and latest["status"] not in LIVE:
        ended = conductor.get_workflow(latest["workflowId"])
    with db.transaction() as cur:
        cur.execute(Q["lock_run_if_status"], {"id": run["id"], "status": statuses.PENDING})
        row = cur.fetchone()
        if row is None:
            return "moved_on"
        if latest and latest["status"] in LIVE:
            if row["conductor_workflow_id"] != latest["workflowId"]:
                _replace_workflow(
                    cur,
                    row,
                    latest["workflowId"],
                    "attached",
                    "Found the run's running workflow in Conductor",
                )
                return "attached"
            return "still_running"
        if ended:
            job_id = _submitted_job_id(ended)
            reason = ended.get("reasonForIncompletion") or ended["status"]
            if job_id:
                store.transition(
                    cur,
                    row["id"],
                    store.Transition(
                        statuses.SUBMITTED,
                        "reconciler",
                        "Workbench job found in the run's ended workflow",
                        {
                            "workbench_job_id": job_id,
                            "workflow_id": ended["workflowId"],
                            "workflow_status": ended["status"],
                        },
                        workbench_job_id=job_id,
                    ),
                )
                return "recovered_job"
            if ended["status"] == "TERMINATED":
                _fail(
                    cur,
                    row,
                    f"Conductor workflow {ended['workflowId']} was terminated "
                    f"before the run was submitted: {reason}",
                    {"workflow_id": ended["workflowId"], "workflow_status": "TERMINATED"},
                )
                return "failed"
        cur.execute(Q["count_reconciler_restarts"], {"id": row["id"]})
        restarts = cur.fetchone()["restarts"]
        if restarts >= cfg.max_restarts:
            _fail(
                cur,
                row,
                f"The run could not be started: its workflow was restarted "
                f"{restarts} times and never submitted the job",
                {"restarts": restarts},
            )
            return "failed"
        new_id = conductor.start_workflow(
            run["workflow_name"],
            run["workflow_version"],
            str(run["id"]),
            {
                "pipeline_run_id": str(run["id"]),
                "input_path_prefix": run["input_path_prefix"],
                "output_path_prefix": run["output_path_prefix"],
            },
        )
        why = (
            f"workflow {ended['workflowId']} ended {ended['status']}"
            if ended
            else "no workflow was ever started"
        )
        _replace_workflow(
            cur,
            row,
            new_id,
            "restarted",
            f"Workflow restarted by the reconciler: {why}",
            previous_status=ended["status"] if ended else None,
        )
        return "restarted"


def check_active(db: Database, conductor: ConductorClient, run: dict, cfg: ReconcileConfig) -> str:
    """Give an active run a live workflow again when its own vanished or was ended."""
    workflow = None
    if run["conductor_workflow_id"]:
        try:
            workflow = conductor.get_workflow(run["conductor_workflow_id"], include_tasks=False)
        except ConductorUnavailable as exc:
            if not is_not_found(exc):
                raise
    with db.transaction() as cur:
        if workflow and workflow["status"] in LIVE:
            cur.execute(Q["mark_workflow_checked"], {"id": run["id"]})
            return "workflow_ok"
        cur.execute(Q["lock_run_if_status"], {"id": run["id"], "status": run["status"]})
        row = cur.fetchone()
        if row is None:
            return "moved_on"
        # Safe: submit_to_workbench reuses the known job id and persist_run is idempotent.
        new_id = conductor.start_workflow(
            run["workflow_name"],
            run["workflow_version"],
            str(run["id"]),
            {
                "pipeline_run_id": str(run["id"]),
                "input_path_prefix": run["input_path_prefix"],
                "output_path_prefix": run["output_path_prefix"],
            },
        )
        state = workflow["status"] if workflow else "missing"
        _replace_workflow(
            cur,
            row,
            new_id,
            "replaced",
            f"Conductor workflow {run['conductor_workflow_id']} is {state}; "
            "started a new one that follows the run",
            previous_status=state,
        )
        return "replaced"


def fail_lost(db: Database, conductor: ConductorClient, run: dict, cfg: ReconcileConfig) -> str:
    """End a run whose job the Workbench keeps answering it does not know."""
    with db.transaction() as cur:
        cur.execute(Q["lock_run_if_status"], {"id": run["id"], "status": statuses.SUBMITTED})
        row = cur.fetchone()
        if row is None:
            cur.execute(Q["lock_run_if_status"], {"id": run["id"], "status": statuses.RUNNING})
            row = cur.fetchone()
        if row is None:
            return "moved_on"
        _fail(
            cur,
            row,
            f"The Workbench no longer knows job {row['workbench_job_id']}: "
            f"{row['poll_failures']} status calls in a row answered not found",
            {"last_poll_error": row["last_poll_error"], "poll_failures": row["poll_failures"]},
        )
        return "failed_lost"


def _submitted_job_id(workflow: dict) -> str | None:
    for task in workflow.get("tasks", []):
        if task.get("referenceTaskName") == "submit" and task.get("status") in (
            "COMPLETED",
            "COMPLETED_WITH_ERRORS",
        ):
            job_id = (task.get("outputData") or {}).get("workbench_job_id")
            if job_id:
                return job_id
    return None


def _replace_workflow(
    cur, row: dict, workflow_id: str, action: str, message: str, previous_status: str | None = None
) -> None:
    cur.execute(Q["replace_workflow_id"], {"id": row["id"], "workflow_id": workflow_id})
    details = {
        "action": action,
        "workflow_id": workflow_id,
        "previous_workflow_id": row["conductor_workflow_id"],
    }
    if previous_status:
        details["previous_workflow_status"] = previous_status
    cur.execute(
        Q["insert_note"],
        {
            "run_id": row["id"],
            "status": row["status"],
            "message": message,
            "details": Json(details),
        },
    )
    log.info("reconciler %s run %s: %s", action, row["id"], message)


def _fail(cur, row: dict, reason: str, details: dict) -> None:
    store.transition(
        cur,
        row["id"],
        store.Transition(
            statuses.FAILED,
            "reconciler",
            reason,
            details,
            error_message=reason,
            error_details=details,
        ),
    )
    log.warning("reconciler failed run %s: %s", row["id"], reason)
