"""The Conductor workflow contract of a run: names, task references, live statuses."""

from __future__ import annotations

from typing import Protocol

from .model import Run

BATCH_WORKFLOW = "batch_pipeline_run"
# Task reference names inside batch_pipeline_run (workflow_defs/workflows/batch_pipeline_run.json).
SUBMIT_TASK_REF = "submit"
PERSIST_SUBMITTED_TASK_REF = "persist_submitted"
WAIT_TASK_REF = "await_completion"
PERSIST_FAILED_TASK_REF = "persist_failed"

# Workflow statuses in which a workflow can still make progress.
LIVE = ("RUNNING", "PAUSED")

# The poller loop: one batch_status_poller instance, found by its correlation id.
POLLER_WORKFLOW = "batch_status_poller"
POLLER_VERSION = 1
POLLER_CORRELATION_ID = "batch-status-poller"
# The task each loop iteration forks its sweeps as (the poller service's worker).
POLLER_SWEEP_TASK = "poll_status"


class WorkflowStarter(Protocol):
    """What starting a run's workflow needs from a Conductor client."""

    def start_workflow(self, name: str, version: int, correlation_id: str, inputs: dict) -> str:
        """Start a workflow and return its id."""


def start_input(run: Run) -> dict:
    """The inputs of batch_pipeline_run for `run`."""
    return {
        "pipeline_run_id": str(run.id),
        "input_path_prefix": run.input_path_prefix,
        "output_path_prefix": run.output_path_prefix,
    }


def start_run_workflow(conductor: WorkflowStarter, run: Run, name: str, version: int) -> str:
    """Start the pipeline's workflow for `run`, correlated by the run id; return its id."""
    return conductor.start_workflow(name, version, str(run.id), start_input(run))


def submitted_job_id(ended: dict) -> str | None:
    """The Workbench job id the workflow's submit task returned, if it completed."""
    for task in ended.get("tasks", []):
        if task.get("referenceTaskName") == SUBMIT_TASK_REF and task.get("status") in (
            "COMPLETED",
            "COMPLETED_WITH_ERRORS",
        ):
            job_id = (task.get("outputData") or {}).get("workbench_job_id")
            if job_id:
                return job_id
    return None
