"""The real Workbench client cancelling jobs on the stack's simulator, over HTTP."""

from __future__ import annotations

import uuid

import pytest

from batchcore.errors import WorkbenchError
from tests.integration.helpers import await_true


def _submit(workbench_client, **simulate) -> tuple[str, str]:
    """(run id, job id) of a new job on the simulator, simulated as asked."""
    run_id = str(uuid.uuid4())
    job = workbench_client.submit_job(
        run_id, "demo", "s3://in/cancel/", "s3://out/cancel/", {"simulate": simulate}
    )
    return run_id, job.job_id


def test_a_cancelled_job_reaches_cancelled_and_a_repeat_says_it_ended(workbench_client):
    _, job_id = _submit(workbench_client, duration_seconds=600, cancel_seconds=0.5)
    accepted = workbench_client.cancel_job(job_id)
    assert (accepted.job_id, accepted.already_ended) == (job_id, False)
    assert accepted.workbench_status in ("QUEUED", "RUNNING")

    job = await_true(
        lambda: (j := workbench_client.get_job(job_id)).workbench_status == "CANCELLED" and j,
        timeout=10,
        what=f"job {job_id} to be CANCELLED",
    )
    assert job.terminal and job.finished_at is not None

    again = workbench_client.cancel_job(job_id)
    assert (again.workbench_status, again.already_ended) == ("CANCELLED", True)


def test_a_job_that_ends_first_keeps_its_outcome(workbench_client, simulator):
    run_id, job_id = _submit(
        workbench_client, queue_seconds=0, duration_seconds=2, cancel_seconds=600
    )
    # Accepted (202) unless a busy machine let the job end before the cancel arrived (200).
    answer = workbench_client.cancel_job(job_id)
    assert answer.workbench_status == ("SUCCEEDED" if answer.already_ended else "RUNNING")
    job = await_true(
        lambda: (j := workbench_client.get_job(job_id)).terminal and j,
        timeout=10,
        what=f"job {job_id} to end",
    )
    assert job.workbench_status == "SUCCEEDED"
    (record,) = simulator.jobs(run_id)
    assert record["cancel"]["state"] == "too_late"


def test_a_cancel_refused_with_retry_after_is_transient_and_unknown_jobs_are_not_found(
    workbench_client, simulator
):
    _, job_id = _submit(workbench_client, duration_seconds=600)
    simulator.faults(job_ids=[job_id], error_5xx={"status": 503, "count": 1, "retry_after": 3})
    with pytest.raises(WorkbenchError) as refused:
        workbench_client.cancel_job(job_id)
    assert (refused.value.kind, refused.value.transient, refused.value.retry_after) == (
        "server_error",
        True,
        3.0,
    )
    assert workbench_client.cancel_job(job_id).already_ended is False

    with pytest.raises(WorkbenchError) as missing:
        workbench_client.cancel_job(f"wb-{uuid.uuid4().hex}")
    assert (missing.value.kind, missing.value.transient) == ("not_found", False)
