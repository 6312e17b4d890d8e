"""GET /api/v1/pipeline-runs/{id}/workflow over HTTP, against the real Conductor: the shape the
run page draws, as the OpenAPI document states it."""

from __future__ import annotations

import uuid

import requests

from tests.e2e.conftest import run_body
from tests.gateway_helpers import schema_errors
from tests.integration.helpers import await_true

PATH = "/api/v1/pipeline-runs/{run_id}/workflow"


def workflow_of(api, run_id) -> requests.Response:
    return api.session.get(f"{api.base}/api/v1/pipeline-runs/{run_id}/workflow", timeout=10)


def test_the_workflow_of_a_finished_run_lists_its_tasks_as_documented(api):
    created = api.post_run(run_body(parameters={"simulate": {"duration_seconds": 1}}))
    assert created.status_code == 202, created.text
    run = api.await_status(created.json()["id"], "COMPLETED", timeout=60)

    def finished():
        answer = workflow_of(api, run["id"])
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return body if body["status"] == "COMPLETED" else None

    # The poller completes the workflow's WAIT once the run has ended: await that too.
    workflow = await_true(finished, 30, "the run's workflow to complete", every=0.5)
    assert workflow["workflow_id"] == run["conductor_workflow_id"]
    names = [task["reference_name"] for task in workflow["tasks"]]
    assert names[:3] == ["submit", "route_submission", "persist_submitted"]
    assert "await_completion" in names
    for task in workflow["tasks"]:
        assert task["attempt"] == 1 and task["status"] == "COMPLETED"
        # Conductor may stamp a system task's schedule a millisecond after its start.
        assert task["scheduled_at"] and task["started_at"] <= task["ended_at"]
    doc = api.session.get(f"{api.base}/openapi.json", timeout=10).json()
    schema = doc["paths"][PATH]["get"]["responses"]["200"]["content"]["application/json"]
    assert schema_errors(workflow, schema["schema"], doc) == []


def test_the_workflow_of_an_unknown_run_is_404(api):
    answer = workflow_of(api, uuid.uuid4())
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "run_not_found"


def test_the_workflow_route_needs_a_token(api):
    answer = requests.get(f"{api.base}{PATH.format(run_id=uuid.uuid4())}", timeout=10)
    assert answer.status_code == 401
