"""Req 2.x/5.x: submit_to_workbench and persist_run logic on the real database and simulator."""

from __future__ import annotations

import pytest

from batchcore.runs.store import RunStore
from conductor_workers import submission
from tests.integration.helpers import fetch_run, history, make_run


def test_req_1_4_submit_sends_the_run_id_as_idempotency_key(database, workbench_client, simulator):
    run = make_run(database)
    out = submission.submit(RunStore(database), workbench_client, str(run["id"]))
    jobs = simulator.jobs(run["id"])
    assert [j["job_id"] for j in jobs] == [out["workbench_job_id"]]
    assert jobs[0]["idempotency_key"] == str(run["id"])
    again = submission.submit(RunStore(database), workbench_client, str(run["id"]))
    assert again["workbench_job_id"] == out["workbench_job_id"]
    assert again["reused"] is True
    assert len(simulator.jobs(run["id"])) == 1


def test_req_1_5_a_known_job_id_is_reused_without_calling_the_workbench(database, simulator):
    run = make_run(database)
    submission.persist(
        RunStore(database), str(run["id"]), "SUBMITTED", "persist", workbench_job_id="wb-x"
    )

    class Refusing:
        def submit_job(self, *args):
            raise AssertionError("the Workbench must not be called again")

    out = submission.submit(RunStore(database), Refusing(), str(run["id"]))
    assert out == {"workbench_job_id": "wb-x", "reused": True}


def test_req_5_1_transient_workbench_errors_go_back_to_conductor(
    database, workbench_client, simulator
):
    run = make_run(database)
    simulator.faults(error_5xx={"status": 503, "count": 1}, run_ids=[run["id"]])
    with pytest.raises(submission.TransientFailure, match="HTTP 503"):
        submission.submit(RunStore(database), workbench_client, str(run["id"]))
    assert simulator.jobs(run["id"]) == []


def test_req_5_1_unreachable_workbench_is_transient_and_says_so(database):
    from batchcore.workbench import WorkbenchClient

    run = make_run(database)
    client = WorkbenchClient("http://127.0.0.1:9", "token-123", connect_timeout=1)
    with pytest.raises(submission.TransientFailure) as failed:
        submission.submit(RunStore(database), client, str(run["id"]))
    client.close()
    # Conductor shows this reason to API clients: it says what failed, naming no address.
    assert str(failed.value) == "The Workbench API is unreachable: connection refused"


def test_req_5_3_a_missing_run_or_terminal_run_fails_terminally(database, workbench_client):
    with pytest.raises(submission.PermanentFailure, match="No pipeline run"):
        submission.submit(
            RunStore(database), workbench_client, "00000000-0000-0000-0000-000000000000"
        )
    run = make_run(database)
    submission.persist(
        RunStore(database), str(run["id"]), "FAILED", "gateway", error_message="stop"
    )
    with pytest.raises(submission.PermanentFailure, match="already FAILED"):
        submission.submit(RunStore(database), workbench_client, str(run["id"]))


def test_req_2_4_persist_run_applies_transition_and_event_once(database):
    run = make_run(database)
    first = submission.persist(
        RunStore(database), str(run["id"]), "SUBMITTED", "persist", workbench_job_id="wb-1"
    )
    second = submission.persist(
        RunStore(database), str(run["id"]), "SUBMITTED", "persist", workbench_job_id="wb-1"
    )
    assert (first["changed"], second["changed"]) == (True, False)
    stored = fetch_run(database, run["id"])
    assert stored["status"] == "SUBMITTED"
    assert stored["workbench_job_id"] == "wb-1"
    assert stored["submitted_at"] is not None
    events = history(database, run["id"])
    assert [(e["previous_status"], e["status"], e["source"]) for e in events] == [
        (None, "PENDING", "gateway"),
        ("PENDING", "SUBMITTED", "persist"),
    ]


def test_req_2_3_persist_refuses_another_job_id_for_a_submitted_run(database):
    run = make_run(database)
    submission.persist(
        RunStore(database), str(run["id"]), "SUBMITTED", "persist", workbench_job_id="wb-1"
    )
    with pytest.raises(submission.PermanentFailure, match="wb-1"):
        submission.persist(
            RunStore(database), str(run["id"]), "SUBMITTED", "persist", workbench_job_id="wb-2"
        )
    assert len(history(database, run["id"])) == 2


def test_req_2_5_failed_submission_stores_the_reason_and_details(database):
    run = make_run(database)
    reason = "The Workbench API is unreachable: connection refused"
    submission.persist(
        RunStore(database),
        str(run["id"]),
        "FAILED",
        "submit",
        error_message=reason,
        error_details={"task": "submit_to_workbench", "attempts": 5},
    )
    stored = fetch_run(database, run["id"])
    assert stored["status"] == "FAILED"
    assert stored["error_message"] == reason
    assert stored["error_details"] == {"task": "submit_to_workbench", "attempts": 5}
    assert stored["completed_at"] is not None and stored["submitted_at"] is None
    assert history(database, run["id"])[-1]["details"]["attempts"] == 5
