"""Issue 12: each hostile Workbench answer, aimed by the running simulator at one run's status
call, reaches the real client; it gives a storable JobStatus the run store writes in its
one-statement batch (beside an innocent run), or an error of the right permanent kind."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from batchcore.errors import WorkbenchError
from batchcore.runs import lifecycle
from batchcore.runs.model import NewRun, PollOutcome, Transition
from batchcore.runs.store import RunStore
from batchcore.workbench import JobStatus, WorkbenchClient
from batchcore.workbench_normalise import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    MAX_ERROR_MESSAGE_CHARS,
)

FAILING = {"outcome": "FAILED", "error_message": "boom", "queue_seconds": 0, "duration_seconds": 0}


def submitted(store: RunStore, client: WorkbenchClient) -> tuple[uuid.UUID, str]:
    """A SUBMITTED run whose job the simulator has, already FAILED there; (run id, job id)."""
    prefix = uuid.uuid4().hex
    new = NewRun("demo-batch", "BATCH", f"s3://in/{prefix}/", f"s3://out/{prefix}/", {})
    _, run, _, _ = store.create_run(new)
    job = client.submit_job(
        str(run.id),
        "demo-batch",
        new.input_path_prefix,
        new.output_path_prefix,
        {"simulate": FAILING},
    )
    store.transition(
        run.id, Transition("SUBMITTED", "test", "submitted", workbench_job_id=job.job_id)
    )
    return run.id, job.job_id


def outcome(run_id: uuid.UUID, job: JobStatus, lease_token=None) -> PollOutcome:
    """What a poll of a SUBMITTED run, claimed under `lease_token`, records for this answer."""
    return PollOutcome(
        run_id=str(run_id),
        expected="SUBMITTED",
        new_status=job.run_status,
        message=lifecycle.message_for(job.workbench_status, job.error_message),
        details=job.event_details(),
        error_message=lifecycle.error_message_for(job.workbench_status, job.error_message),
        started_at=job.started_at,
        finished_at=job.finished_at,
        lease_token=lease_token,
    )


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        ({"poison_error_message": {"variant": "nul"}}, "message"),
        ({"poison_error_message": {"variant": "huge"}}, "message"),
        ({"poison_error_message": {"variant": "surrogate"}}, "message"),
        ({"odd_timestamps": {"variant": "offset"}}, "timestamps"),
        ({"odd_timestamps": {"variant": "year_0001"}}, "timestamps"),
        ({"odd_timestamps": {"variant": "year_9999"}}, "timestamps"),
    ],
)
def test_a_poison_answer_is_normalised_and_its_batch_is_written(
    database, workbench_client, simulator, fault, check
):
    store = RunStore(database)
    poisoned, job_id = submitted(store, workbench_client)
    innocent, innocent_job = submitted(store, workbench_client)
    kind = next(iter(fault))
    simulator.faults(**{kind: {**fault[kind], "count": 1, "only": "status"}}, job_ids=[job_id])
    before = datetime.now(UTC)

    job = workbench_client.get_job(job_id)
    assert simulator.armed() == {}, "the fault fired on this call"
    assert job.normalised, "the client said what it changed"
    if check == "message":
        assert "\x00" not in job.error_message and len(job.error_message) <= MAX_ERROR_MESSAGE_CHARS
    else:
        assert before - timedelta(seconds=1) <= job.started_at <= datetime.now(UTC)
        assert job.finished_at.utcoffset() == timedelta(0)
        assert job.normalised["finished_at_raw"]

    held = {run.id: run.poll_lease_token for run in store.claim_due_runs(10, 60)}
    innocent_answer = workbench_client.get_job(innocent_job)
    moved = store.apply_poll_results(
        [
            outcome(poisoned, job, held[poisoned]),
            outcome(innocent, innocent_answer, held[innocent]),
        ],
        5,
    )
    assert {row["id"] for row in moved} == {poisoned, innocent}
    run, events = store.get_run_with_history(poisoned)
    assert run.status == "FAILED"
    assert run.error_message == job.error_message
    assert EARLIEST_TIMESTAMP <= run.completed_at < LATEST_TIMESTAMP
    assert events[-1]["details"]["normalised"] == job.normalised


def test_the_raw_poison_would_have_failed_the_whole_batch(database, workbench_client):
    """The hazard the normalisation removes: one NUL fails the one statement for all runs."""
    store = RunStore(database)
    poisoned, _ = submitted(store, workbench_client)
    innocent, _ = submitted(store, workbench_client)
    raw = PollOutcome(str(poisoned), "SUBMITTED", "FAILED", "failed", {}, "disk\x00full")
    with pytest.raises(ValueError, match="NUL"):
        store.apply_poll_results([raw, PollOutcome(str(innocent), "SUBMITTED", "FAILED")], 5)
    odd = datetime.fromisoformat("2026-11-28T10:00:00+20:00")
    late = PollOutcome(str(poisoned), "SUBMITTED", "FAILED", "failed", {}, "x", None, odd)
    with pytest.raises(psycopg2.Error):
        store.apply_poll_results([late], 5)
    assert store.get_run(innocent).status == "SUBMITTED"


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ({"unknown_status": {"status": "CANCELLING"}}, "unknown_status"),
        ({"html_200": {}}, "malformed"),
        ({"malformed_json": {}}, "malformed"),
    ],
)
def test_an_answer_retrying_cannot_fix_is_a_permanent_error_of_its_kind(
    database, workbench_client, simulator, stack_env, fault, kind
):
    _, job_id = submitted(RunStore(database), workbench_client)
    name = next(iter(fault))
    simulator.faults(**{name: {**fault[name], "count": 1, "only": "status"}}, job_ids=[job_id])
    with pytest.raises(WorkbenchError) as info:
        workbench_client.get_job(job_id)
    err = info.value
    assert (err.transient, err.kind) == (False, kind)
    text = err.message + repr(err.details)
    assert stack_env["WORKBENCH_API_TOKEN"] not in text
    assert "sso.internal" not in err.message and "session=abc123" not in text
    assert workbench_client.get_job(job_id).workbench_status == "FAILED"  # one call only


@pytest.mark.parametrize("value", ["1e12", "Fri, 31 Dec 9999 23:59:59 GMT", "-5"])
def test_an_absurd_retry_after_is_treated_as_absent(database, workbench_client, simulator, value):
    _, job_id = submitted(RunStore(database), workbench_client)
    simulator.faults(
        rate_limit={"count": 1, "retry_after": value, "only": "status"}, job_ids=[job_id]
    )
    with pytest.raises(WorkbenchError) as info:
        workbench_client.get_job(job_id)
    assert (info.value.kind, info.value.transient, info.value.retry_after) == (
        "rate_limited",
        True,
        None,
    )


def test_a_token_refused_after_rotation_is_unauthorized(database, workbench_client, stack_env):
    _, job_id = submitted(RunStore(database), workbench_client)
    old = WorkbenchClient(stack_env["WORKBENCH_API_URL"], "rotated-away-token-0123456789")
    with old, pytest.raises(WorkbenchError) as info:
        old.get_job(job_id)
    assert (info.value.kind, info.value.transient, info.value.status_code) == (
        "unauthorized",
        False,
        401,
    )
    assert "WORKBENCH_API_TOKEN" in info.value.message


def test_an_answer_trickled_past_the_answer_timeout_is_cut_off(
    database, workbench_client, simulator, stack_env
):
    _, job_id = submitted(RunStore(database), workbench_client)
    simulator.faults(trickle={"count": 1, "seconds": 8, "only": "status"}, job_ids=[job_id])
    with WorkbenchClient(
        stack_env["WORKBENCH_API_URL"], stack_env["WORKBENCH_API_TOKEN"], read_timeout=1.0
    ) as impatient:
        started = datetime.now(UTC)
        with pytest.raises(WorkbenchError) as info:
            impatient.get_job(job_id)
        took = datetime.now(UTC) - started
    assert (info.value.kind, info.value.transient) == ("timeout", True)
    assert "did not finish its answer within 3 s" in info.value.message
    assert took < timedelta(seconds=6)
