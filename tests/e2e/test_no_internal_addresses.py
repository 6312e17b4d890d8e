"""Issue 12.11: what API clients read about a failed Workbench call names no internal address.

Through the whole stack, with the simulator's faults aimed at one test's own runs: the run's
``error_message`` and ``last_poll_error`` and the reasons of its workflow's tasks say what
failed in a sentence, without the Workbench's URL (which stays in the logs and details).
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import run_body
from tests.integration.helpers import await_true


@pytest.fixture(scope="module")
def addresses(stack_env) -> tuple[str, ...]:
    """The Workbench's address in each form a message could carry it."""
    parts = urlsplit(stack_env["WORKBENCH_API_URL"])
    return (stack_env["WORKBENCH_API_URL"].rstrip("/"), parts.netloc, f"{parts.hostname}:")


def assert_no_address(text: str | None, addresses: tuple[str, ...]) -> None:
    assert text, "a sentence was expected"
    for address in addresses:
        assert address not in text, f"{address!r} shown to API clients in {text!r}"


def test_issue_12_11_a_failed_submission_names_no_address(api, simulator, addresses):
    prefix = f"s3://e2e-in/addresses-{uuid.uuid4().hex}"
    aimed = {"only": "submit", "input_path_prefixes": [prefix]}
    # The first call meets a 503 (retried), the second an HTML page with 200 (permanent).
    simulator.faults(error_5xx={"status": 503, "count": 1, **aimed}, html_200={"count": 1, **aimed})
    resp = api.post_run(run_body(input_path_prefix=prefix))
    assert resp.status_code == 202, resp.text
    run = api.await_status(resp.json()["id"], ("SUBMITTED", "FAILED"), timeout=90)
    assert run["status"] == "FAILED", run
    assert "breaks its contract" in run["error_message"]
    assert_no_address(run["error_message"], addresses)
    for event in run["history"]:
        assert not any(a in (event["message"] or "") for a in addresses), event

    answer = api.session.get(f"{api.base}/api/v1/pipeline-runs/{run['id']}/workflow", timeout=10)
    assert answer.status_code == 200, answer.text
    submits = [t for t in answer.json()["tasks"] if t["reference_name"] == "submit"]
    reasons = [t["reason"] for t in submits]
    assert len(reasons) == 2, reasons
    assert "HTTP 503" in reasons[0] and "breaks its contract" in reasons[1], reasons
    for reason in reasons:
        assert_no_address(reason, addresses)


def test_issue_12_11_a_failed_status_call_names_no_address(api, simulator, addresses):
    body = run_body(parameters={"simulate": {"duration_seconds": 60}})
    resp = api.post_run(body, wait=20)
    assert resp.status_code == 202, resp.text
    run = api.await_status(resp.json()["id"], ("SUBMITTED", "RUNNING"), timeout=60)
    simulator.faults(
        error_5xx={"status": 503, "count": 1000, "only": "status"},
        job_ids=[run["workbench_job_id"]],
    )

    def poll_error() -> str | None:
        return api.get_run(run["id"])["last_poll_error"]

    said = await_true(poll_error, 60, "the poller to record the failed status call", every=0.5)
    assert "HTTP 503" in said
    assert_no_address(said, addresses)
    # The history's event of the failure keeps the answer's facts, not the address.
    (event,) = [e for e in api.get_run(run["id"])["history"] if "HTTP 503" in e["message"]]
    assert event["details"]["answer"][0]["status_code"] == 503
    assert_no_address(json.dumps(event), addresses)
