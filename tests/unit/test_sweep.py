"""The poller's decisions, sweep by sweep, against the in-memory store and fake services."""

from __future__ import annotations

import threading

import pytest

from batchcore.errors import ConductorUnavailable, WorkbenchError
from batchcore.runs import workflow
from conductor_workers import polling
from tests.unit.fake_services import FakeConductor, FakeWorkbench, MidpointRandom
from tests.unit.fake_store import FakeClock, FakeStore

CFG = polling.SweepConfig(
    batch_size=10, concurrency=4, max_retries=0, lease_seconds=60, interval_seconds=5
)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def store(clock):
    return FakeStore(clock)


@pytest.fixture
def workbench():
    return FakeWorkbench()


@pytest.fixture
def conductor():
    return FakeConductor()


def sweep(store, workbench, conductor, cfg=CFG, **kwargs) -> dict:
    return polling.sweep(store, workbench, conductor, cfg, clock=store.clock, **kwargs)


def test_due_runs_move_with_one_event_each_and_others_are_left_alone(
    store, workbench, conductor, clock
):
    moving = store.add_run("SUBMITTED")
    finished = store.add_run("RUNNING")
    queued = store.add_run("SUBMITTED")
    not_due = store.add_run("SUBMITTED", next_poll_at=clock.now.replace(year=2027))
    leased = store.add_run("SUBMITTED", poll_lease_until=clock.now.replace(year=2027))
    pending = store.add_run("PENDING")
    workbench.jobs.update(
        {
            moving.workbench_job_id: "RUNNING",
            finished.workbench_job_id: "SUCCEEDED",
            queued.workbench_job_id: "QUEUED",
        }
    )
    summary = sweep(store, workbench, conductor)
    assert (summary["checked"], summary["changed"], summary["failed"]) == (3, 2, 0)
    assert store.row(moving.id)["status"] == "RUNNING"
    assert store.row(finished.id)["status"] == "COMPLETED"
    assert store.row(finished.id)["next_poll_at"] is None
    assert store.row(queued.id)["status"] == "SUBMITTED"
    assert store.row(queued.id)["next_poll_at"] == clock.now.replace(second=5)
    assert sorted(workbench.calls) == sorted(r.workbench_job_id for r in (moving, finished, queued))
    assert [e["message"] for e in store.history(finished.id)][-1] == "Workbench job succeeded"
    for run in (not_due, leased, pending, queued):
        assert len(store.history(run.id)) == 1, "no event for a run that did not move"


def test_a_status_that_would_move_back_is_ignored(store, workbench, conductor):
    run = store.add_run("RUNNING")
    workbench.jobs[run.workbench_job_id] = "QUEUED"
    assert sweep(store, workbench, conductor)["changed"] == 0
    assert store.row(run.id)["status"] == "RUNNING"


def test_a_failed_job_stores_its_error_and_a_failed_poll_opens_one_streak_event(
    store, workbench, conductor, clock
):
    failed = store.add_run("RUNNING")
    broken = store.add_run("SUBMITTED")
    workbench.jobs[failed.workbench_job_id] = "FAILED"
    workbench.errors[broken.workbench_job_id] = WorkbenchError(
        "HTTP 502", transient=True, kind="server_error", status_code=502
    )
    sweep(store, workbench, conductor)
    assert store.row(failed.id)["error_message"] == "The Workbench job failed"
    for _ in range(3):
        clock.now = store.row(broken.id)["next_poll_at"]
        sweep(store, workbench, conductor)
    row = store.row(broken.id)
    assert (row["status"], row["poll_failures"], row["last_poll_error_kind"]) == (
        "SUBMITTED",
        4,
        "server_error",
    )
    streak = [e for e in store.history(broken.id) if e["source"] == "poller"]
    assert len(streak) == 1 and streak[0]["details"]["consecutive_failures"] == 1


def test_issue_10_3_the_failure_backoff_doubles_per_failed_sweep_up_to_its_cap(
    store, workbench, conductor, clock
):
    """A schedule that does not grow (a constant, or all zeros) fails here."""
    run = store.add_run("SUBMITTED")
    workbench.errors[run.workbench_job_id] = WorkbenchError(
        "HTTP 503", transient=True, kind="server_error", status_code=503
    )
    gaps = []
    for _ in range(8):
        clock.now = store.row(run.id)["next_poll_at"]
        sweep(store, workbench, conductor, rng=MidpointRandom())
        gaps.append((store.row(run.id)["next_poll_at"] - clock.now).total_seconds())
    # interval 5 s * 2**failures, jittered to its midpoint (x0.75), capped at 300 s (x0.75).
    assert gaps == [7.5, 15.0, 30.0, 60.0, 120.0, 225.0, 225.0, 225.0]
    assert workbench.calls == [run.workbench_job_id] * 8, "asked once per sweep, when due"


def test_issue_10_3_a_retry_after_longer_than_the_backoff_is_the_floor(
    store, workbench, conductor, clock
):
    run = store.add_run("SUBMITTED")
    workbench.errors[run.workbench_job_id] = WorkbenchError(
        "HTTP 429", transient=True, kind="rate_limited", status_code=429, retry_after=90
    )
    sweep(store, workbench, conductor, rng=MidpointRandom())
    assert (store.row(run.id)["next_poll_at"] - clock.now).total_seconds() == 90


def test_batches_until_a_short_claim(store, workbench, conductor):
    runs = [store.add_run("SUBMITTED") for _ in range(5)]
    for run in runs:
        workbench.jobs[run.workbench_job_id] = "QUEUED"
    cfg = polling.SweepConfig(batch_size=2, concurrency=2, max_retries=0)
    summary = sweep(store, workbench, conductor, cfg)
    assert (summary["batches"], summary["checked"]) == (3, 5)
    assert store.calls.count("claim_due_runs") == 3
    assert store.calls.count("apply_poll_results") == 3


class GatedWorkbench(FakeWorkbench):
    """Holds each call until one more than `bound` calls are in flight, which a bounded sweep
    never lets happen, or until a short grace period shows no more are coming."""

    GRACE_SECONDS = 0.1

    def __init__(self, bound: int):
        super().__init__()
        self.bound = bound
        self.in_flight = self.peak = 0
        self.cond = threading.Condition()

    def get_job(self, job_id, timeout=None):
        with self.cond:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.in_flight > self.bound, timeout=self.GRACE_SECONDS)
        try:
            return super().get_job(job_id, timeout)
        finally:
            with self.cond:
                self.in_flight -= 1


@pytest.mark.parametrize(("concurrency", "runs"), [(1, 4), (3, 9)])
def test_issue_10_6_status_calls_in_flight_are_bounded_by_the_sweeps_own_concurrency(
    store, conductor, concurrency, runs
):
    due = [store.add_run("SUBMITTED") for _ in range(runs)]
    workbench = GatedWorkbench(bound=concurrency)
    for run in due:
        workbench.jobs[run.workbench_job_id] = "RUNNING"
    cfg = polling.SweepConfig(batch_size=50, concurrency=concurrency, max_retries=0)
    assert sweep(store, workbench, conductor, cfg)["changed"] == runs
    assert workbench.peak == concurrency


def test_issue_10_4_the_wait_task_of_an_ended_run_is_completed_once(store, conductor, workbench):
    run = store.add_run("RUNNING")
    run_wf = conductor.add(workflow.BATCH_WORKFLOW, str(run.id))
    store.row(run.id)["conductor_workflow_id"] = run_wf
    workbench.jobs[run.workbench_job_id] = "SUCCEEDED"
    assert sweep(store, workbench, conductor)["synced"] == 1
    ((wf_id, ref, status, output),) = conductor.completed
    assert (wf_id, ref, status) == (run_wf, workflow.WAIT_TASK_REF, "COMPLETED")
    assert output == {
        "status": "COMPLETED",
        "workbench_job_id": run.workbench_job_id,
        "error_message": None,
        "reason": None,  # TERMINATE's reason, for a run that failed or was cancelled
    }
    assert sweep(store, workbench, conductor)["synced"] == 0
    assert len(conductor.completed) == 1


@pytest.mark.parametrize(
    "failure",
    [
        ConductorUnavailable("Conductor at http://conductor.test/api unreachable"),
        ConductorUnavailable("HTTP 500", details=[{"status_code": 500}]),
    ],
    ids=["unreachable", "server-error"],
)
def test_issue_10_4_a_failed_completion_is_retried_by_a_later_sweep(
    store, conductor, workbench, failure
):
    run = store.add_run("FAILED")
    run_wf = conductor.add(workflow.BATCH_WORKFLOW, str(run.id))
    store.row(run.id).update(conductor_workflow_id=run_wf, workbench_job_id="wb-1")
    conductor.complete_failures.append(failure)
    assert sweep(store, workbench, conductor)["synced"] == 0
    assert store.row(run.id)["workflow_synced_at"] is None
    assert sweep(store, workbench, conductor)["synced"] == 1
    assert [c[0] for c in conductor.completed] == [run_wf]
    assert store.row(run.id)["workflow_synced_at"] is not None


def test_issue_10_4_a_completion_sent_before_the_wait_task_exists_is_retried(
    store, conductor, workbench
):
    run = store.add_run("COMPLETED", workbench_job_id="wb-2")
    run_wf = conductor.add(workflow.BATCH_WORKFLOW, str(run.id), waiting=set())
    store.row(run.id)["conductor_workflow_id"] = run_wf
    assert sweep(store, workbench, conductor)["synced"] == 0, "the workflow still runs"
    conductor.workflows[run_wf]["waiting"].add(workflow.WAIT_TASK_REF)
    assert sweep(store, workbench, conductor)["synced"] == 1
    assert conductor.workflows[run_wf]["status"] == "COMPLETED"


@pytest.mark.parametrize("ended", ["COMPLETED", "TERMINATED"])
def test_issue_10_4_a_workflow_already_ended_needs_no_completion(
    store, conductor, workbench, ended
):
    run = store.add_run("COMPLETED", workbench_job_id="wb-3")
    run_wf = conductor.add(workflow.BATCH_WORKFLOW, str(run.id), status=ended, waiting=set())
    store.row(run.id)["conductor_workflow_id"] = run_wf
    assert sweep(store, workbench, conductor)["synced"] == 1
    assert conductor.completed == []


def test_issue_10_4_conductor_down_leaves_the_run_to_sync_later(store, conductor, workbench):
    run = store.add_run("COMPLETED", workbench_job_id="wb-4")
    run_wf = conductor.add(workflow.BATCH_WORKFLOW, str(run.id))
    store.row(run.id)["conductor_workflow_id"] = run_wf
    conductor.unreachable = True
    assert sweep(store, workbench, conductor)["synced"] == 0
    conductor.unreachable = False
    assert sweep(store, workbench, conductor)["synced"] == 1
