"""Issue 11: the reconciler judges a run's workflow by whether it moves; a stuck one is
re-decided, then replaced (bounded, audited); an ended run's running workflow is finished."""

from __future__ import annotations

import time

import pytest

from batchcore.runs import workflow
from conductor_workers import polling, progress, reconcile, unstick
from tests.unit.fake_services import FakeConductor, FakeWorkbench
from tests.unit.fake_store import FakeClock, FakeStore

CFG = reconcile.ReconcileConfig(
    pending_after_seconds=120,
    check_workflows_every_seconds=300,
    batch=20,
    progress=unstick.ProgressConfig(max_replacements=2, finish_after_seconds=60),
)
SUBMIT_POLL_TIMEOUT = CFG.progress.timeouts["submit_to_workbench"].poll_seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def store(clock):
    return FakeStore(clock)


@pytest.fixture
def conductor():
    return FakeConductor()


def ms_ago(seconds: float) -> int:
    return int((time.time() - seconds) * 1000)


def submit_task(status="SCHEDULED", ago=SUBMIT_POLL_TIMEOUT + progress.MARGIN_SECONDS + 60):
    """batch_pipeline_run's submit task, last changed `ago` seconds ago."""
    return {
        "referenceTaskName": workflow.SUBMIT_TASK_REF,
        "taskDefName": "submit_to_workbench",
        "taskType": "submit_to_workbench",
        "workflowTask": {"type": "SIMPLE"},
        "status": status,
        "scheduledTime": ms_ago(ago),
        "updateTime": ms_ago(ago),
    }


def wait_task(status="IN_PROGRESS"):
    return {
        "referenceTaskName": workflow.WAIT_TASK_REF,
        "taskType": "WAIT",
        "workflowTask": {"type": "WAIT"},
        "status": status,
        "scheduledTime": ms_ago(3600),
        "updateTime": ms_ago(3600),
    }


def stuck_pending(store, conductor, clock, tasks=None):
    """A PENDING run past the threshold whose recorded workflow never took its submit task."""
    run = store.add_run("PENDING")
    wf = conductor.add(workflow.BATCH_WORKFLOW, str(run.id), tasks=tasks or [submit_task()])
    store.row(run.id)["conductor_workflow_id"] = wf
    clock.advance(CFG.pending_after_seconds + 1)
    return run, wf


def reconciler_events(store, run):
    return [e for e in store.history(run.id) if e["source"] == "reconciler"]


def retry_task(found: dict) -> None:
    """What Conductor's decider does to a task past its poll timeout: a new attempt."""
    found["tasks"] = [submit_task(ago=0)]


def test_a_moving_workflow_of_a_pending_run_is_left_alone(store, conductor, clock):
    run, wf = stuck_pending(store, conductor, clock, tasks=[submit_task(ago=10)])
    assert reconcile.reconcile(store, conductor, CFG) == {"still_running": 1}
    assert conductor.decided == []
    assert reconciler_events(store, run) == []


def test_a_stuck_workflow_is_re_decided_first_and_the_repair_audited(store, conductor, clock):
    run, wf = stuck_pending(store, conductor, clock)
    conductor.on_decide = retry_task
    assert reconcile.reconcile(store, conductor, CFG) == {"re_decided": 1}
    assert conductor.decided == [wf]
    assert conductor.started == [], "a workflow that moved again is kept"
    (event,) = reconciler_events(store, run)
    assert event["details"]["action"] == "re-decided"
    assert event["details"]["moved"] is True
    assert (event["details"]["stuck_task"], event["details"]["stuck_task_status"]) == (
        "submit",
        "SCHEDULED",
    )
    assert "poll timeout" in event["details"]["stuck_reason"]


def test_a_workflow_a_decision_does_not_move_is_replaced(store, conductor, clock):
    run, wf = stuck_pending(store, conductor, clock)
    assert reconcile.reconcile(store, conductor, CFG) == {"replaced": 1}
    assert conductor.decided == [wf]
    assert conductor.workflows[wf]["status"] == "TERMINATED"
    assert "stuck at submit" in conductor.workflows[wf]["reasonForIncompletion"]
    ((name, _, correlation_id, inputs),) = conductor.started
    assert (name, correlation_id, inputs["pipeline_run_id"]) == (
        workflow.BATCH_WORKFLOW,
        str(run.id),
        str(run.id),
    )
    new_wf = store.row(run.id)["conductor_workflow_id"]
    assert new_wf not in (None, wf)
    decided, replaced = reconciler_events(store, run)
    assert (decided["details"]["action"], decided["details"]["moved"]) == ("re-decided", False)
    assert replaced["details"]["action"] == "replaced"
    assert (replaced["details"]["previous_workflow_id"], replaced["details"]["workflow_id"]) == (
        wf,
        new_wf,
    )
    assert replaced["details"]["replacement"] == 1
    assert store.row(run.id)["status"] == "PENDING"


def test_replacements_are_bounded_then_a_pending_run_fails(store, conductor, clock):
    run, _ = stuck_pending(store, conductor, clock)
    for _ in range(CFG.progress.max_replacements):
        assert reconcile.reconcile(store, conductor, CFG) == {"replaced": 1}
        current = store.row(run.id)["conductor_workflow_id"]
        conductor.workflows[current]["tasks"] = [submit_task()]  # the new one is stuck too
    assert reconcile.reconcile(store, conductor, CFG) == {"failed": 1}
    row = store.row(run.id)
    assert row["status"] == "FAILED"
    assert f"replaced {CFG.progress.max_replacements} times" in row["error_message"]
    assert conductor.workflows[row["conductor_workflow_id"]]["status"] == "TERMINATED"
    assert len(conductor.started) == CFG.progress.max_replacements


def test_an_active_runs_workflow_held_by_a_killed_worker_is_replaced(store, conductor, clock):
    run = store.add_run("SUBMITTED")
    held = dict(submit_task("IN_PROGRESS"), referenceTaskName="persist_submitted")
    held.update(taskDefName="persist_run", taskType="persist_run")
    wf = conductor.add(workflow.BATCH_WORKFLOW, str(run.id), tasks=[held])
    store.row(run.id)["conductor_workflow_id"] = wf
    assert reconcile.reconcile(store, conductor, CFG) == {"replaced": 1}
    assert "response timeout" in reconciler_events(store, run)[0]["details"]["stuck_reason"]
    assert store.row(run.id)["status"] == "SUBMITTED"


def test_past_its_replacements_an_active_run_is_left_to_the_poller(store, conductor, clock):
    run = store.add_run("RUNNING")
    wf = conductor.add(workflow.BATCH_WORKFLOW, str(run.id), tasks=[submit_task()])
    store.row(run.id)["conductor_workflow_id"] = wf
    for _ in range(CFG.progress.max_replacements):
        store._event(run.id, "RUNNING", "RUNNING", "reconciler", "r", {"action": "replaced"})
    assert reconcile.reconcile(store, conductor, CFG) == {"left_stuck": 1}
    assert store.row(run.id)["status"] == "RUNNING"
    assert conductor.started == []


def ended_run(store, conductor, clock, status="COMPLETED", tasks=None, **wf):
    run = store.add_run(status, workbench_job_id="wb-1")
    wf_id = conductor.add(workflow.BATCH_WORKFLOW, str(run.id), tasks=tasks or [], **wf)
    store.row(run.id)["conductor_workflow_id"] = wf_id
    clock.advance(CFG.progress.finish_after_seconds + 1)
    return run, wf_id


def test_issue_11_a_wait_completion_that_did_not_stick_is_not_marked_synced(
    store, conductor, clock
):
    run, wf = ended_run(store, conductor, clock)
    conductor.overwritten_completions = 1
    workbench = FakeWorkbench()
    assert polling.sweep(store, workbench, conductor, polling.SweepConfig())["synced"] == 0
    assert store.row(run.id)["workflow_synced_at"] is None
    assert conductor.workflows[wf]["status"] == "RUNNING"
    assert polling.sweep(store, workbench, conductor, polling.SweepConfig())["synced"] == 1
    assert conductor.workflows[wf]["status"] == "COMPLETED"


def test_the_reconciler_completes_the_wait_of_an_ended_run_and_marks_it_synced(
    store, conductor, clock
):
    run, wf = ended_run(store, conductor, clock, tasks=[wait_task()])
    assert reconcile.reconcile(store, conductor, CFG) == {"synced": 1}
    ((_, ref, _, output),) = conductor.completed
    assert (ref, output["status"]) == (workflow.WAIT_TASK_REF, "COMPLETED")
    assert store.row(run.id)["workflow_synced_at"] is not None
    (event,) = reconciler_events(store, run)
    assert event["details"]["action"] == "synced"
    assert event["details"]["workflow_status"] == "COMPLETED"


def test_an_ended_runs_stuck_workflow_is_re_decided_then_terminated(store, conductor, clock):
    held = dict(submit_task("IN_PROGRESS"), referenceTaskName="persist_submitted")
    held.update(taskDefName="persist_run", taskType="persist_run")
    run, wf = ended_run(store, conductor, clock, status="FAILED", tasks=[held], waiting=set())
    assert reconcile.reconcile(store, conductor, CFG) == {"synced": 1}
    assert conductor.decided == [wf]
    assert conductor.workflows[wf]["status"] == "TERMINATED"
    assert f"run {run.id} ended FAILED" in conductor.workflows[wf]["reasonForIncompletion"]
    (event,) = reconciler_events(store, run)
    assert event["details"]["steps"] == ["asked Conductor to decide it again", "terminated it"]
    assert store.row(run.id)["workflow_synced_at"] is not None


def test_an_ended_runs_workflow_that_still_moves_is_looked_at_later(store, conductor, clock):
    run, wf = ended_run(store, conductor, clock, tasks=[submit_task(ago=5)], waiting=set())
    assert reconcile.reconcile(store, conductor, CFG) == {"ended_workflow_moving": 1}
    assert store.row(run.id)["workflow_synced_at"] is None
    assert reconcile.reconcile(store, conductor, CFG) == {}, "not again before the interval"
    clock.advance(CFG.check_workflows_every_seconds + 1)
    conductor.workflows[wf]["status"] = "COMPLETED"
    assert reconcile.reconcile(store, conductor, CFG) == {"already_synced": 1}
    assert store.row(run.id)["workflow_synced_at"] is not None
    assert reconciler_events(store, run) == []


def test_an_ended_run_whose_workflow_vanished_is_marked_synced(store, conductor, clock):
    run, wf = ended_run(store, conductor, clock)
    del conductor.workflows[wf]
    assert reconcile.reconcile(store, conductor, CFG) == {"already_synced": 1}
    assert store.row(run.id)["workflow_synced_at"] is not None


def test_a_young_ended_run_is_left_to_the_poller(store, conductor, clock):
    run = store.add_run("COMPLETED", workbench_job_id="wb-1")
    store.row(run.id)["conductor_workflow_id"] = conductor.add(workflow.BATCH_WORKFLOW, "x")
    assert reconcile.reconcile(store, conductor, CFG) == {}


def test_a_workflow_started_for_a_run_the_gateway_failed_is_terminated(store, conductor, clock):
    run = store.add_run("FAILED")  # the start answered an error, yet Conductor started it
    orphan = conductor.add(workflow.BATCH_WORKFLOW, str(run.id), tasks=[])
    clock.advance(CFG.progress.finish_after_seconds + 1)
    assert reconcile.reconcile(store, conductor, CFG) == {"terminated_unrecorded": 1}
    assert conductor.workflows[orphan]["status"] == "TERMINATED"
    (event,) = reconciler_events(store, run)
    assert (event["details"]["action"], event["details"]["workflow_ids"]) == (
        "terminated",
        [orphan],
    )
    assert reconcile.reconcile(store, conductor, CFG) == {}, "looked at once"


def test_a_run_the_gateway_failed_without_a_workflow_is_looked_at_once(store, conductor, clock):
    run = store.add_run("FAILED")
    clock.advance(CFG.progress.finish_after_seconds + 1)
    assert reconcile.reconcile(store, conductor, CFG) == {"already_synced": 1}
    assert reconcile.reconcile(store, conductor, CFG) == {}
    assert reconciler_events(store, run) == []


def test_past_its_replacements_a_pending_run_whose_job_exists_follows_it(store, conductor, clock):
    submitted = dict(submit_task("COMPLETED"), outputData={"workbench_job_id": "wb-77"})
    held = dict(submit_task("IN_PROGRESS"), referenceTaskName="persist_submitted")
    held.update(taskDefName="persist_run", taskType="persist_run")
    run, wf = stuck_pending(store, conductor, clock, tasks=[submitted, held])
    for _ in range(CFG.progress.max_replacements):
        store._event(run.id, "PENDING", "PENDING", "reconciler", "r", {"action": "replaced"})
    assert reconcile.reconcile(store, conductor, CFG) == {"recovered_job": 1}
    row = store.row(run.id)
    assert (row["status"], row["workbench_job_id"]) == ("SUBMITTED", "wb-77")
    assert conductor.workflows[wf]["status"] == "TERMINATED"
    assert conductor.started == []
