"""Issue 12.16: an operator who restarts a finished batch_pipeline_run gets a workflow that ends
again with the run's outcome, not one that waits forever (the run was already synced)."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.conftest import TERMINAL, run_body
from tests.integration.helpers import await_true


@pytest.mark.parametrize(
    ("simulate", "ended"),
    [
        ({"queue_seconds": 0, "duration_seconds": 0.5}, "COMPLETED"),
        ({"outcome": "FAILED", "error_message": "disk full", "duration_seconds": 0.5}, "FAILED"),
    ],
)
def test_issue_12_16_a_restarted_finished_workflow_ends_again_with_the_runs_outcome(
    api, conductor_api, conductor_url, simulate, ended
):
    resp = api.post_run(run_body(parameters={"simulate": simulate}))
    assert resp.status_code == 202, resp.text
    run = api.await_status(resp.json()["id"], TERMINAL, timeout=90)
    assert run["status"] == ended
    workflow_id = run["conductor_workflow_id"]

    def workflow_status():
        status = conductor_api(f"/workflow/{workflow_id}", includeTasks="false")["status"]
        return status if status not in ("RUNNING", "PAUSED") else None

    assert await_true(workflow_status, 60, "the run's workflow to end") == ended
    restarted = requests.post(f"{conductor_url}/workflow/{workflow_id}/restart", timeout=10)
    assert restarted.status_code in (200, 204), restarted.text
    assert await_true(workflow_status, 60, "the restarted workflow to end again") == ended
    again = api.get_run(run["id"])
    assert (again["status"], again["workbench_job_id"]) == (ended, run["workbench_job_id"])
    assert [e["status"] for e in again["history"]].count(ended) == 1, "the run did not change"
