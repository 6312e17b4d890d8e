"""The reconciler's decisions, repair by repair, against the in-memory store and Conductor."""

from __future__ import annotations

import pytest

from batchcore.errors import ConductorUnavailable
from batchcore.runs import workflow
from conductor_workers import reconcile
from tests.unit.fake_services import FakeConductor
from tests.unit.fake_store import FakeClock, FakeStore

CFG = reconcile.ReconcileConfig(
    pending_after_seconds=120,
    check_workflows_every_seconds=300,
    batch=20,
    max_restarts=2,
    max_not_found_failures=3,
)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def store(clock):
    return FakeStore(clock)


@pytest.fixture
def conductor():
    return FakeConductor()


def stuck_pending(store, clock, **fields):
    """A PENDING run older than the reconciler's threshold."""
    run = store.add_run("PENDING", **fields)
    clock.advance(CFG.pending_after_seconds + 1)
    return run


def reconciler_events(store, run):
    return [e for e in store.history(run.id) if e["source"] == "reconciler"]


def test_a_young_pending_run_is_left_alone(store, conductor):
    store.add_run("PENDING")
    assert reconcile.reconcile(store, conductor, CFG) == {}
    assert conductor.started == []


def test_a_pending_run_without_a_workflow_is_restarted_with_the_workflows_start_input(
    store, conductor, clock
):
    run = stuck_pending(store, clock)
    assert reconcile.reconcile(store, conductor, CFG) == {"restarted": 1}
    ((name, version, correlation_id, inputs),) = conductor.started
    assert (name, version, correlation_id) == (workflow.BATCH_WORKFLOW, 1, str(run.id))
    assert inputs == {
        "pipeline_run_id": str(run.id),
        "input_path_prefix": run.input_path_prefix,
        "output_path_prefix": run.output_path_prefix,
    }
    row = store.row(run.id)
    assert row["conductor_workflow_id"] == "wf-1"
    (event,) = reconciler_events(store, run)
    assert event["details"]["action"] == "restarted"
    assert "no workflow was ever started" in event["message"]
    assert reconcile.reconcile(store, conductor, CFG) == {"still_running": 1}


def test_issue_10_5_a_pending_run_is_attached_to_its_running_workflow(store, conductor, clock):
    run = stuck_pending(store, clock)
    running = conductor.add(workflow.BATCH_WORKFLOW, str(run.id))
    assert reconcile.reconcile(store, conductor, CFG) == {"attached": 1}
    assert store.row(run.id)["conductor_workflow_id"] == running
    assert conductor.started == [], "nothing new is started for a run whose workflow runs"
    (event,) = reconciler_events(store, run)
    assert event["details"] == {
        "action": "attached",
        "workflow_id": running,
        "previous_workflow_id": None,
    }
    assert store.row(run.id)["status"] == "PENDING"


def test_the_job_id_of_an_ended_workflow_is_recovered(store, conductor, clock):
    run = stuck_pending(store, clock)
    conductor.add(
        workflow.BATCH_WORKFLOW,
        str(run.id),
        status="TERMINATED",
        tasks=[
            {
                "referenceTaskName": workflow.SUBMIT_TASK_REF,
                "status": "COMPLETED",
                "outputData": {"workbench_job_id": "wb-lost"},
            }
        ],
    )
    assert reconcile.reconcile(store, conductor, CFG) == {"recovered_job": 1}
    row = store.row(run.id)
    assert (row["status"], row["workbench_job_id"]) == ("SUBMITTED", "wb-lost")


def test_a_pending_run_whose_workflow_was_terminated_fails_with_the_reason(store, conductor, clock):
    run = stuck_pending(store, clock)
    ended = conductor.add(
        workflow.BATCH_WORKFLOW,
        str(run.id),
        status="TERMINATED",
        reasonForIncompletion="operator cancelled it",
    )
    assert reconcile.reconcile(store, conductor, CFG) == {"failed": 1}
    row = store.row(run.id)
    assert row["status"] == "FAILED"
    assert ended in row["error_message"] and "operator cancelled it" in row["error_message"]


def test_restarts_are_bounded_then_the_run_fails(store, conductor, clock):
    run = stuck_pending(store, clock)
    for _ in range(CFG.max_restarts):
        assert reconcile.reconcile(store, conductor, CFG) == {"restarted": 1}
        conductor.workflows[store.row(run.id)["conductor_workflow_id"]]["status"] = "FAILED"
    assert reconcile.reconcile(store, conductor, CFG) == {"failed": 1}
    assert f"restarted {CFG.max_restarts} times" in store.row(run.id)["error_message"]
    assert len(conductor.started) == CFG.max_restarts


def test_an_active_run_with_a_live_workflow_is_only_marked_checked(store, conductor, clock):
    run = store.add_run("SUBMITTED")
    store.row(run.id)["conductor_workflow_id"] = conductor.add(workflow.BATCH_WORKFLOW, str(run.id))
    assert reconcile.reconcile(store, conductor, CFG) == {"workflow_ok": 1}
    assert store.row(run.id)["workflow_checked_at"] == clock.now
    assert reconcile.reconcile(store, conductor, CFG) == {}, "not checked again before due"
    clock.advance(CFG.check_workflows_every_seconds + 1)
    assert reconcile.reconcile(store, conductor, CFG) == {"workflow_ok": 1}


@pytest.mark.parametrize("vanished", [True, False], ids=["workflow-404", "terminated"])
def test_issue_10_5_an_active_run_whose_workflow_vanished_or_ended_gets_a_new_one(
    store, conductor, vanished
):
    run = store.add_run("RUNNING")
    old = conductor.add(workflow.BATCH_WORKFLOW, str(run.id))
    store.row(run.id)["conductor_workflow_id"] = old
    if vanished:
        del conductor.workflows[old]
    else:
        conductor.terminate(old, "someone terminated it")
    assert reconcile.reconcile(store, conductor, CFG) == {"replaced": 1}
    row = store.row(run.id)
    assert row["status"] == "RUNNING"
    assert row["conductor_workflow_id"] not in (None, old)
    (event,) = reconciler_events(store, run)
    assert event["details"]["previous_workflow_status"] == ("missing" if vanished else "TERMINATED")
    assert conductor.started[0][3]["pipeline_run_id"] == str(run.id)


def test_a_job_the_workbench_lost_ends_the_run(store, conductor, clock):
    run = store.add_run(
        "SUBMITTED",
        poll_failures=3,
        poll_kind_failures=3,
        last_poll_error_kind="not_found",
        last_poll_error="HTTP 404",
        workflow_checked_at=clock.now,
    )
    assert reconcile.reconcile(store, conductor, CFG) == {"failed_lost": 1}
    row = store.row(run.id)
    assert row["status"] == "FAILED"
    assert f"no longer knows job {run.workbench_job_id}" in row["error_message"]


def test_a_conductor_outage_postpones_the_repair_and_changes_nothing(store, conductor, clock):
    run = stuck_pending(store, clock)
    conductor.unreachable = True
    assert reconcile.reconcile(store, conductor, CFG) == {"postponed": 1}
    assert store.row(run.id)["status"] == "PENDING"
    assert reconciler_events(store, run) == []


def test_a_refused_restart_rolls_back_the_repair(store, conductor, clock):
    run = stuck_pending(store, clock)

    def refuse(*args):
        raise ConductorUnavailable("refused to start workflow: HTTP 500")

    conductor.start_workflow = refuse
    assert reconcile.reconcile(store, conductor, CFG) == {"postponed": 1}
    assert store.row(run.id)["conductor_workflow_id"] is None
    assert reconciler_events(store, run) == []


def test_a_run_that_moved_on_meanwhile_is_not_repaired(store, conductor, clock):
    run = stuck_pending(store, clock)
    real_correlated = conductor.correlated

    def correlated_then_submit(*args, **kwargs):
        found = real_correlated(*args, **kwargs)
        store.row(run.id).update(status="SUBMITTED", workbench_job_id="wb-raced")
        return found

    conductor.correlated = correlated_then_submit
    assert reconcile.reconcile(store, conductor, CFG) == {"moved_on": 1}
    assert conductor.started == []
