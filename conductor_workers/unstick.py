"""The reconciler's progress repairs: a run's workflow that stopped moving is re-decided, then
replaced; an ended run's workflow that still runs is finished."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from batchcore import registration
from batchcore.conductor import ConductorClient, is_not_found
from batchcore.errors import ConductorUnavailable
from batchcore.runs import lifecycle, workflow
from batchcore.runs.model import Run, Transition
from batchcore.runs.store import Repair, RunStore

from . import progress

log = logging.getLogger(__name__)

SOURCE = "reconciler"


def _registered_timeouts() -> dict[str, progress.TaskTimeouts]:
    return progress.registered_timeouts(registration.load("tasks"))


@dataclass(frozen=True)
class ProgressConfig:
    """How the reconciler judges and repairs a workflow that does not move."""

    margin_seconds: int = progress.MARGIN_SECONDS
    # Replacements of one run's workflow; past them a PENDING run fails, an active one is
    # left to the poller (which follows its job without the workflow).
    max_replacements: int = 3
    # An ended run whose workflow the poller has not finished this long after it ended.
    finish_after_seconds: int = 60
    timeouts: Mapping[str, progress.TaskTimeouts] = field(
        default_factory=_registered_timeouts, hash=False, compare=False
    )


def now_ms() -> int:
    """Epoch milliseconds, Conductor's clock unit."""
    return int(time.time() * 1000)


def checked(repair: Callable, healthy: str) -> Callable:
    """`repair`, followed by a progress check of the run's workflow when it found it live."""

    def repair_then_check(store: RunStore, conductor: ConductorClient, run: Run, cfg) -> str:
        done = repair(store, conductor, run, cfg)
        if done != healthy:
            return done
        return check_progress(store, conductor, run, cfg.progress) or done

    repair_then_check.__name__ = repair.__name__
    return repair_then_check


def check_progress(
    store: RunStore,
    conductor: ConductorClient,
    run: Run,
    cfg: ProgressConfig,
    clock: Callable[[], int] = now_ms,
) -> str | None:
    """None while the run's live workflow moves; else re-decide it, and when that does not
    move it, replace it (at most cfg.max_replacements times); return what was done."""
    wf_id = run.conductor_workflow_id
    if not wf_id:
        return None
    verdict = _judge(conductor.get_workflow(wf_id), cfg, clock)
    if not verdict.stuck:
        return None
    conductor.decide(wf_id)
    stuck_wf = conductor.get_workflow(wf_id)
    after = _judge(stuck_wf, cfg, clock)
    with store.locked_for_repair(run.id, run.status) as locked:
        if locked is None or locked.run.conductor_workflow_id != wf_id:
            return "moved_on"
        locked.note(
            "re-decided",
            f"Conductor workflow {wf_id} was stuck at {verdict.task_ref or 'its next decision'} "
            f"({verdict.reason}; {verdict.overdue_seconds} s past the limit): asked Conductor "
            f"to decide it again; it {'did not move' if after.stuck else 'moved'}",
            {"workflow_id": wf_id, **verdict.details(), "moved": not after.stuck},
        )
        log.warning("reconciler re-decided stuck workflow %s of run %s", wf_id, run.id)
        if not after.stuck:
            return "re_decided"
        return _replace(conductor, locked, run, stuck_wf, after, cfg)


def _replace(
    conductor: ConductorClient,
    locked: Repair,
    run: Run,
    stuck_wf: dict,
    verdict: progress.Verdict,
    cfg: ProgressConfig,
) -> str:
    wf_id = stuck_wf["workflowId"]
    replaced = locked.count_actions("replaced")
    if replaced >= cfg.max_replacements:
        if locked.run.status != lifecycle.PENDING:
            return "left_stuck"  # the poller follows the job; its end finishes the workflow
        job_id = workflow.submitted_job_id(stuck_wf)
        if job_id:  # the job exists: the run follows it, never failed with a job running
            conductor.terminate(wf_id, f"stuck ({verdict.reason}); the run follows job {job_id}")
            locked.transition(
                Transition(
                    lifecycle.SUBMITTED,
                    SOURCE,
                    "Workbench job found in the run's stuck workflow",
                    {"workbench_job_id": job_id, "workflow_id": wf_id, **verdict.details()},
                    workbench_job_id=job_id,
                )
            )
            return "recovered_job"
        reason = (
            f"The run could not be started: its workflow was stuck and replaced {replaced} "
            f"times ({verdict.reason} at {verdict.task_ref})"
        )
        conductor.terminate(wf_id, reason)
        details = {"workflow_id": wf_id, "replacements": replaced, **verdict.details()}
        locked.transition(
            Transition(
                lifecycle.FAILED,
                SOURCE,
                reason,
                details,
                error_message=reason,
                error_details=details,
            )
        )
        return "failed"
    reason = (
        f"stuck at {verdict.task_ref or 'its next decision'} ({verdict.reason}) and not moved "
        "by a new decision; replaced by the reconciler"
    )
    conductor.terminate(wf_id, reason)
    # Safe: submit_to_workbench is idempotent by run id (no second job), persist_run too.
    new_id = workflow.start_run_workflow(conductor, run, run.workflow_name, run.workflow_version)
    locked.replace_workflow(
        new_id,
        "replaced",
        f"Conductor workflow {wf_id} terminated ({reason}); started {new_id} for the run",
        previous_status="STUCK",
        extra={**verdict.details(), "replacement": replaced + 1},
    )
    log.warning("reconciler replaced stuck workflow %s of run %s by %s", wf_id, run.id, new_id)
    return "replaced"


def finish_ended(
    store: RunStore,
    conductor: ConductorClient,
    run: Run,
    cfg,
    clock: Callable[[], int] = now_ms,
) -> str:
    """Finish the workflow of an ended run that still runs: complete its WAIT with the run's
    outcome, else re-decide it; terminate it when it still does not move. The run is marked
    synced only once its workflow has left RUNNING."""
    progress_cfg: ProgressConfig = cfg.progress
    wf_id = run.conductor_workflow_id
    if not wf_id:
        return _end_unrecorded(store, conductor, run)
    found = _workflow_or_none(conductor, wf_id)
    done: list[str] = []
    verdict = progress.MOVING
    if found is not None and found["status"] in workflow.LIVE:
        if _is_open(found, workflow.WAIT_TASK_REF):
            output = {
                "status": run.status,
                "workbench_job_id": run.workbench_job_id,
                "error_message": run.error_message,
            }
            if conductor.complete_task(wf_id, workflow.WAIT_TASK_REF, "COMPLETED", output):
                done.append(f"completed its {workflow.WAIT_TASK_REF} task")
        elif run.status == lifecycle.CANCELLED:
            # Cancelled before its job was asked for, and Conductor was not told then: what
            # is left of the workflow must not run (its submit task would only refuse).
            conductor.terminate(wf_id, f"Run cancelled by {run.cancel_requested_by}")
            done.append("terminated it")
            found = {**found, "status": "TERMINATED"}
        else:
            verdict = _judge(found, progress_cfg, clock)
            if verdict.stuck:
                conductor.decide(wf_id)
                done.append("asked Conductor to decide it again")
        found = conductor.get_workflow(wf_id)
        after = _judge(found, progress_cfg, clock)
        if found["status"] in workflow.LIVE and verdict.stuck and after.stuck:
            conductor.terminate(
                wf_id, f"run {run.id} ended {run.status}; its workflow was stuck ({after.reason})"
            )
            done.append("terminated it")
            found = {**found, "status": "TERMINATED"}
    with store.locked_for_repair(run.id, run.status) as locked:
        if locked is None:
            return "moved_on"
        if found is not None and found["status"] in workflow.LIVE:
            locked.mark_checked()
            if done:
                _note_finish(locked, wf_id, done, "RUNNING", verdict)
            return "finishing" if done else "ended_workflow_moving"
        locked.mark_synced()
        if done:
            _note_finish(locked, wf_id, done, found["status"], verdict)
            return "synced"
        return "already_synced"


def _end_unrecorded(store: RunStore, conductor: ConductorClient, run: Run) -> str:
    """Terminate any live workflow of an ended run that never recorded one: its start failed
    at the gateway, yet Conductor may have started it (and, never decided, it runs for ever)."""
    live = conductor.correlated(run.workflow_name, str(run.id))
    with store.locked_for_repair(run.id, run.status) as locked:
        if locked is None:
            return "moved_on"
        reason = f"run {run.id} ended {run.status} before this workflow was recorded"
        for found in live:
            conductor.terminate(found["workflowId"], reason)
        locked.mark_synced()
        if not live:
            return "already_synced"
        ids = [found["workflowId"] for found in live]
        locked.note(
            "terminated",
            f"The run ended {run.status} without a workflow, yet Conductor ran "
            f"{', '.join(ids)}: terminated",
            {"workflow_ids": ids},
        )
        log.warning("reconciler terminated unrecorded workflows %s of run %s", ids, run.id)
        return "terminated_unrecorded"


def _note_finish(
    locked: Repair, wf_id: str, done: list[str], status: str, verdict: progress.Verdict
) -> None:
    action = "synced" if status not in workflow.LIVE else "finishing"
    locked.note(
        action,
        f"The run ended {locked.run.status} but Conductor workflow {wf_id} still ran: "
        f"{', then '.join(done)}; the workflow is {status}",
        {
            "workflow_id": wf_id,
            "workflow_status": status,
            "steps": done,
            **(verdict.details() if verdict.stuck else {}),
        },
    )
    log.warning("reconciler %s run %s: %s", action, locked.run.id, "; ".join(done))


def _judge(found: dict, cfg: ProgressConfig, clock: Callable[[], int]) -> progress.Verdict:
    return progress.judge(found, clock(), cfg.timeouts, cfg.margin_seconds)


def _is_open(found: dict, task_ref: str) -> bool:
    return any(
        t.get("referenceTaskName") == task_ref and t.get("status") in progress.OPEN
        for t in found.get("tasks", [])
    )


def _workflow_or_none(conductor: ConductorClient, wf_id: str) -> dict | None:
    try:
        return conductor.get_workflow(wf_id)
    except ConductorUnavailable as exc:
        if is_not_found(exc):
            return None
        raise
