"""Issue 11: with CONDUCTOR_DATABASE_URL set (as the stack sets it), each running worker service
checks Conductor's queue for conductor-oss/conductor#326 and says so in its /readyz details and
its /metrics; the stuck verdict itself is tests/e2e/test_conductor_unack_bug.py (long_fault)."""

from __future__ import annotations

import pytest
import requests

from tests.integration.helpers import await_true


def _queue_detail(base: str) -> dict | None:
    detail = requests.get(f"{base}/readyz", timeout=10).json().get("conductor_queue")
    return detail if detail and detail["status"] != "unknown" else None


def _gauges(base: str) -> dict[str, float]:
    text = requests.get(f"{base}/metrics", timeout=10).text
    return {
        name: float(value)
        for name, _, value in (line.partition(" ") for line in text.splitlines())
        if name.startswith("conductor_queue_")
    }


@pytest.mark.parametrize("service", ["SUBMIT_WORKERS_URL", "POLLER_URL"])
def test_issue_11_each_worker_service_reports_conductors_queue(stack_env, service):
    base = stack_env[service]
    detail = await_true(lambda: _queue_detail(base), 60, f"{service}'s first queue check")
    assert detail["status"] == "ok", detail
    assert detail["stuck_after_seconds"] >= 150, detail
    gauges = _gauges(base)
    assert gauges == {
        "conductor_queue_stuck_messages": 0.0,
        "conductor_queue_stuck_oldest_seconds": 0.0,
        "conductor_queue_check_ok": 1.0,
    }, gauges
