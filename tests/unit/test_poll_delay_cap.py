"""Issue 12: a hostile Retry-After never parks a run for long, nor aborts the sweep."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from batchcore.backoff import POLL_DELAY_CEILING_SECONDS
from batchcore.errors import WorkbenchError
from batchcore.runs.model import Run
from conductor_workers import polling

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


class RateLimited:
    """A Workbench that answers every status call 429 with the given Retry-After seconds."""

    def __init__(self, retry_after: float):
        self.retry_after = retry_after

    def get_job(self, job_id, timeout=None):
        raise WorkbenchError(
            "HTTP 429",
            transient=True,
            kind="rate_limited",
            status_code=429,
            retry_after=self.retry_after,
        )


@pytest.mark.parametrize("retry_after", [1e9, 1e12, 2.5e11, float("inf"), 3600.0])
def test_the_next_poll_of_a_rate_limited_run_is_capped(retry_after):
    run = Run(id=uuid.uuid4(), status="RUNNING", workbench_job_id="wb-1", poll_failures=0)
    cfg = polling.SweepConfig(max_retries=0)
    outcome = polling.poll_one(RateLimited(retry_after), run, cfg, random.Random(1), lambda: NOW)
    assert outcome.poll_error
    assert NOW <= outcome.retry_at <= NOW + timedelta(seconds=POLL_DELAY_CEILING_SECONDS)


@pytest.mark.parametrize("retry_after", [1e12, float("inf"), float("nan"), -5.0, None])
def test_failure_backoff_is_finite_and_capped(retry_after):
    for failures in (1, 5, 50):
        wait = polling.failure_backoff(failures, 5, retry_after, random.Random(failures))
        assert 0.0 <= wait <= POLL_DELAY_CEILING_SECONDS
