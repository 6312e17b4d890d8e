"""A requested cancel goes through the same bounded retries as a status call (pure, with fakes)."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

from batchcore.errors import WorkbenchError
from batchcore.runs import cancels
from batchcore.runs.model import Run
from conductor_workers import polling
from tests.unit.fake_services import FakeWorkbench

REQUESTED_AT = datetime(2026, 1, 1, tzinfo=UTC)


class FlakyCancelWorkbench(FakeWorkbench):
    """Answers 503 to the first `failures` cancels; records each cancel's timeout."""

    def __init__(self, failures: int):
        super().__init__()
        self.failures = failures
        self.cancel_timeouts: list[float | None] = []

    def cancel_job(self, job_id: str, timeout: float | None = None):
        self.cancel_timeouts.append(timeout)
        if self.failures:
            self.failures -= 1
            raise WorkbenchError("HTTP 503", transient=True, kind="unavailable", status_code=503)
        return super().cancel_job(job_id, timeout)


def run_to_cancel() -> Run:
    return Run.from_row(
        {
            "id": "00000000-0000-0000-0000-000000000002",
            "status": "RUNNING",
            "workbench_job_id": "wb-1",
            "cancel_requested_at": REQUESTED_AT,
            "cancel_reason": cancels.REQUESTED,
        }
    )


def test_a_transient_cancel_failure_is_retried_within_the_batch_deadline():
    workbench = FlakyCancelWorkbench(failures=1)
    workbench.jobs["wb-1"] = "RUNNING"
    deadline = time.monotonic() + 20

    outcome = polling.poll_one(
        workbench, run_to_cancel(), polling.SweepConfig(), random.Random(1), deadline=deadline
    )

    assert workbench.cancelled == ["wb-1"] and outcome.cancel_sent
    assert len(workbench.cancel_timeouts) == 2
    assert all(t is not None and 0 < t <= 20 for t in workbench.cancel_timeouts)
    assert outcome.new_status == "CANCELLED"


def test_a_cancel_refused_for_good_is_not_retried_and_not_marked_sent():
    workbench = FlakyCancelWorkbench(failures=0)
    workbench.errors["wb-1"] = WorkbenchError(
        "HTTP 404", transient=False, kind="not_found", status_code=404
    )

    outcome = polling.poll_one(workbench, run_to_cancel(), polling.SweepConfig(), random.Random(1))

    assert workbench.cancel_timeouts == [None] and not outcome.cancel_sent
    assert outcome.error_kind == "not_found"
