"""Run statuses, their allowed transitions, and the one mapping from Workbench statuses."""

from __future__ import annotations

PENDING = "PENDING"
SUBMITTED = "SUBMITTED"
RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"

ALL = (PENDING, SUBMITTED, RUNNING, COMPLETED, FAILED)
TERMINAL = frozenset({COMPLETED, FAILED})
ACTIVE = frozenset({SUBMITTED, RUNNING})

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({SUBMITTED, FAILED}),
    SUBMITTED: frozenset({RUNNING, COMPLETED, FAILED}),
    RUNNING: frozenset({COMPLETED, FAILED}),
    COMPLETED: frozenset(),
    FAILED: frozenset(),
}

# The Workbench's job statuses and the run status each one means.
WORKBENCH_TO_RUN: dict[str, str] = {
    "QUEUED": SUBMITTED,
    "RUNNING": RUNNING,
    "SUCCEEDED": COMPLETED,
    "FAILED": FAILED,
    "CANCELLED": FAILED,
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
