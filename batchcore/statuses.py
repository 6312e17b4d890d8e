"""Kept for importers outside the runs package: the lifecycle lives in batchcore.runs.lifecycle."""

from batchcore.runs.lifecycle import (  # noqa: F401
    ACTIVE,
    ALL,
    ALLOWED_TRANSITIONS,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    SUBMITTED,
    TERMINAL,
    WORKBENCH_TO_RUN,
    can_transition,
    is_terminal,
    run_status_for,
)
