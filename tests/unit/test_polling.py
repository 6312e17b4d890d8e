"""Req 3.2/3.3: the poller's decisions and its retry schedule, with fakes."""

from __future__ import annotations

import random

import pytest

from batchcore.errors import WorkbenchError
from batchcore.runs.lifecycle import run_status_for
from batchcore.runs.model import Run
from batchcore.workbench import JobStatus
from conductor_workers import polling


def job(status: str) -> JobStatus:
    return JobStatus("wb-1", status, run_status_for(status), None, None, None)


@pytest.mark.parametrize(
    ("current", "workbench", "expected"),
    [
        ("SUBMITTED", "QUEUED", None),
        ("SUBMITTED", "RUNNING", "RUNNING"),
        ("SUBMITTED", "SUCCEEDED", "COMPLETED"),
        ("SUBMITTED", "FAILED", "FAILED"),
        ("RUNNING", "SUCCEEDED", "COMPLETED"),
        ("RUNNING", "CANCELLED", "FAILED"),
        ("RUNNING", "RUNNING", None),
        ("RUNNING", "QUEUED", None),  # backwards: ignored and logged
        ("COMPLETED", "FAILED", None),  # out of a terminal status: ignored
        ("FAILED", "SUCCEEDED", None),
    ],
)
def test_req_3_4_decide_moves_only_forward(current, workbench, expected):
    assert polling.decide(current, job(workbench)) == expected


class FlakyClient:
    """Fails `failures` times with the given error, then answers."""

    def __init__(self, failures: int, error: WorkbenchError):
        self.failures, self.error, self.calls = failures, error, 0

    def get_job(self, job_id, timeout=None):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return job("RUNNING")


def transient(retry_after=None):
    return WorkbenchError(
        "HTTP 503", transient=True, kind="server_error", status_code=503, retry_after=retry_after
    )


def test_req_3_7_transient_errors_are_retried_with_growing_jittered_delays():
    cfg = polling.SweepConfig(max_retries=4, retry_base_seconds=0.1, retry_cap_seconds=10)
    schedules = []
    for seed in range(20):
        sleeps = []
        client = FlakyClient(4, transient())
        assert polling.fetch_status(client, "wb-1", cfg, random.Random(seed), sleeps.append)
        assert client.calls == 5
        for attempt, delay in enumerate(sleeps):
            assert 0 <= delay <= 0.1 * 2**attempt
        schedules.append(tuple(sleeps))
    assert len(set(schedules)) == len(schedules), "delays must be jittered"
    means = [sum(s[i] for s in schedules) / len(schedules) for i in range(4)]
    assert means == sorted(means), f"delays must grow: {means}"


def test_req_3_7_retry_after_is_honoured():
    cfg = polling.SweepConfig(max_retries=2, retry_base_seconds=0.01, retry_cap_seconds=0.05)
    sleeps = []
    rate_limited = WorkbenchError(
        "429", transient=True, kind="rate_limited", status_code=429, retry_after=2.0
    )
    polling.fetch_status(FlakyClient(2, rate_limited), "wb-1", cfg, random.Random(1), sleeps.append)
    assert sleeps and all(d >= 2.0 for d in sleeps)


def test_req_3_7_a_long_retry_after_is_scheduled_not_slept():
    cfg = polling.SweepConfig(max_retries=3)
    sleeps = []
    client = FlakyClient(1, transient(retry_after=120))
    run = Run(id="r", status="RUNNING", workbench_job_id="wb-1", poll_failures=0)
    with pytest.raises(WorkbenchError):
        polling.fetch_status(client, "wb-1", cfg, random.Random(1), sleeps.append)
    assert sleeps == []
    client_again = FlakyClient(1, transient(retry_after=120))
    outcome = polling.poll_one(client_again, run, cfg, random.Random(1))
    assert client_again.calls == 1
    assert outcome.poll_error and outcome.new_status is None
    assert outcome.details["next_poll_in_seconds"] >= 120


def test_req_3_7_permanent_errors_are_not_retried():
    cfg = polling.SweepConfig(max_retries=5)
    gone = WorkbenchError("404", transient=False, kind="not_found", status_code=404)
    client = FlakyClient(10, gone)
    with pytest.raises(WorkbenchError):
        polling.fetch_status(client, "wb-1", cfg, random.Random(1), lambda s: None)
    assert client.calls == 1


def test_req_3_8_after_the_retry_budget_the_failure_is_recorded_with_backoff():
    cfg = polling.SweepConfig(max_retries=2, retry_base_seconds=0.0, interval_seconds=5)
    run = Run(id="r", status="SUBMITTED", workbench_job_id="wb-1", poll_failures=3)
    client = FlakyClient(99, transient())
    outcome = polling.poll_one(client, run, cfg, random.Random(3))
    assert client.calls == 3
    assert outcome.new_status is None
    assert outcome.details["consecutive_failures"] == 4
    assert 5 * 2**4 * 0.5 <= outcome.details["next_poll_in_seconds"] <= 5 * 2**4
