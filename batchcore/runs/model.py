"""The typed run and its lifecycle."""

from __future__ import annotations

# The run's public JSON field names, in the order the API renders them.
PUBLIC_FIELDS = (
    "id",
    "pipeline",
    "mode",
    "status",
    "input_path_prefix",
    "output_path_prefix",
    "parameters",
    "workbench_job_id",
    "conductor_workflow_id",
    "error_message",
    "error_details",
    "created_at",
    "updated_at",
    "submitted_at",
    "started_at",
    "completed_at",
    # Beyond the contract's list: the poller's view of the run, for troubleshooting.
    "poll_failures",
    "last_poll_error",
    "last_polled_at",
)
# An audit event's public JSON field names.
HISTORY_FIELDS = ("status", "previous_status", "at", "source", "message", "details")
