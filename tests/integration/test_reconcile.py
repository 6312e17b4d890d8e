"""Issue 6.1: the reconciler repairs runs the normal path left behind, on the real stack."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from batchcore.runs.store import RunStore
from conductor_workers import reconcile, submission
from tests.integration import private_workflow as workflows
from tests.integration.helpers import fetch_run, history, make_run

private_workflow = workflows.private_workflow  # a fixture

CFG = reconcile.ReconcileConfig(
    pending_after_seconds=60,
    check_workflows_every_seconds=0,
    batch=20,
    max_restarts=2,
    max_not_found_failures=3,
)


def _age(database, run_id, seconds=600):
    with database.transaction() as cur:
        cur.execute(
            "UPDATE pipeline_runs SET created_at = now() - %s * interval '1 second' WHERE id = %s",
            (seconds, run_id),
        )


def _start(conductor, name, run) -> str:
    return conductor.start_workflow(name, 1, str(run["id"]), {"pipeline_run_id": str(run["id"])})


def _reconciler_events(database, run_id):
    return [e for e in history(database, run_id) if e["source"] == "reconciler"]


def test_req_2_2_pending_run_whose_start_was_lost_gets_its_workflow(
    database, conductor, private_workflow
):
    name, started = private_workflow
    run = make_run(database)
    started.append(str(run["id"]))
    fresh = reconcile.reconcile(RunStore(database), conductor, CFG)
    assert fresh == {}, "a young PENDING run is left alone"
    _age(database, run["id"])
    assert reconcile.reconcile(RunStore(database), conductor, CFG) == {"restarted": 1}
    stored = fetch_run(database, run["id"])
    live = conductor.correlated(name, str(run["id"]))
    assert [w["workflowId"] for w in live] == [stored["conductor_workflow_id"]]
    (event,) = _reconciler_events(database, run["id"])
    assert event["details"]["action"] == "restarted"
    assert "no workflow was ever started" in event["message"]
    assert reconcile.reconcile(RunStore(database), conductor, CFG) == {"still_running": 1}


def test_req_5_3_pending_run_whose_workflow_was_terminated_fails_explicitly(
    database, conductor, private_workflow
):
    name, started = private_workflow
    run = make_run(database)
    started.append(str(run["id"]))
    workflow_id = _start(conductor, name, run)
    conductor.terminate(workflow_id, "operator cancelled it")
    _age(database, run["id"])
    assert reconcile.reconcile(RunStore(database), conductor, CFG) == {"failed": 1}
    stored = fetch_run(database, run["id"])
    assert stored["status"] == "FAILED"
    assert workflow_id in stored["error_message"]
    assert "operator cancelled it" in stored["error_message"]
    assert history(database, run["id"])[-1]["source"] == "reconciler"


def test_req_2_3_job_id_of_an_ended_workflow_is_recovered(
    database, conductor, conductor_url, private_workflow
):
    name, started = private_workflow
    run = make_run(database)
    started.append(str(run["id"]))
    workflow_id = _start(conductor, name, run)
    conductor.complete_task(workflow_id, "submit", "COMPLETED", {"workbench_job_id": "wb-lost"})
    conductor.terminate(workflow_id, "worker died between the Workbench answer and the commit")
    _age(database, run["id"])
    assert reconcile.reconcile(RunStore(database), conductor, CFG) == {"recovered_job": 1}
    stored = fetch_run(database, run["id"])
    assert (stored["status"], stored["workbench_job_id"]) == ("SUBMITTED", "wb-lost")


def test_req_5_3_restarts_are_bounded_then_the_run_fails(database, conductor, private_workflow):
    name, started = private_workflow
    run = make_run(database)
    started.append(str(run["id"]))
    _age(database, run["id"])
    for _ in range(CFG.max_restarts):
        assert reconcile.reconcile(RunStore(database), conductor, CFG) == {"restarted": 1}
        current = fetch_run(database, run["id"])["conductor_workflow_id"]
        conductor.complete_task(current, "submit", "FAILED", {})
    assert reconcile.reconcile(RunStore(database), conductor, CFG) == {"failed": 1}
    stored = fetch_run(database, run["id"])
    assert stored["status"] == "FAILED"
    assert f"restarted {CFG.max_restarts} times" in stored["error_message"]


def test_req_5_4_active_run_whose_workflow_was_terminated_gets_a_new_one(
    database, conductor, private_workflow
):
    name, started = private_workflow
    run = make_run(database)
    started.append(str(run["id"]))
    workflow_id = _start(conductor, name, run)
    with database.transaction() as cur:
        cur.execute(
            "UPDATE pipeline_runs SET conductor_workflow_id = %s WHERE id = %s",
            (workflow_id, run["id"]),
        )
    submission.persist(
        RunStore(database), str(run["id"]), "SUBMITTED", "persist", workbench_job_id="wb-1"
    )
    assert reconcile.reconcile(RunStore(database), conductor, CFG) == {"workflow_ok": 1}
    conductor.terminate(workflow_id, "someone terminated it")
    assert reconcile.reconcile(RunStore(database), conductor, CFG) == {"replaced": 1}
    stored = fetch_run(database, run["id"])
    assert stored["status"] == "SUBMITTED"
    assert stored["conductor_workflow_id"] not in (None, workflow_id)
    (event,) = _reconciler_events(database, run["id"])
    assert event["details"]["previous_workflow_status"] == "TERMINATED"


def test_req_3_6_a_job_the_workbench_lost_ends_the_run(database, conductor, private_workflow):
    run = make_run(database)
    submission.persist(
        RunStore(database), str(run["id"]), "SUBMITTED", "persist", workbench_job_id="wb-9"
    )
    with database.transaction() as cur:
        cur.execute(
            "UPDATE pipeline_runs SET poll_failures = 3, poll_kind_failures = 3, "
            "last_poll_error_kind = "
            "'not_found', last_poll_error = 'HTTP 404', workflow_checked_at = now() "
            "WHERE id = %s",
            (run["id"],),
        )
    lost_cfg = reconcile.ReconcileConfig(
        check_workflows_every_seconds=3600, max_not_found_failures=3
    )
    assert reconcile.reconcile(RunStore(database), conductor, lost_cfg) == {"failed_lost": 1}
    stored = fetch_run(database, run["id"])
    assert stored["status"] == "FAILED"
    assert "no longer knows job wb-9" in stored["error_message"]


def test_req_2_3_submitted_without_a_job_id_cannot_exist(database):
    import psycopg2

    run = make_run(database)
    with pytest.raises(psycopg2.errors.CheckViolation), database.transaction() as cur:
        cur.execute("UPDATE pipeline_runs SET status = 'SUBMITTED' WHERE id = %s", (run["id"],))


def test_req_2_4_a_repeated_submitted_after_the_poller_moved_on_is_a_no_op(database):
    run = make_run(database)
    submission.persist(
        RunStore(database), str(run["id"]), "SUBMITTED", "persist", workbench_job_id="wb-5"
    )
    with database.transaction() as cur:
        cur.execute("UPDATE pipeline_runs SET status = 'RUNNING' WHERE id = %s", (run["id"],))
    again = submission.persist(
        RunStore(database), str(run["id"]), "SUBMITTED", "persist", workbench_job_id="wb-5"
    )
    assert again == {"status": "RUNNING", "changed": False}


def test_issue_10_5_a_pending_run_is_attached_to_its_running_workflow(
    database, conductor, private_workflow
):
    name, started = private_workflow
    run = make_run(database)
    started.append(str(run["id"]))
    # The gateway started the workflow but died before recording its id.
    workflow_id = _start(conductor, name, run)
    _age(database, run["id"])
    assert reconcile.reconcile(RunStore(database), conductor, CFG) == {"attached": 1}
    stored = fetch_run(database, run["id"])
    assert (stored["status"], stored["conductor_workflow_id"]) == ("PENDING", workflow_id)
    assert [w["workflowId"] for w in conductor.correlated(name, str(run["id"]))] == [workflow_id]
    (event,) = _reconciler_events(database, run["id"])
    assert event["details"] == {
        "action": "attached",
        "workflow_id": workflow_id,
        "previous_workflow_id": None,
    }
    assert reconcile.reconcile(RunStore(database), conductor, CFG) == {"still_running": 1}


def test_issue_10_5_an_active_run_whose_workflow_vanished_gets_a_new_one(
    database, conductor, private_workflow
):
    name, started = private_workflow
    run = make_run(database)
    started.append(str(run["id"]))
    vanished = str(uuid.uuid4())  # Conductor answers 404: archived, purged, another cluster
    with database.transaction() as cur:
        cur.execute(
            "UPDATE pipeline_runs SET conductor_workflow_id = %s WHERE id = %s",
            (vanished, run["id"]),
        )
    submission.persist(
        RunStore(database), str(run["id"]), "SUBMITTED", "persist", workbench_job_id="wb-404"
    )
    assert reconcile.reconcile(RunStore(database), conductor, CFG) == {"replaced": 1}
    stored = fetch_run(database, run["id"])
    assert stored["status"] == "SUBMITTED"
    (live,) = conductor.correlated(name, str(run["id"]))
    assert stored["conductor_workflow_id"] == live["workflowId"] != vanished
    (event,) = _reconciler_events(database, run["id"])
    assert event["details"]["previous_workflow_status"] == "missing"
    assert event["details"]["previous_workflow_id"] == vanished


def test_issue_13_a_cancelled_run_is_never_revived_and_its_workflow_is_ended(
    database, conductor, private_workflow
):
    """Cancelled before any job was asked for, while Conductor could not be told: the
    reconciler ends the workflow left running and starts none."""
    name, started = private_workflow
    run = make_run(database)
    started.append(str(run["id"]))
    workflow_id = _start(conductor, name, run)
    RunStore(database).set_workflow_id(run["id"], workflow_id)
    cancelled, ended = RunStore(database).request_cancel(run["id"], "alice")
    assert ended and cancelled.status == "CANCELLED"
    # The reconciler looks at an ended run's workflow as soon as it has ended.
    progress_cfg = dataclasses.replace(CFG.progress, finish_after_seconds=0)
    cfg = dataclasses.replace(CFG, progress=progress_cfg)
    reconcile.reconcile(RunStore(database), conductor, cfg)
    assert conductor.get_workflow(workflow_id, include_tasks=False)["status"] != "RUNNING"
    assert [w["workflowId"] for w in conductor.correlated(name, str(run["id"]))] == []
    stored = fetch_run(database, run["id"])
    assert (stored["status"], stored["conductor_workflow_id"]) == ("CANCELLED", workflow_id)
    assert reconcile.reconcile(RunStore(database), conductor, cfg) == {}
