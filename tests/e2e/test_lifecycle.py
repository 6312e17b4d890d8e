"""Issue 4 end to end: runs followed to the Workbench's outcome, in our API and in Conductor."""

from __future__ import annotations

import random

import requests

from tests.e2e.conftest import TERMINAL, run_body
from tests.integration.helpers import await_true

POLLER = "batch_status_poller"
POLLER_CORRELATION = "batch-status-poller"


def _running_loops(conductor_api) -> list[dict]:
    return conductor_api(
        f"/workflow/{POLLER}/correlated/{POLLER_CORRELATION}",
        includeClosed="false",
        includeTasks="false",
    )


def _poller_loop(conductor_api) -> dict:
    """The one running poller loop, once there is exactly one (another test may just have
    restarted the worker service or Conductor, or ended a loop)."""

    def exactly_one():
        loops = _running_loops(conductor_api)
        return loops if len(loops) == 1 else None

    running = await_true(exactly_one, 60, "exactly one running poller loop", every=0.5)
    return conductor_api(f"/workflow/{running[0]['workflowId']}")


def test_req_3_4_many_runs_with_mixed_outcomes_reach_the_workbench_outcome(
    api, simulator, conductor_api
):
    rng = random.Random(11)
    plans = []
    for i in range(12):
        outcome = ["SUCCEEDED", "FAILED", "SUCCEEDED", "CANCELLED"][i % 4]
        simulate = {"outcome": outcome, "duration_seconds": round(rng.uniform(0.5, 4), 1)}
        if outcome == "FAILED":
            simulate["error_message"] = f"task {i}: input schema mismatch"
        plans.append(simulate)
    ids = []
    for simulate in plans:
        resp = api.post_run(run_body(parameters={"simulate": simulate}))
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["id"])
    for run_id, simulate in zip(ids, plans, strict=True):
        run = api.await_status(run_id, TERMINAL, timeout=90)
        (job,) = simulator.jobs(run_id)
        expected = "COMPLETED" if simulate["outcome"] == "SUCCEEDED" else "FAILED"
        assert (job["status"], run["status"]) == (simulate["outcome"], expected)
        assert run["completed_at"] and run["submitted_at"] and run["started_at"]
        assert run["created_at"] <= run["submitted_at"] <= run["completed_at"]
        if simulate["outcome"] == "FAILED":
            assert run["error_message"] == simulate["error_message"]
        statuses = [h["status"] for h in run["history"]]
        assert statuses[:2] == ["PENDING", "SUBMITTED"] and statuses[-1] == expected
        assert len(statuses) == len(set(statuses)), "a transition was recorded twice"
        assert all(h["source"] and h["at"] for h in run["history"])

        def workflow_ended(run=run):
            wf = conductor_api(f"/workflow/{run['conductor_workflow_id']}", includeTasks="false")
            return wf if wf["status"] != "RUNNING" else None

        workflow = await_true(workflow_ended, 60, f"workflow of {run_id} to end")
        assert workflow["status"] == run["status"]
        assert workflow["output"]["workbench_job_id"] == run["workbench_job_id"]
        if run["status"] == "FAILED":
            assert workflow["reasonForIncompletion"] == run["error_message"]


def test_req_7_2_poller_loop_history_stays_bounded_and_shows_sweep_summaries(conductor_api):
    def enough_iterations():
        loop = _poller_loop(conductor_api)
        task = next(t for t in loop["tasks"] if t["referenceTaskName"] == "poll_loop")
        return loop if task["outputData"].get("iteration", 0) >= 6 else None

    loop = await_true(enough_iterations, 60, "the poller loop to iterate 6 times", every=1)
    sweeps = [t for t in loop["tasks"] if t["taskDefName"] == "poll_status"]
    # keepLastN=3 and the iteration under way, each forking poll_parallelism sweeps.
    bound = 4 * loop["input"]["poll_parallelism"]
    assert 1 <= len(sweeps) <= bound, f"keepLastN=3 should bound history, found {len(sweeps)}"
    done = [t for t in sweeps if t["status"] == "COMPLETED"]
    assert done and {"checked", "changed", "failed", "duration_ms"} <= set(done[-1]["outputData"])


def test_req_3_1_a_terminated_poller_loop_is_started_again(conductor_url, conductor_api):
    first = _poller_loop(conductor_api)
    requests.delete(
        f"{conductor_url}/workflow/{first['workflowId']}",
        params={"reason": "e2e: the worker service must start a new loop"},
        timeout=10,
    ).raise_for_status()

    def new_loop():
        running = _running_loops(conductor_api)
        return running if running and running[0]["workflowId"] != first["workflowId"] else None

    running = await_true(new_loop, 60, "the worker service to start a new poller loop", every=1)
    assert len(running) == 1


def test_req_3_1_a_duplicate_poller_loop_is_terminated(conductor_url, conductor_api):
    keep = _poller_loop(conductor_api)["workflowId"]
    resp = requests.post(
        f"{conductor_url}/workflow",
        json={
            "name": POLLER,
            "version": 1,
            "correlationId": POLLER_CORRELATION,
            "input": {"poll_interval_seconds": 2},
        },
        timeout=10,
    )
    resp.raise_for_status()
    duplicate = resp.text.strip()

    def duplicate_ended():
        wf = conductor_api(f"/workflow/{duplicate}", includeTasks="false")
        return wf if wf["status"] == "TERMINATED" else None

    ended = await_true(duplicate_ended, 60, "the duplicate poller loop to be terminated", every=1)
    assert keep in ended["reasonForIncompletion"]
    assert _poller_loop(conductor_api)["workflowId"] == keep
