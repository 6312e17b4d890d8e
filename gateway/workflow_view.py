"""The JSON of the Conductor workflow behind a run, shaped from Conductor's execution."""

from __future__ import annotations

from datetime import UTC, datetime

# Conductor's ends of a workflow; anything else (RUNNING, PAUSED) may still change.
WORKFLOW_TERMINAL = frozenset({"COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED"})


def not_started() -> dict:
    """The answer for a run that has no workflow yet: every field null, no tasks."""
    return {
        "workflow_id": None,
        "status": None,
        "start_time": None,
        "end_time": None,
        "tasks": [],
    }


def shape(execution: dict) -> dict:
    """The contract's shape of a workflow execution (GET /api/workflow/{id}?includeTasks)."""
    tasks = sorted(execution.get("tasks") or [], key=lambda task: task.get("seq") or 0)
    return {
        "workflow_id": execution.get("workflowId"),
        "status": execution.get("status"),
        "start_time": from_millis(execution.get("startTime")),
        "end_time": from_millis(execution.get("endTime")),
        "tasks": [_task(task) for task in tasks],
    }


def _task(task: dict) -> dict:
    return {
        "reference_name": task.get("referenceTaskName"),
        "task_type": task.get("taskType"),
        "status": task.get("status"),
        # Conductor counts retries from 0; a user counts attempts from 1.
        "attempt": int(task.get("retryCount") or 0) + 1,
        "scheduled_at": from_millis(task.get("scheduledTime")),
        "started_at": from_millis(task.get("startTime")),
        "ended_at": from_millis(task.get("endTime")),
        "reason": task.get("reasonForIncompletion") or None,
    }


def from_millis(millis) -> str | None:
    """Conductor's epoch milliseconds as ISO 8601 UTC; 0 and absent mean 'not yet'."""
    if not isinstance(millis, int | float) or millis <= 0:
        return None
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds")
