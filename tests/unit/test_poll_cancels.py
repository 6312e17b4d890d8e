"""Issue 13: what a poll makes of a run whose cancel was requested (pure, with fakes)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from batchcore.runs import cancels
from batchcore.runs.model import Run
from conductor_workers import polling
from tests.unit.fake_services import FakeWorkbench

REQUESTED_AT = datetime(2026, 1, 1, tzinfo=UTC)


def run_with_cancel(status: str, reason: str, sent: bool = True) -> Run:
    return Run.from_row(
        {
            "id": "00000000-0000-0000-0000-000000000001",
            "status": status,
            "workbench_job_id": "wb-1",
            "cancel_requested_at": REQUESTED_AT,
            "cancel_requested_by": "alice",
            "cancel_reason": reason,
            "cancel_sent_at": REQUESTED_AT if sent else None,
            "deadline_at": REQUESTED_AT,
        }
    )


def poll(run: Run, job_status: str):
    workbench = FakeWorkbench()
    workbench.jobs["wb-1"] = job_status
    outcome = polling.poll_one(workbench, run, polling.SweepConfig(), random.Random(1))
    return outcome, workbench


def test_a_job_that_starts_running_after_the_cancel_was_asked_is_not_too_late():
    """Found by chaos cancel_races: SUBMITTED -> RUNNING said the cancel came too late."""
    outcome, _ = poll(run_with_cancel("SUBMITTED", cancels.REQUESTED), "RUNNING")
    assert outcome.new_status == "RUNNING"
    assert "too late" not in outcome.message
    assert "cancel_too_late" not in outcome.details


@pytest.mark.parametrize(
    ("reason", "status", "code"),
    [(cancels.REQUESTED, "CANCELLED", None), (cancels.DEADLINE, "FAILED", "deadline_exceeded")],
)
def test_a_cancelled_job_ends_the_run_as_its_reason_says(reason, status, code):
    outcome, _ = poll(run_with_cancel("RUNNING", reason), "CANCELLED")
    assert outcome.new_status == status
    assert outcome.details.get("code") == code
    assert (outcome.error_message is None) == (status == "CANCELLED")


def test_a_job_that_ended_first_keeps_its_outcome_and_says_the_cancel_came_too_late():
    outcome, _ = poll(run_with_cancel("RUNNING", cancels.REQUESTED), "SUCCEEDED")
    assert outcome.new_status == "COMPLETED"
    assert outcome.message.endswith("the cancel came too late")
    assert outcome.details["cancel_too_late"] is True


def test_the_cancel_is_sent_once_then_the_status_is_read():
    outcome, workbench = poll(run_with_cancel("RUNNING", cancels.REQUESTED, sent=False), "RUNNING")
    assert workbench.cancelled == ["wb-1"] and outcome.cancel_sent
    assert outcome.new_status == "CANCELLED"  # the fake cancels at once
    outcome, workbench = poll(run_with_cancel("RUNNING", cancels.REQUESTED), "RUNNING")
    assert workbench.cancelled == [] and not outcome.cancel_sent
