"""Re-running over HTTP (issue 13): a new run with the original's inputs, both ways linked,
409 while the original is active, 404 for an unknown id, and Idempotency-Keys scoped to the
token's name."""

from __future__ import annotations

import uuid
from datetime import datetime

import requests

from tests.e2e.conftest import run_body
from tests.e2e.named_gateway import RUN_DEADLINE_SECONDS, alice, bob, named_gateway  # noqa: F401

QUICK = {"simulate": {"duration_seconds": 0.5}}
FAILING = {"simulate": {"outcome": "FAILED", "error_message": "bad input", "duration_seconds": 0.5}}


def rerun(api, run_id, body=None, key: str | None = None) -> requests.Response:
    headers = {"Idempotency-Key": key} if key else {}
    kwargs = {"json": body} if body is not None else {}
    return api.session.post(
        f"{api.base}/api/v1/pipeline-runs/{run_id}/rerun", headers=headers, timeout=40, **kwargs
    )


def ended_run(api, parameters: dict, status: str = "COMPLETED", **fields) -> dict:
    created = api.post_run(run_body(parameters=parameters, **fields))
    assert created.status_code == 202, created.text
    return api.await_status(created.json()["id"], status, timeout=90)


def test_a_completed_run_is_re_run_with_its_inputs_and_both_runs_name_each_other(api):
    original = ended_run(api, QUICK)
    answer = rerun(api, original["id"])
    assert answer.status_code == 202, answer.text
    new = answer.json()
    assert answer.headers["Location"] == f"/api/v1/pipeline-runs/{new['id']}"
    assert new["id"] != original["id"] and new["rerun_of"] == original["id"]
    for name in ("pipeline", "mode", "input_path_prefix", "output_path_prefix", "parameters"):
        assert new[name] == original[name], name
    # The caller's token's name (the stack's token is the original's submitter too).
    assert new["submitted_by"] == original["submitted_by"] and new["reruns"] == []
    assert new["history"][0]["details"]["rerun_of"] == original["id"]
    done = api.await_status(new["id"], "COMPLETED", timeout=90)
    assert done["workbench_job_id"] not in (None, original["workbench_job_id"])
    again = api.get_run(original["id"])
    assert again["reruns"] == [new["id"]]
    noted = again["history"][-1]
    assert (noted["status"], noted["message"]) == ("COMPLETED", f"Re-run as run {new['id']}")
    assert noted["actor"] == original["submitted_by"]


def test_a_failed_run_is_re_run_with_new_parameters_and_completes(api):
    original = ended_run(api, FAILING, "FAILED")
    assert original["error_message"] == "bad input"
    answer = rerun(api, original["id"], {"parameters": {**QUICK, "attempt": 2}})
    assert answer.status_code == 202, answer.text
    new = answer.json()
    assert new["parameters"] == {**QUICK, "attempt": 2}
    done = api.await_status(new["id"], "COMPLETED", timeout=90)
    assert (done["rerun_of"], done["error_message"]) == (original["id"], None)
    second = rerun(api, original["id"]).json()
    assert second["parameters"] == FAILING
    assert api.get_run(original["id"])["reruns"] == [new["id"], second["id"]]
    api.await_status(second["id"], "FAILED", timeout=90)


def test_an_active_run_is_not_re_run(api):
    created = api.post_run(run_body(parameters={"simulate": {"duration_seconds": 20}}))
    run_id = created.json()["id"]
    answer = rerun(api, run_id)
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "run_not_terminal" and run_id in error["message"]
    assert api.get_run(run_id)["reruns"] == []
    api.await_status(run_id, "COMPLETED", timeout=90)


def test_an_unknown_run_is_not_found_and_a_bad_body_is_named(api):
    for unknown in (uuid.uuid4(), "not-a-uuid"):
        answer = rerun(api, unknown)
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "run_not_found"
    original = ended_run(api, QUICK)
    bad = rerun(api, original["id"], {"parameters": [], "input_path_prefix": "s3://x/"})
    assert bad.status_code == 422
    named = {(d["field"], d["rule"]) for d in bad.json()["error"]["details"]}
    assert named == {("parameters", "type"), ("input_path_prefix", "unknown_field")}
    assert api.get_run(original["id"])["reruns"] == []


def test_a_rerun_key_replays_for_its_client_conflicts_on_another_body_and_is_scoped(
    alice,  # noqa: F811 (the fixture)
    bob,  # noqa: F811
):
    original = ended_run(alice, QUICK)
    key = f"rerun-{uuid.uuid4().hex}"
    first = rerun(alice, original["id"], {"parameters": {"n": 1}}, key=key)
    assert first.status_code == 202, first.text
    mine = first.json()
    assert mine["submitted_by"] == "alice" and mine["history"][0]["actor"] == "alice"
    # A fresh deadline: the pipeline has none, so the setting's.
    assert deadline_seconds(mine) == RUN_DEADLINE_SECONDS
    replay = rerun(alice, original["id"], {"parameters": {"n": 1}}, key=key)
    assert (replay.status_code, replay.headers.get("Idempotent-Replayed")) == (200, "true")
    assert replay.json()["id"] == mine["id"]
    other_body = rerun(alice, original["id"], {"parameters": {"n": 2}}, key=key)
    assert other_body.status_code == 409 and other_body.json()["error"]["code"] == "conflict"
    assert mine["id"] in other_body.text
    # Bob's key of the same name is his own: a new run, and nothing of alice's shown.
    bobs = rerun(bob, original["id"], {"parameters": {"n": 1}}, key=key)
    assert bobs.status_code == 202 and bobs.json()["id"] != mine["id"]
    assert bobs.json()["submitted_by"] == "bob" and mine["id"] not in bobs.text
    assert alice.get_run(original["id"])["reruns"] == [mine["id"], bobs.json()["id"]]
    for run_id in (mine["id"], bobs.json()["id"]):
        alice.await_status(run_id, "COMPLETED", timeout=90)


def deadline_seconds(run: dict) -> float:
    """Seconds from the run's creation to its deadline."""
    created, deadline = (datetime.fromisoformat(run[n]) for n in ("created_at", "deadline_at"))
    return (deadline - created).total_seconds()
