"""Issue 3 end to end: from a user's POST to a Workbench job, over HTTP through the stack."""

from __future__ import annotations

import uuid
from datetime import datetime

import psycopg2
import requests

from tests.e2e.conftest import run_body


def _count_runs(stack_env) -> int:
    with psycopg2.connect(stack_env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pipeline_runs")
        return cur.fetchone()[0]


def test_req_1_1_run_reaches_submitted_with_one_job_id_everywhere(api, simulator, conductor_api):
    resp = api.post_run(run_body(parameters={"simulate": {"duration_seconds": 30}}), wait=10)
    assert resp.status_code == 202, resp.text
    run = resp.json()
    assert resp.headers["Location"] == f"/api/v1/pipeline-runs/{run['id']}"
    assert run["status"] in ("SUBMITTED", "RUNNING"), run
    job_id = run["workbench_job_id"]
    assert job_id
    assert [j["job_id"] for j in simulator.jobs(run["id"])] == [job_id]
    workflow = conductor_api(f"/workflow/{run['conductor_workflow_id']}")
    assert workflow["correlationId"] == run["id"]
    submit = next(t for t in workflow["tasks"] if t["referenceTaskName"] == "submit")
    assert submit["outputData"]["workbench_job_id"] == job_id
    assert [h["status"] for h in run["history"]][:2] == ["PENDING", "SUBMITTED"]
    assert datetime.fromisoformat(run["submitted_at"]).utcoffset() is not None


def test_req_2_4_workbench_failing_for_a_while_is_retried_with_growing_delays(
    api, simulator, conductor_api
):
    simulator.faults(error_5xx={"status": 503, "count": 3, "only": "submit"})
    resp = api.post_run(run_body(parameters={"simulate": {"duration_seconds": 30}}))
    assert resp.status_code == 202, resp.text
    run = api.await_status(resp.json()["id"], ("SUBMITTED", "RUNNING"), timeout=90)
    assert len(simulator.jobs(run["id"])) == 1
    workflow = conductor_api(f"/workflow/{run['conductor_workflow_id']}")
    attempts = sorted(
        (t for t in workflow["tasks"] if t["referenceTaskName"] == "submit"),
        key=lambda t: t["retryCount"],
    )
    assert [t["status"] for t in attempts] == ["FAILED", "FAILED", "FAILED", "COMPLETED"]
    assert "HTTP 503" in attempts[0]["reasonForIncompletion"]
    gaps = [
        (b["startTime"] - a["endTime"]) / 1000 for a, b in zip(attempts, attempts[1:], strict=False)
    ]
    # EXPONENTIAL_BACKOFF with retryDelaySeconds=2: about 2, 4, 8 s (plus up to 1 s jitter).
    assert gaps == sorted(gaps), gaps
    assert gaps[0] >= 1.5 and gaps[-1] >= 6, gaps


def test_req_5_3_workbench_down_throughout_ends_failed_with_a_useful_message(api, simulator):
    simulator.faults(refuse_connections={"seconds": 120})
    resp = api.post_run(run_body())
    assert resp.status_code == 202, resp.text
    run = api.await_status(resp.json()["id"], "FAILED", timeout=150)
    simulator.clear()
    assert "Workbench API at" in run["error_message"]
    assert "unreachable: connection refused" in run["error_message"]
    assert run["error_details"]["task"] == "submit_to_workbench"
    assert run["workbench_job_id"] is None
    assert simulator.jobs(run["id"]) == []
    failed = run["history"][-1]
    assert (failed["previous_status"], failed["status"], failed["source"]) == (
        "PENDING",
        "FAILED",
        "submit",
    )


def test_req_2_5_idempotency_key_gives_one_run_and_one_job(api, simulator):
    key = f"e2e-{uuid.uuid4().hex}"
    body = run_body()
    first = api.post_run(body, key=key, wait=10)
    second = api.post_run(body, key=key)
    assert first.status_code == 202 and second.status_code == 200
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert first.json()["id"] == second.json()["id"]
    conflict = api.post_run(run_body(), key=key)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "conflict"
    assert len(simulator.jobs(first.json()["id"])) == 1


def test_req_4_bad_inputs_write_nothing(api, stack_env):
    before = _count_runs(stack_env)
    bad_bodies = [
        run_body(input_path_prefix="s3://b/../etc"),
        run_body(input_path_prefix="http://example.com/x"),
        run_body(mode="STREAM"),
        run_body(pipeline="no-such-pipeline"),
        run_body(extra="field"),
        run_body(output_path_prefix=None),
    ]
    codes = [api.post_run(body).status_code for body in bad_bodies]
    raw = api.session.post(
        f"{api.base}/api/v1/pipeline-runs",
        data="{not json",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert codes == [422, 422, 422, 404, 422, 422]
    assert raw.status_code == 400
    assert _count_runs(stack_env) == before


def test_req_4_unauthenticated_calls_get_401(api):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        resp = requests.get(f"{api.base}/api/v1/pipeline-runs", headers=headers, timeout=10)
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "unauthorized"


def test_req_4_unknown_runs_get_404_naming_the_id(api):
    for run_id in (str(uuid.uuid4()), "not-a-uuid"):
        resp = api.session.get(f"{api.base}/api/v1/pipeline-runs/{run_id}", timeout=10)
        assert resp.status_code == 404
        assert run_id in resp.json()["error"]["message"]
