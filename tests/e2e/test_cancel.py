"""Issue 13: cancelling over HTTP through the whole stack, at each status a run can have;
the simulator's record of the job, Conductor's workflow and the audit trail agree."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.e2e.conftest import run_body
from tests.integration.helpers import Simulator, await_true


@pytest.fixture
def sim(stack_env):
    simulator = Simulator(stack_env["WORKBENCH_ADMIN_URL"])
    yield simulator


def _ended(workflow: dict) -> dict | None:
    return workflow if workflow["status"] != "RUNNING" else None


def cancel(api, run_id):
    return api.session.post(f"{api.base}/api/v1/pipeline-runs/{run_id}/cancel", timeout=10)


def post(api, simulate: dict) -> dict:
    created = api.post_run(run_body(parameters={"simulate": simulate}))
    assert created.status_code == 202, created.text
    return created.json()


def assert_cancelled_everywhere(api, sim, conductor_api, run_id, actor: str) -> dict:
    run = api.await_status(run_id, ("CANCELLED", "COMPLETED", "FAILED"), timeout=60)
    assert run["status"] == "CANCELLED", run["history"]
    assert run["cancel_requested_by"] == actor and run["error_message"] is None
    assert [j["status"] for j in sim.jobs(run_id)] in ([], ["CANCELLED"])
    asked = [e for e in run["history"] if e["actor"] == actor and e["source"] == "gateway"]
    assert asked, run["history"]  # the cancel is in the trail, in the caller's name
    return run


def test_a_queued_and_a_running_run_are_cancelled_at_the_workbench_and_in_conductor(
    api, sim, conductor_api
):
    queued = post(api, {"queue_seconds": 60, "cancel_seconds": 1})
    running = post(api, {"duration_seconds": 60, "cancel_seconds": 1})
    api.await_status(queued["id"], "SUBMITTED", timeout=30)
    api.await_status(running["id"], "RUNNING", timeout=30)
    for run in (queued, running):
        answer = cancel(api, run["id"])
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert body["cancel_requested_at"] is not None and body["status"] != "CANCELLED"
        again = cancel(api, run["id"])  # harmless to repeat
        assert again.status_code == 202
        assert again.json()["cancel_requested_at"] == body["cancel_requested_at"]
    for run in (queued, running):
        ended = assert_cancelled_everywhere(api, sim, conductor_api, run["id"], run["submitted_by"])
        assert [j["status"] for j in sim.jobs(run["id"])] == ["CANCELLED"]
        # The poller finishes the workflow just after it records the run's end.
        path = f"/workflow/{ended['conductor_workflow_id']}"
        workflow = await_true(
            lambda path=path: _ended(conductor_api(path)),
            30,
            "the run's workflow to end",
            every=0.3,
        )
        assert workflow["status"] == "TERMINATED"
        assert workflow["reasonForIncompletion"] == f"Run cancelled by {run['submitted_by']}"
        refused = cancel(api, run["id"])
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "run_terminal"


def test_a_cancel_during_a_slow_submission_leaves_no_job_running(api, sim, conductor_api):
    body = run_body(parameters={"simulate": {"duration_seconds": 60, "cancel_seconds": 0}})
    # Each submit waits 3 s at the Workbench: the cancel arrives while the job is created.
    sim.faults(
        slow={"seconds": 3, "count": 1, "only": "submit"},
        input_path_prefixes=[body["input_path_prefix"]],
    )
    created = api.post_run(body)
    assert created.status_code == 202, created.text
    run_id = created.json()["id"]
    answer = cancel(api, run_id)
    assert answer.status_code == 202, answer.text
    assert_cancelled_everywhere(api, sim, conductor_api, run_id, created.json()["submitted_by"])


def test_a_run_that_ends_before_the_cancel_keeps_its_outcome(api, sim):
    run = post(api, {"duration_seconds": 0.5})
    api.await_status(run["id"], "COMPLETED", timeout=60)
    refused = cancel(api, run["id"])
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "run_terminal"
    assert api.get_run(run["id"])["cancel_requested_at"] is None


@pytest.mark.parametrize("run_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_cancelling_an_unknown_run_is_404(api, run_id):
    answer = cancel(api, run_id)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "run_not_found"


def test_cancelling_needs_a_token(api):
    answer = requests.post(f"{api.base}/api/v1/pipeline-runs/{uuid.uuid4()}/cancel", timeout=10)
    assert answer.status_code == 401
