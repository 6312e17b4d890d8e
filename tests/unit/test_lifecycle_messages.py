"""The run's error_message for an ending the Workbench reported (issue 12)."""

from __future__ import annotations

import pytest

from batchcore.runs import lifecycle


def test_a_cancelled_job_without_a_message_says_it_was_cancelled_at_the_workbench():
    message = lifecycle.error_message_for("CANCELLED", None)
    assert message == "Cancelled at the Workbench"
    assert "failed" not in message.lower()


@pytest.mark.parametrize("status", ["FAILED", "CANCELLED"])
def test_the_workbench_message_is_kept_when_there_is_one(status):
    assert lifecycle.error_message_for(status, "disk full") == "disk full"


def test_a_failed_job_without_a_message_says_the_job_failed():
    assert lifecycle.error_message_for("FAILED", None) == "The Workbench job failed"
    assert lifecycle.error_message_for("FAILED", "") == "The Workbench job failed"


@pytest.mark.parametrize("status", ["QUEUED", "RUNNING", "SUCCEEDED"])
def test_no_error_message_for_a_job_that_did_not_fail(status):
    assert lifecycle.error_message_for(status, None) is None
