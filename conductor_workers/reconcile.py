"""The reconciler: repairs runs that the normal path left behind, so none stays open forever."""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass

from batchcore import settings
from batchcore.conductor import ConductorClient, is_not_found
from batchcore.errors import ConductorUnavailable, DomainError
from batchcore.runs import lifecycle, workflow
from batchcore.runs.model import Run, Transition
from batchcore.runs.store import Repair, RunStore
from batchcore.workbench_errors import KIND_MALFORMED, KIND_UNAUTHORIZED, KIND_UNKNOWN_STATUS

from . import metrics, unstick

# Answers that retrying cannot fix: a run that gets only these for give_up_seconds ends FAILED.
GIVE_UP_KINDS = (KIND_UNKNOWN_STATUS, KIND_MALFORMED, KIND_UNAUTHORIZED)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcileConfig:
    """Thresholds of one reconcile pass."""

    pending_after_seconds: int = settings.default("RECONCILE_PENDING_SECONDS")
    check_workflows_every_seconds: int = 300
    batch: int = 50
    max_restarts: int = 3
    max_not_found_failures: int = 10
    give_up_seconds: int = settings.default("POLL_GIVE_UP_SECONDS")
    progress: unstick.ProgressConfig = unstick.ProgressConfig()

    @classmethod
    def from_settings(cls, cfg: settings.Settings) -> ReconcileConfig:
        """The thresholds the environment sets; the others keep their defaults."""
        return cls(
            pending_after_seconds=cfg.reconcile_pending_seconds,
            give_up_seconds=cfg.poll_give_up_seconds,
        )


def reconcile(store: RunStore, conductor: ConductorClient, cfg: ReconcileConfig) -> dict:
    """One pass over stuck PENDING runs, active runs' workflows, jobs the Workbench lost,
    runs whose status the Workbench's answers have not told for too long, and ended runs
    whose workflow still runs."""
    done: collections.Counter = collections.Counter()
    found = store.reconcile_candidates(
        cfg.pending_after_seconds,
        cfg.check_workflows_every_seconds,
        cfg.max_not_found_failures,
        cfg.batch,
        give_up_after=cfg.give_up_seconds,
        give_up_kinds=GIVE_UP_KINDS,
    )
    ended = store.ended_runs_to_finish(
        cfg.progress.finish_after_seconds, cfg.check_workflows_every_seconds, cfg.batch
    )
    for repair, runs in (
        # A live workflow is judged by whether it moves (unstick), not by its status alone.
        (unstick.checked(repair_pending, "still_running"), found.pending),
        (unstick.checked(check_active, "workflow_ok"), found.active),
        (fail_lost, found.lost),
        (give_up, found.given_up),
        (unstick.finish_ended, ended),
    ):
        for run in runs:
            try:
                done[repair(store, conductor, run, cfg)] += 1
            except DomainError as exc:
                log.warning("reconcile of run %s postponed: %s", run.id, exc.message)
                done["postponed"] += 1
    return dict(done)


def repair_pending(
    store: RunStore, conductor: ConductorClient, run: Run, cfg: ReconcileConfig
) -> str:
    """Attach, recover, restart or fail one run stuck in PENDING."""
    workflows = conductor.correlated(run.workflow_name, str(run.id), include_closed=True)
    live = _newest_first([w for w in workflows if w.get("status") in workflow.LIVE])
    latest = live[0] if live else next(iter(_newest_first(workflows)), None)
    ended = None
    if latest and latest["status"] not in workflow.LIVE:
        ended = conductor.get_workflow(latest["workflowId"])
    with store.locked_for_repair(run.id, lifecycle.PENDING) as locked:
        if locked is None:
            return "moved_on"
        if latest and latest["status"] in workflow.LIVE:
            _terminate_extras(conductor, locked.run, live[1:], latest["workflowId"])
            if locked.run.conductor_workflow_id != latest["workflowId"]:
                _replace_workflow(
                    locked,
                    latest["workflowId"],
                    "attached",
                    "Found the run's running workflow in Conductor",
                )
                return "attached"
            return "still_running"
        if ended:
            job_id = workflow.submitted_job_id(ended)
            reason = ended.get("reasonForIncompletion") or ended["status"]
            if job_id:
                locked.transition(
                    Transition(
                        lifecycle.SUBMITTED,
                        "reconciler",
                        "Workbench job found in the run's ended workflow",
                        {
                            "workbench_job_id": job_id,
                            "workflow_id": ended["workflowId"],
                            "workflow_status": ended["status"],
                        },
                        workbench_job_id=job_id,
                    )
                )
                return "recovered_job"
            if ended["status"] == "TERMINATED":
                _fail(
                    locked,
                    f"Conductor workflow {ended['workflowId']} was terminated "
                    f"before the run was submitted: {reason}",
                    {"workflow_id": ended["workflowId"], "workflow_status": "TERMINATED"},
                )
                return "failed"
        restarts = locked.restarts()
        if restarts >= cfg.max_restarts:
            _fail(
                locked,
                f"The run could not be started: its workflow was restarted "
                f"{restarts} times and never submitted the job",
                {"restarts": restarts},
            )
            return "failed"
        new_id = workflow.start_run_workflow(
            conductor, run, run.workflow_name, run.workflow_version
        )
        why = (
            f"workflow {ended['workflowId']} ended {ended['status']}"
            if ended
            else "no workflow was ever started"
        )
        _replace_workflow(
            locked,
            new_id,
            "restarted",
            f"Workflow restarted by the reconciler: {why}",
            previous_status=ended["status"] if ended else None,
        )
        return "restarted"


def check_active(
    store: RunStore, conductor: ConductorClient, run: Run, cfg: ReconcileConfig
) -> str:
    """Give an active run a live workflow again when its own vanished or was ended."""
    found = None
    if run.conductor_workflow_id:
        try:
            found = conductor.get_workflow(run.conductor_workflow_id, include_tasks=False)
        except ConductorUnavailable as exc:
            if not is_not_found(exc):
                raise
    if found and found["status"] in workflow.LIVE:
        store.mark_workflow_checked(run.id)
        return "workflow_ok"
    # At most one live workflow per run: one started earlier (by the gateway, or by a repair
    # whose id was never recorded) is adopted, not doubled; any others are terminated.
    live = _newest_first(
        [
            w
            for w in conductor.correlated(run.workflow_name, str(run.id))
            if w.get("status") in workflow.LIVE
        ]
    )
    with store.locked_for_repair(run.id, run.status) as locked:
        if locked is None:
            return "moved_on"
        if live:
            keep = live[0]["workflowId"]
            _terminate_extras(conductor, locked.run, live[1:], keep)
            _replace_workflow(
                locked,
                keep,
                "attached",
                f"Conductor workflow {run.conductor_workflow_id} is "
                f"{found['status'] if found else 'missing'}; found the run's running workflow",
                previous_status=found["status"] if found else "missing",
            )
            return "attached"
        # Safe: submit_to_workbench reuses the known job id and persist_run is idempotent.
        new_id = workflow.start_run_workflow(
            conductor, run, run.workflow_name, run.workflow_version
        )
        state = found["status"] if found else "missing"
        _replace_workflow(
            locked,
            new_id,
            "replaced",
            f"Conductor workflow {run.conductor_workflow_id} is {state}; "
            "started a new one that follows the run",
            previous_status=state,
        )
        return "replaced"


def fail_lost(store: RunStore, conductor: ConductorClient, run: Run, cfg: ReconcileConfig) -> str:
    """End a run whose job the Workbench keeps answering it does not know."""
    with store.locked_for_repair(run.id, lifecycle.SUBMITTED, lifecycle.RUNNING) as locked:
        if locked is None:
            return "moved_on"
        row = locked.run
        _fail(
            locked,
            f"The Workbench no longer knows job {row.workbench_job_id}: "
            f"{row.poll_kind_failures} status calls in a row answered not found",
            {
                "code": "not_found",
                "last_poll_error": row.last_poll_error,
                "consecutive_not_found": row.poll_kind_failures,
                "poll_failures": row.poll_failures,
            },
        )
        return "failed_lost"


def give_up(store: RunStore, conductor: ConductorClient, run: Run, cfg: ReconcileConfig) -> str:
    """End FAILED a run whose status calls have answered, for give_up_seconds, only what
    retrying cannot fix; error_details.code names the kind of answer."""
    with store.locked_for_repair(run.id, lifecycle.SUBMITTED, lifecycle.RUNNING) as locked:
        if locked is None:
            return "moved_on"
        row = locked.run
        kind = row.last_poll_error_kind
        if kind not in GIVE_UP_KINDS or row.poll_failing_since is None:
            return "moved_on"  # an answer came in the meantime
        since = row.poll_failing_since.isoformat()
        _fail(
            locked,
            f"The Workbench gave no usable status for job {row.workbench_job_id} since {since} "
            f"(more than {cfg.give_up_seconds} s; last answer: {kind}): {row.last_poll_error}",
            {
                "code": kind,
                "last_poll_error": row.last_poll_error,
                "poll_failures": row.poll_failures,
                "failing_since": since,
                "give_up_seconds": cfg.give_up_seconds,
            },
        )
        locked.cancel_job_later()  # it may still run, unseen: never leave it so
        metrics.RUNS_GIVEN_UP.labels(kind=kind).inc()
        return "gave_up"


def _newest_first(workflows: list[dict]) -> list[dict]:
    return sorted(workflows, key=lambda w: w.get("startTime") or 0, reverse=True)


def _terminate_extras(conductor: ConductorClient, run: Run, extras: list[dict], kept: str) -> None:
    """Terminate live workflows of the run besides the one kept (at most one per run)."""
    for extra in extras:
        conductor.terminate(
            extra["workflowId"], f"duplicate workflow of run {run.id}; {kept} is kept"
        )
        log.warning(
            "reconciler terminated duplicate workflow %s of run %s", extra["workflowId"], run.id
        )


def _replace_workflow(
    locked: Repair,
    workflow_id: str,
    action: str,
    message: str,
    previous_status: str | None = None,
) -> None:
    locked.replace_workflow(workflow_id, action, message, previous_status)
    log.info("reconciler %s run %s: %s", action, locked.run.id, message)


def _fail(locked: Repair, reason: str, details: dict) -> None:
    locked.transition(
        Transition(
            lifecycle.FAILED,
            "reconciler",
            reason,
            details,
            error_message=reason,
            error_details=details,
        )
    )
    log.warning("reconciler failed run %s: %s", locked.run.id, reason)
