"""Task workers of the submission service: submit_to_workbench and persist_run."""

# No `from __future__ import annotations`: the SDK maps task input by the real annotation
# types, and only plain types (str, dict) convert cleanly.
from conductor.client.worker.exception import NonRetryableException
from conductor.client.worker.worker_task import worker_task

from .. import resources, submission
from . import dispatch

# Both task types alike: a run's two hops wait for the same kind of poll.
RUNNER = dispatch.configure()


@worker_task(task_definition_name="submit_to_workbench", **RUNNER)
def submit_to_workbench(
    pipeline_run_id: str, input_path_prefix: str = "", output_path_prefix: str = ""
) -> dict:
    """Start the run's Workbench job (the run row, not the input, is the truth)."""
    try:
        return submission.submit(resources.store(), resources.workbench(), pipeline_run_id)
    except submission.PermanentFailure as exc:
        raise NonRetryableException(str(exc)) from exc
    except submission.TransientFailure as exc:
        raise RuntimeError(str(exc)) from exc


@worker_task(task_definition_name="persist_run", **RUNNER)
def persist_run(
    pipeline_run_id: str,
    status: str,
    source: str = "persist",
    workbench_job_id: str | None = None,
    error_message: str | None = None,
    error_details: dict | None = None,
) -> dict:
    """Record one status transition of the run with its audit event."""
    try:
        return submission.persist(
            resources.store(),
            pipeline_run_id,
            status,
            source,
            workbench_job_id=workbench_job_id,
            error_message=error_message,
            error_details=error_details,
        )
    except submission.PermanentFailure as exc:
        raise NonRetryableException(str(exc)) from exc
