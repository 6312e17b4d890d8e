"""Issue 10.1: a Workbench error that retrying cannot fix (a 4xx, a malformed answer) fails the
run at once, through the real submit_to_workbench worker and Conductor, after one call."""

from __future__ import annotations

import uuid

import pytest

# A `slow` fault of no delay, aimed at one test's runs, counts their submit calls.
COUNTER = 10


@pytest.mark.parametrize(
    ("fault", "parameters", "said"),
    [
        pytest.param(None, {"simulate": {"outcome": "EXPLODE"}}, "422", id="4xx"),
        pytest.param("malformed_json", {}, "breaks its contract", id="malformed-json"),
        pytest.param("html_200", {}, "breaks its contract", id="html-200"),
        pytest.param("unknown_status", {}, "breaks its contract", id="unknown-status"),
    ],
)
def test_issue_10_1_a_permanent_workbench_error_fails_the_run_after_one_call(
    api, simulator, fault, parameters, said
):
    prefix = f"s3://e2e-in/permanent-{uuid.uuid4().hex}"
    aimed = {"only": "submit", "input_path_prefixes": [prefix]}
    armed = {"slow": {"seconds": 0, "count": COUNTER, **aimed}}
    if fault:  # a second call would meet the same fault
        armed[fault] = {"count": 5, **aimed}
    simulator.faults(**armed)
    body = {
        "pipeline": "demo-batch",
        "mode": "BATCH",
        "input_path_prefix": prefix,
        "output_path_prefix": f"s3://e2e-out/permanent-{uuid.uuid4().hex}",
        "parameters": parameters,
    }
    resp = api.post_run(body)
    assert resp.status_code == 202, resp.text
    run = api.await_status(resp.json()["id"], ("SUBMITTED", "FAILED"), timeout=60)
    assert run["status"] == "FAILED", run
    assert said in run["error_message"], run["error_message"]
    assert run["error_details"]["task"] == "submit_to_workbench"
    assert run["workbench_job_id"] is None
    moves = [(e["previous_status"], e["status"], e["source"]) for e in run["history"]]
    assert moves[:2] == [(None, "PENDING", "gateway"), ("PENDING", "FAILED", "submit")]
    # A call was made, so a job might exist: a later sweep looks it up by the run's key and
    # notes what it found on the ended run (issue 13); nothing else may follow.
    assert set(moves[2:]) <= {("FAILED", "FAILED", "poller")}, moves
    calls = COUNTER - simulator.armed()["slow"]["remaining"]
    assert calls == 1, f"{calls} submit calls to the Workbench for a permanent error"
