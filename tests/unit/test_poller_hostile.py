"""Issue 12, the poller's and the reconciler's points: nothing may freeze, strand or mislabel a
run, whatever the Workbench answers; in-memory store and fake services."""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from batchcore.errors import DatabaseUnavailable, WorkbenchError
from batchcore.runs import workflow
from batchcore.runs.model import Run
from batchcore.workbench import JobStatus
from conductor_workers import polling, reconcile, submission, supervision
from tests.unit.fake_services import FakeConductor, FakeWorkbench
from tests.unit.fake_store import FakeClock, FakeStore

CFG = polling.SweepConfig(
    batch_size=10, concurrency=4, max_retries=0, lease_seconds=60, interval_seconds=5
)
RCFG = reconcile.ReconcileConfig(
    check_workflows_every_seconds=300, max_not_found_failures=3, give_up_seconds=600
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


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def sweep(store, workbench, conductor, cfg=CFG):
    return polling.sweep(store, workbench, conductor, cfg, clock=store.clock)


class PoisonedStore(FakeStore):
    """A store whose write fails for any batch holding the poisoned run (as a NUL would)."""

    poisoned: str | None = None

    def apply_poll_results(self, outcomes, interval_seconds):
        if any(o.run_id == self.poisoned for o in outcomes):
            self.calls.append("apply_poll_results")
            raise ValueError("A string literal cannot contain NUL (0x00) characters.")
        return super().apply_poll_results(outcomes, interval_seconds)


# ---------------------------------------------------------------- 1: a poison answer


def test_issue_12_1_a_poison_outcome_is_written_apart_and_never_aborts_the_sweep(
    workbench, conductor, clock
):
    store = PoisonedStore(clock)
    runs = [store.add_run("SUBMITTED") for _ in range(4)]
    store.poisoned = str(runs[0].id)
    for run in runs:
        workbench.jobs[run.workbench_job_id] = "SUCCEEDED"
    aborted = sample("poller_sweeps_aborted_total")
    summary = sweep(store, workbench, conductor)
    assert summary["changed"] == 3
    assert sample("poller_sweeps_aborted_total") == aborted
    for run in runs[1:]:
        assert store.row(run.id)["status"] == "COMPLETED"
    poisoned = store.row(runs[0].id)
    assert poisoned["status"] == "SUBMITTED"
    assert poisoned["poll_failures"] == 1
    assert poisoned["last_poll_error_kind"] == polling.KIND_UNWRITABLE
    assert "ValueError" in poisoned["last_poll_error"]
    assert poisoned["poll_lease_until"] is None, "the lease is given back"
    assert poisoned["next_poll_at"] > clock.now + timedelta(seconds=CFG.interval_seconds)
    # The next sweep is not stuck behind it: nothing else is due, and it is not claimed again.
    assert sweep(store, workbench, conductor)["checked"] == 0


def test_issue_12_1_a_lost_database_aborts_the_sweep_and_is_counted(workbench, conductor, clock):
    class DownStore(FakeStore):
        def claim_due_runs(self, batch_size, lease_seconds):
            raise DatabaseUnavailable("The database connection was lost: gone")

    aborted = sample("poller_sweeps_aborted_total")
    with pytest.raises(DatabaseUnavailable):
        sweep(DownStore(clock), workbench, conductor)
    assert sample("poller_sweeps_aborted_total") == aborted + 1


class OneAnswer:
    def __init__(self, job: JobStatus):
        self.job = job

    def get_job(self, job_id, timeout=None):
        return self.job


def test_issue_12_1_an_outcome_keeps_the_raw_values_and_a_silent_cancel_says_so():
    run = Run(id="00000000-0000-0000-0000-000000000001", status="RUNNING", workbench_job_id="j")
    job = JobStatus(
        "j",
        "CANCELLED",
        "FAILED",
        None,
        None,
        None,
        normalised={"finished_at_raw": "9999-12-31T23:59:59+20:00"},
    )
    outcome = polling.poll_one(OneAnswer(job), run, CFG, random.Random(1))
    assert outcome.new_status == "FAILED"
    assert outcome.error_message == "Cancelled at the Workbench"
    assert outcome.details["normalised"] == {"finished_at_raw": "9999-12-31T23:59:59+20:00"}
    assert outcome.details["workbench_status"] == "CANCELLED"


def test_issue_12_1_a_failed_status_call_records_the_redacted_answer():
    run = Run(id="00000000-0000-0000-0000-000000000002", status="RUNNING", workbench_job_id="j")

    class Html:
        def get_job(self, job_id, timeout=None):
            raise WorkbenchError(
                "not JSON",
                [{"status_code": 200, "body_excerpt": "<html>proxy</html>"}],
                transient=False,
                kind="malformed",
                status_code=200,
            )

    outcome = polling.poll_one(Html(), run, CFG, random.Random(1))
    assert outcome.error_kind == "malformed"
    assert outcome.details["answer"] == [{"status_code": 200, "body_excerpt": "<html>proxy</html>"}]


# ------------------------------------------------------- 3: answers retrying cannot fix


@pytest.mark.parametrize("kind", ["unknown_status", "malformed", "unauthorized"])
def test_issue_12_3_a_run_answered_only_unusably_for_give_up_seconds_ends_failed(
    store, workbench, conductor, clock, kind
):
    run = store.add_run("RUNNING", workflow_checked_at=clock.now)
    workbench.errors[run.workbench_job_id] = WorkbenchError(
        f"answer of kind {kind}", transient=False, kind=kind, status_code=200
    )
    sweep(store, workbench, conductor)
    clock.advance(RCFG.give_up_seconds - 1)
    store.row(run.id)["next_poll_at"] = clock.now
    sweep(store, workbench, conductor)
    store.row(run.id)["workflow_checked_at"] = clock.now
    assert reconcile.reconcile(store, conductor, RCFG) == {}, "retried within the limit"
    assert store.row(run.id)["poll_failures"] == 2
    clock.advance(2)
    assert reconcile.reconcile(store, conductor, RCFG) == {"gave_up": 1}
    row = store.row(run.id)
    assert row["status"] == "FAILED"
    assert row["error_details"]["code"] == kind
    assert f"answer of kind {kind}" in row["error_message"]
    assert store.history(run.id)[-1]["source"] == "reconciler"
    # The job may still run, unseen: the next sweep cancels it at the Workbench (issue 13).
    assert (row["cancel_reason"], row["cancel_sent_at"]) == ("ended", None)
    workbench.errors.pop(run.workbench_job_id)
    workbench.jobs[run.workbench_job_id] = "RUNNING"
    assert sweep(store, workbench, conductor)["ended_jobs_cancelled"] == 1
    assert workbench.cancelled == [run.workbench_job_id]
    assert workbench.jobs[run.workbench_job_id] == "CANCELLED"


def test_issue_12_3_a_streak_of_timeouts_is_never_given_up(store, workbench, conductor, clock):
    run = store.add_run(
        "RUNNING",
        workflow_checked_at=clock.now,
        last_poll_error_kind="timeout",
        poll_failing_since=clock.now - timedelta(days=1),
    )
    assert reconcile.reconcile(store, conductor, RCFG) == {}
    assert store.row(run.id)["status"] == "RUNNING"


def test_issue_12_3_a_new_kind_of_failure_gets_its_own_event(store, workbench, conductor, clock):
    run = store.add_run("RUNNING")
    for kind in ("timeout", "timeout", "unknown_status"):
        workbench.errors[run.workbench_job_id] = WorkbenchError(
            f"a {kind}", transient=False, kind=kind
        )
        store.row(run.id)["next_poll_at"] = clock.now
        sweep(store, workbench, conductor)
    events = [e["details"].get("kind") for e in store.history(run.id)[1:]]
    assert events == ["timeout", "unknown_status"]


# ----------------------------------------------------------------- 4: only 404s in a row


def test_issue_12_4_nine_timeouts_then_one_404_do_not_fail_a_run(store, workbench, conductor):
    run = store.add_run("RUNNING", workflow_checked_at=store.clock.now)
    kinds = ["timeout"] * 9 + ["not_found"]
    for kind in kinds:
        workbench.errors[run.workbench_job_id] = WorkbenchError(
            kind, transient=kind == "timeout", kind=kind
        )
        store.row(run.id)["next_poll_at"] = store.clock.now
        sweep(store, workbench, conductor)
    assert store.row(run.id)["poll_failures"] == 10
    assert reconcile.reconcile(store, conductor, RCFG) == {}
    for _ in range(RCFG.max_not_found_failures - 1):
        store.row(run.id)["next_poll_at"] = store.clock.now
        sweep(store, workbench, conductor)
    assert reconcile.reconcile(store, conductor, RCFG) == {"failed_lost": 1}
    assert store.row(run.id)["error_details"]["code"] == "not_found"


# ------------------------------------------------------------ 5: deadlines and the fence


def test_issue_12_5_each_status_call_gets_the_time_left_before_the_deadline():
    now = [100.0]
    seen = []

    class Slow:
        def get_job(self, job_id, timeout=None):
            seen.append(timeout)
            now[0] += timeout  # the call uses all it was given, then times out
            raise WorkbenchError("slow", transient=True, kind="timeout")

    cfg = polling.SweepConfig(max_retries=3, retry_base_seconds=0.0, retry_cap_seconds=0.0)
    with pytest.raises(WorkbenchError):
        polling.fetch_status(
            Slow(),
            "j",
            cfg,
            random.Random(1),
            lambda s: None,
            deadline=130.0,
            monotonic=lambda: now[0],
        )
    assert seen == [30.0], "no retry once the deadline has passed"


def test_issue_12_5_a_run_reached_after_the_deadline_is_not_asked_and_not_written(
    store, workbench, conductor
):
    run = store.add_run("SUBMITTED")
    workbench.jobs[run.workbench_job_id] = "RUNNING"
    claimed = store.claim_due_runs(10, 60)
    outcome = polling.poll_one(
        workbench, claimed[0], CFG, random.Random(1), store.clock, deadline=time.monotonic() - 1
    )
    assert outcome.deferred and workbench.calls == []


def test_issue_12_5_the_sweeps_calls_are_bounded_by_its_budget(store, workbench, conductor):
    store.add_run("SUBMITTED")
    cfg = polling.SweepConfig(batch_size=10, concurrency=2, time_budget_seconds=20.0)
    sweep(store, workbench, conductor, cfg)
    (timeout,) = workbench.timeouts
    assert 0 < timeout <= cfg.time_budget_seconds - polling.WRITE_MARGIN_SECONDS


def test_issue_12_5_a_stale_sweeps_write_back_is_fenced_off(store, workbench, conductor, clock):
    run = store.add_run("SUBMITTED")
    (stale,) = store.claim_due_runs(10, 60)
    clock.advance(61)  # the lease lapsed: another poller claims and records the run
    (fresh,) = store.claim_due_runs(10, 60)
    workbench.jobs[run.workbench_job_id] = "QUEUED"
    store.apply_poll_results([polling.poll_one(workbench, fresh, CFG, random.Random(1))], 5)
    workbench.errors[run.workbench_job_id] = WorkbenchError("late", transient=True, kind="timeout")
    late = polling.poll_one(workbench, stale, CFG, random.Random(1))
    assert store.apply_poll_results([late], 5) == []
    row = store.row(run.id)
    assert (row["poll_failures"], row["last_poll_error"]) == (0, None), "no double count"
    assert row["last_polled_at"] == clock.now


# -------------------------------------------------------------- 6: the loop keeper


def test_issue_12_6_the_keeper_survives_any_error_and_checks_again(store, conductor):
    calls = []

    class Flaky(FakeConductor):
        def correlated(self, name, correlation_id, include_closed=False):
            calls.append(name)
            if len(calls) == 1:
                raise KeyError("workflowId")
            if len(calls) == 2:
                raise ValueError("Expecting value: line 1 column 1 (char 0)")
            return super().correlated(name, correlation_id, include_closed)

    conductor = Flaky()
    stop = threading.Event()
    keeper = supervision.LoopKeeper(conductor, store, 5, stop, check_every=0.01).start()
    try:
        deadline = time.monotonic() + 5
        while keeper.loop_id is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert keeper.loop_id is not None, "the keeper went on after a KeyError and a ValueError"
        assert keeper.thread.is_alive()
        assert len(conductor.started) == 1
    finally:
        stop.set()
        keeper.thread.join(5)


def test_issue_12_6_healthz_fails_when_the_keeper_is_dead_or_no_sweep_is_seen(store, conductor):
    now = [1000.0]
    keeper = supervision.LoopKeeper(conductor, store, 5, threading.Event(), clock=lambda: now[0])
    keeper._sweep_seen_at = now[0]
    report = keeper.report()
    assert not report["ok"] and report["problems"] == [
        "the poller loop keeper thread is not running"
    ]
    keeper.thread = threading.current_thread()  # alive
    assert keeper.report()["ok"]
    now[0] += supervision.STALE_SWEEP_FLOOR_SECONDS + 1
    report = keeper.report()
    assert not report["ok"] and "no sweep seen finishing" in report["problems"][0]
    # A sweep seen ending makes it healthy again.
    loop_id = supervision.ensure_poller_loop(conductor, store, 5)
    conductor.workflows[loop_id]["tasks"] = [
        {"taskDefName": "poll_status", "status": "COMPLETED", "endTime": 123}
    ]
    keeper.check()
    assert keeper.report()["ok"]


def test_issue_12_6_a_paused_loop_is_replaced(store, conductor):
    paused = conductor.add(
        workflow.POLLER_WORKFLOW, workflow.POLLER_CORRELATION_ID, status="PAUSED"
    )
    store.poller_loop_id = paused
    kept = supervision.ensure_poller_loop(conductor, store, 5)
    assert kept != paused
    assert conductor.workflows[paused]["status"] == "TERMINATED"
    assert conductor.workflows[kept]["status"] == "RUNNING"


# ------------------------------------------------- 15: at most one live workflow per run


def test_issue_12_15_an_active_run_without_a_workflow_id_adopts_its_running_workflow(
    store, conductor
):
    run = store.add_run("RUNNING")
    older = conductor.add(workflow.BATCH_WORKFLOW, str(run.id))
    newer = conductor.add(workflow.BATCH_WORKFLOW, str(run.id))
    assert reconcile.reconcile(store, conductor, RCFG) == {"attached": 1}
    assert conductor.started == [], "no third workflow"
    assert store.row(run.id)["conductor_workflow_id"] == newer
    assert conductor.workflows[older]["status"] == "TERMINATED"


def test_issue_12_15_a_pending_run_keeps_one_of_its_live_workflows(store, conductor, clock):
    run = store.add_run("PENDING")
    clock.advance(RCFG.pending_after_seconds + 1)
    first = conductor.add(workflow.BATCH_WORKFLOW, str(run.id))
    second = conductor.add(workflow.BATCH_WORKFLOW, str(run.id))
    conductor.add(workflow.BATCH_WORKFLOW, str(run.id), status="FAILED")
    assert reconcile.reconcile(store, conductor, RCFG) == {"attached": 1}
    assert conductor.started == []
    live = [w for w in (first, second) if conductor.workflows[w]["status"] == "RUNNING"]
    assert live == [store.row(run.id)["conductor_workflow_id"]]


# ---------------------------------------------------- 17: FAILED only for a PENDING run


def test_issue_12_17_persist_failed_leaves_a_submitted_run_alone(store):
    run = store.add_run("SUBMITTED")
    out = submission.persist(store, str(run.id), "FAILED", "submit", error_message="late")
    assert out == {"status": "SUBMITTED", "changed": False}
    assert store.row(run.id)["status"] == "SUBMITTED"
    pending = store.add_run("PENDING")
    out = submission.persist(store, str(pending.id), "FAILED", "submit", error_message="no")
    assert out == {"status": "FAILED", "changed": True}
    assert store.row(pending.id)["error_message"] == "no"


# ------------------------------------------- 16: restarting a finished run's workflow


def test_issue_12_16_a_restarted_workflow_of_an_ended_run_is_finished_again(
    store, workbench, conductor
):
    run = store.add_run("SUBMITTED")
    wf = conductor.add(workflow.BATCH_WORKFLOW, str(run.id))
    store.row(run.id)["conductor_workflow_id"] = wf
    workbench.jobs[run.workbench_job_id] = "SUCCEEDED"
    assert sweep(store, workbench, conductor)["synced"] == 1
    # An operator restarts the finished workflow: it submits (the job id is reused), persists
    # SUBMITTED again, and waits.
    conductor.workflows[wf].update(status="RUNNING", waiting={workflow.WAIT_TASK_REF})
    out = submission.persist(
        store, str(run.id), "SUBMITTED", "persist", workbench_job_id=run.workbench_job_id
    )
    assert out == {"status": "COMPLETED", "changed": False}
    assert sweep(store, workbench, conductor)["synced"] == 1
    assert conductor.workflows[wf]["status"] == "COMPLETED"
    assert conductor.completed[-1][3]["status"] == "COMPLETED"
