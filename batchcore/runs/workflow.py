"""The Conductor workflow contract of a run: names, task references, live statuses."""

from __future__ import annotations

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
