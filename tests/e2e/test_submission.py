"""Issue 3 end to end: from a user's POST to a Workbench job, over HTTP through the stack.

Faults are aimed at the test's own runs (by input prefix, known before the run id is), so
the stack's poller and workers, busy with other runs, never use them up.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

import requests

from tests.e2e.conftest import rows_marked, run_body

SUBMIT_TASK = json.loads(
    (Path(__file__).parents[2] / "workflow_defs/tasks/submit_to_workbench.json").read_text()
)
# Conductor's queue and the JVM read one system clock in milliseconds: a little slack only.
CLOCK_SLACK_MS = 100


def submit_attempts(workflow: dict) -> list[dict]:
    """The submit task's attempts, first to last."""
    return sorted(
        (t for t in workflow["tasks"] if t["referenceTaskName"] == "submit"),
        key=lambda t: t["retryCount"],
    )


def assert_backoff_waited(attempts: list[dict]) -> list[int]:
    """Each retry started no sooner than the delay Conductor recorded for it; the delays."""
    delays = [t["startDelayInSeconds"] for t in attempts[1:]]
    for before, retry in zip(attempts, attempts[1:], strict=False):
        waited_ms = retry["startTime"] - before["endTime"]
        assert waited_ms >= retry["startDelayInSeconds"] * 1000 - CLOCK_SLACK_MS, (
            before,
            retry,
        )
    return delays


def backoff_schedule(retries: int) -> list[int]:
    """EXPONENTIAL_BACKOFF's delays for the first retries, from the task definition."""
    base, cap = SUBMIT_TASK["retryDelaySeconds"], SUBMIT_TASK["maxRetryDelaySeconds"]
    return [min(base * 2**i, cap) for i in range(retries)]


def test_req_2_4_run_reaches_submitted_with_one_job_id_everywhere(api, simulator, conductor_api):
    resp = api.post_run(run_body(parameters={"simulate": {"duration_seconds": 60}}))
    assert resp.status_code == 202, resp.text
    assert resp.headers["Location"] == f"/api/v1/pipeline-runs/{resp.json()['id']}"
    run = api.await_status(resp.json()["id"], ("SUBMITTED", "RUNNING"), timeout=60)
    job_id = run["workbench_job_id"]
    assert job_id
    assert [j["job_id"] for j in simulator.jobs(run["id"])] == [job_id]
    workflow = conductor_api(f"/workflow/{run['conductor_workflow_id']}")
    assert workflow["correlationId"] == run["id"]
    submit = next(t for t in workflow["tasks"] if t["referenceTaskName"] == "submit")
    assert submit["outputData"]["workbench_job_id"] == job_id
    assert [h["status"] for h in run["history"]][:2] == ["PENDING", "SUBMITTED"]
    assert datetime.fromisoformat(run["submitted_at"]).utcoffset() is not None


def test_req_5_1_workbench_failing_for_a_while_is_retried_with_growing_delays(
    api, simulator, conductor_api
):
    body = run_body(parameters={"simulate": {"duration_seconds": 30}})
    simulator.faults(
        error_5xx={"status": 503, "count": 2, "only": "submit"},
        input_path_prefixes=[body["input_path_prefix"]],
    )
    resp = api.post_run(body)
    assert resp.status_code == 202, resp.text
    run = api.await_status(resp.json()["id"], ("SUBMITTED", "RUNNING"), timeout=90)
    assert len(simulator.jobs(run["id"])) == 1
    assert simulator.armed() == {}, "both aimed errors were answered to this run"
    workflow = conductor_api(f"/workflow/{run['conductor_workflow_id']}")
    attempts = submit_attempts(workflow)
    assert [t["status"] for t in attempts] == ["FAILED", "FAILED", "COMPLETED"]
    assert "HTTP 503" in attempts[0]["reasonForIncompletion"]
    assert assert_backoff_waited(attempts) == backoff_schedule(2)


def test_req_5_3_workbench_down_throughout_ends_failed_after_the_whole_retry_schedule(
    api, simulator, conductor_api
):
    # The one test that waits out the real schedule (about a minute); the definitions and a
    # fake clock cover it elsewhere.
    simulator.faults(refuse_connections={"seconds": 180})
    resp = api.post_run(run_body())
    assert resp.status_code == 202, resp.text
    run = api.await_status(resp.json()["id"], "FAILED", timeout=240)
    simulator.clear()
    assert run["error_message"] == "The Workbench API is unreachable: connection refused"
    assert run["error_details"]["task"] == "submit_to_workbench"
    assert run["workbench_job_id"] is None
    assert simulator.jobs(run["id"]) == []
    failed = run["history"][-1]
    assert (failed["previous_status"], failed["status"], failed["source"]) == (
        "PENDING",
        "FAILED",
        "submit",
    )
    attempts = submit_attempts(conductor_api(f"/workflow/{run['conductor_workflow_id']}"))
    # The task is optional (the workflow records the failure itself), so its last attempt
    # ends COMPLETED_WITH_ERRORS once the retries are used up.
    statuses = [t["status"] for t in attempts]
    assert statuses == ["FAILED"] * SUBMIT_TASK["retryCount"] + ["COMPLETED_WITH_ERRORS"]
    assert all("connection refused" in t["reasonForIncompletion"] for t in attempts)
    assert assert_backoff_waited(attempts) == backoff_schedule(SUBMIT_TASK["retryCount"])


def test_req_2_1_idempotency_key_gives_one_run_and_one_job(api, simulator):
    key = f"e2e-{uuid.uuid4().hex}"
    body = run_body()
    first = api.post_run(body, key=key)
    second = api.post_run(body, key=key)
    assert first.status_code == 202 and second.status_code == 200
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert first.json()["id"] == second.json()["id"]
    conflict = api.post_run(run_body(), key=key)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "conflict"
    api.await_status(first.json()["id"], ("SUBMITTED", "RUNNING", "COMPLETED"), timeout=60)
    assert len(simulator.jobs(first.json()["id"])) == 1


def test_req_5_5_bad_inputs_write_nothing(api, pipelines_db):
    marker = f"bad-{uuid.uuid4().hex}"
    # Each body carries the marker in a prefix as well as in its Idempotency-Key.
    tagged = {"input_path_prefix": f"s3://e2e-in/{marker}"}
    bad_bodies = [
        run_body(input_path_prefix=f"s3://b/{marker}/../etc"),
        run_body(**tagged, output_path_prefix=f"http://example.com/{marker}"),
        run_body(**tagged, mode="STREAM"),
        run_body(**tagged, pipeline="no-such-pipeline"),
        run_body(**tagged, extra="field"),
        run_body(**tagged, output_path_prefix=None),
    ]
    codes = [
        api.post_run(body, key=f"{marker}-{i}").status_code for i, body in enumerate(bad_bodies)
    ]
    raw = api.session.post(
        f"{api.base}/api/v1/pipeline-runs",
        data="{not json " + marker,
        headers={"Content-Type": "application/json", "Idempotency-Key": f"{marker}-raw"},
        timeout=10,
    )
    assert codes == [422, 422, 422, 404, 422, 422]
    assert raw.status_code == 400
    assert rows_marked(pipelines_db, marker) == 0


def test_unauthenticated_calls_get_401(api):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        resp = requests.get(f"{api.base}/api/v1/pipeline-runs", headers=headers, timeout=10)
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "unauthorized"


def test_req_4_3_unknown_runs_get_404_naming_the_id(api):
    for run_id in (str(uuid.uuid4()), "not-a-uuid"):
        resp = api.session.get(f"{api.base}/api/v1/pipeline-runs/{run_id}", timeout=10)
        assert resp.status_code == 404
        assert run_id in resp.json()["error"]["message"]
