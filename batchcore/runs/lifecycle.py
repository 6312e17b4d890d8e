"""A run's lifecycle, stated once: its statuses, the moves allowed, the Workbench mapping.

The database trigger (sql/migrations) repeats the allowed moves as the last guard.
"""

from __future__ import annotations

PENDING = "PENDING"
SUBMITTED = "SUBMITTED"
RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"

ALL = (PENDING, SUBMITTED, RUNNING, COMPLETED, FAILED, CANCELLED)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})
ACTIVE = frozenset({SUBMITTED, RUNNING})

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({SUBMITTED, FAILED, CANCELLED}),
    SUBMITTED: frozenset({RUNNING, COMPLETED, FAILED, CANCELLED}),
    RUNNING: frozenset({COMPLETED, FAILED, CANCELLED}),
    COMPLETED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}

# How far along each status is: the poller only ever moves a run forward.
ORDER = {PENDING: 0, SUBMITTED: 1, RUNNING: 2, COMPLETED: 3, FAILED: 3, CANCELLED: 3}

# The Workbench's job statuses and the run status each one means. A job cancelled at the
# Workbench by someone else fails the run; a cancel this service sent is judged by its reason
# (batchcore.runs.cancelling).
WORKBENCH_TO_RUN: dict[str, str] = {
    "QUEUED": SUBMITTED,
    "RUNNING": RUNNING,
    "SUCCEEDED": COMPLETED,
    "FAILED": FAILED,
    "CANCELLED": FAILED,
}

# The Workbench's job statuses that never change again.
WORKBENCH_FINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})

# The audit message of a move the Workbench reported, by its job status.
MESSAGES = {
    "RUNNING": "Workbench job is running",
    "SUCCEEDED": "Workbench job succeeded",
    "FAILED": "Workbench job failed",
    "CANCELLED": "Workbench job was cancelled",
}
# The run's error_message when the Workbench ended the job without one, by its job status.
ERROR_MESSAGES = {
    "FAILED": "The Workbench job failed",
    "CANCELLED": "Cancelled at the Workbench",
}


def is_terminal(status: str) -> bool:
    """True when the status can never change again."""
    return status in TERMINAL


def can_transition(current: str, new: str) -> bool:
    """True when the lifecycle allows moving from `current` to `new`."""
    return new in ALLOWED_TRANSITIONS.get(current, frozenset())


def run_status_for(workbench_status: str) -> str:
    """The run status for a Workbench job status; KeyError for one the contract lacks."""
    return WORKBENCH_TO_RUN[workbench_status]


def forward(current: str, target: str) -> str | None:
    """`target` when moving there is allowed and goes forward; None for the same status,
    a step back, or a move out of a terminal status."""
    if target == current or is_terminal(current) or ORDER[target] < ORDER[current]:
        return None
    return target if can_transition(current, target) else None


def message_for(workbench_status: str, error_message: str | None = None) -> str:
    """The audit message of a move reported by the Workbench, with the job's error if any."""
    message = MESSAGES.get(workbench_status, f"Workbench job {workbench_status}")
    if error_message and WORKBENCH_TO_RUN.get(workbench_status) == FAILED:
        message = f"{message}: {error_message}"
    return message


def error_message_for(workbench_status: str, error_message: str | None = None) -> str | None:
    """The run's error_message for a move the Workbench reported: the job's own message, else
    what its ending means; None when the job did not fail."""
    if WORKBENCH_TO_RUN.get(workbench_status) != FAILED:
        return None
    return error_message or ERROR_MESSAGES.get(workbench_status, ERROR_MESSAGES["FAILED"])
