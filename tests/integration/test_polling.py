"""Req 3.x: poll_status sweeps on the real database against the real simulator."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from batchcore.conductor import ConductorClient
from batchcore.runs import workflow
from batchcore.runs.model import Transition
from batchcore.runs.store import RunStore
from batchcore.workbench import WorkbenchClient
from conductor_workers import polling, submission
from tests.integration import private_workflow as workflows
from tests.integration.helpers import await_true, fetch_run, history, make_run

private_workflow = workflows.private_workflow  # a fixture

CFG = polling.SweepConfig(
    batch_size=7,
    concurrency=8,
    max_retries=2,
    lease_seconds=30,
    interval_seconds=1,
    retry_base_seconds=0.05,
    retry_cap_seconds=0.2,
)


class CountingClient(WorkbenchClient):
    """A real client that counts status calls per job."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: collections.Counter = collections.Counter()
        self._lock = threading.Lock()

    def get_job(self, job_id, timeout=None):
        with self._lock:
            self.calls[job_id] += 1
        return super().get_job(job_id, timeout)


@pytest.fixture
def counting_client(stack_env):
    client = CountingClient(
        stack_env["WORKBENCH_API_URL"],
        stack_env["WORKBENCH_API_TOKEN"],
        connect_timeout=1,
        read_timeout=5,
    )
    yield client
    client.close()


def submitted_run(database, client, simulate: dict | None = None) -> dict:
    """A run whose job the simulator really has, recorded SUBMITTED."""
    run = make_run(database, {"simulate": simulate} if simulate else {})
    out = submission.submit(RunStore(database), client, str(run["id"]))
    submission.persist(
        RunStore(database),
        str(run["id"]),
        "SUBMITTED",
        "persist",
        workbench_job_id=out["workbench_job_id"],
    )
    return fetch_run(database, run["id"])


def sweep_until_terminal(database, client, conductor, runs, timeout=60.0):
    def all_terminal():
        polling.sweep(RunStore(database), client, conductor, CFG)
        return all(fetch_run(database, r["id"])["status"] in ("COMPLETED", "FAILED") for r in runs)

    await_true(all_terminal, timeout, "every run to reach a terminal status", every=0.3)


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_req_3_4_mixed_outcomes_reach_the_workbench_truth(
    database, workbench_client, conductor, simulator
):
    rng = random.Random(7)
    plans = []
    for i in range(18):
        outcome = ["SUCCEEDED", "FAILED", "CANCELLED"][i % 3]
        plan = {
            "outcome": outcome,
            "queue_seconds": round(rng.uniform(0, 0.6), 2),
            "duration_seconds": round(rng.uniform(0.2, 2.0), 2),
        }
        if outcome == "FAILED":
            plan["error_message"] = f"step {i} ran out of memory"
        plans.append(plan)
    runs = [submitted_run(database, workbench_client, p) for p in plans]
    sweep_until_terminal(database, workbench_client, conductor, runs)
    for run, plan in zip(runs, plans, strict=True):
        stored = fetch_run(database, run["id"])
        (job,) = simulator.jobs(run["id"])
        assert job["status"] == plan["outcome"]
        expected = "COMPLETED" if plan["outcome"] == "SUCCEEDED" else "FAILED"
        assert stored["status"] == expected, (plan, stored["status"])
        assert stored["completed_at"] == _ts(job["finished_at"])
        assert stored["started_at"] == _ts(job["started_at"])
        if plan["outcome"] == "FAILED":
            assert stored["error_message"] == plan["error_message"]
        if plan["outcome"] == "CANCELLED":
            assert stored["error_message"]
        events = history(database, run["id"])
        moves = [(e["previous_status"], e["status"]) for e in events]
        assert len(moves) == len(set(moves)), f"duplicated transition in {moves}"
        assert moves[-1][1] == expected
        assert all(e["source"] == "poller" for e in events[2:])


def test_req_3_8_a_job_that_keeps_failing_does_not_stop_the_others(
    database, workbench_client, conductor, simulator
):
    good = [
        submitted_run(database, workbench_client, {"duration_seconds": 0.2, "queue_seconds": 0})
        for _ in range(4)
    ]
    bad = make_run(database)
    submission.persist(
        RunStore(database),
        str(bad["id"]),
        "SUBMITTED",
        "persist",
        workbench_job_id="wb-does-not-exist",
    )
    sweep_until_terminal(database, workbench_client, conductor, good)
    stored = fetch_run(database, bad["id"])
    assert stored["status"] == "SUBMITTED"
    assert stored["poll_failures"] >= 1
    assert "wb-does-not-exist" in stored["last_poll_error"] or "404" in stored["last_poll_error"]
    assert stored["next_poll_at"] > stored["last_polled_at"]
    failures_before = stored["poll_failures"]
    with database.transaction() as cur:
        cur.execute("UPDATE pipeline_runs SET next_poll_at = now() WHERE id = %s", (bad["id"],))
    polling.sweep(RunStore(database), workbench_client, conductor, CFG)
    again = fetch_run(database, bad["id"])
    assert again["poll_failures"] == failures_before + 1
    streak_events = [
        e
        for e in history(database, bad["id"])
        if e["message"].startswith("Workbench status could not be read")
    ]
    assert len(streak_events) == 1
    assert streak_events[0]["details"]["kind"] == "not_found"


def test_req_3_1_two_pollers_at_once_poll_each_due_run_once(
    database, database_url, counting_client, conductor
):
    from batchcore.db import Database

    runs = [submitted_run(database, counting_client, {"duration_seconds": 60}) for _ in range(40)]
    counting_client.calls.clear()
    other_db = Database(database_url, maxconn=3)
    try:
        barrier = threading.Barrier(2)

        def one(db):
            barrier.wait()
            return polling.sweep(RunStore(db), counting_client, conductor, CFG)

        with ThreadPoolExecutor(2) as both:
            results = list(both.map(one, [database, other_db]))
    finally:
        other_db.close()
    assert sum(r["checked"] for r in results) == len(runs)
    assert set(counting_client.calls.values()) == {1}
    assert len(counting_client.calls) == len(runs)


def test_req_5_4_sigkill_mid_sweep_loses_and_duplicates_no_transition(
    database, database_url, workbench_client, simulator, stack_env
):
    runs = [
        submitted_run(database, workbench_client, {"duration_seconds": 0.1, "queue_seconds": 0})
        for _ in range(6)
    ]
    simulator.faults(
        slow={"seconds": 4, "rate": 1.0}, job_ids=[r["workbench_job_id"] for r in runs]
    )
    code = (
        "import sys;"
        "from batchcore.db import Database; from batchcore.workbench import WorkbenchClient;"
        "from batchcore.conductor import ConductorClient; from conductor_workers import polling;"
        "from batchcore.runs.store import RunStore;"
        "cfg = polling.SweepConfig(batch_size=50, lease_seconds=3, interval_seconds=1);"
        "db = Database(sys.argv[1]); print('sweeping', flush=True);"
        "polling.sweep(RunStore(db), WorkbenchClient(sys.argv[2], sys.argv[3]),"
        " ConductorClient(sys.argv[4]), cfg)"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            database_url,
            stack_env["WORKBENCH_API_URL"],
            stack_env["WORKBENCH_API_TOKEN"],
            stack_env["CONDUCTOR_SERVER_URL"],
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        assert proc.stdout.readline().strip() == "sweeping"

        def leased():
            return all(fetch_run(database, r["id"])["poll_lease_until"] for r in runs)

        await_true(leased, 10, "the killed poller to claim every run")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
        proc.stdout.close()
    simulator.clear()
    assert all(fetch_run(database, r["id"])["status"] == "SUBMITTED" for r in runs)
    client = WorkbenchClient(stack_env["WORKBENCH_API_URL"], stack_env["WORKBENCH_API_TOKEN"])
    conductor = ConductorClient(stack_env["CONDUCTOR_SERVER_URL"])
    try:
        sweep_until_terminal(database, client, conductor, runs, timeout=30)
    finally:
        client.close()
        conductor.close()
    for run in runs:
        moves = [(e["previous_status"], e["status"]) for e in history(database, run["id"])]
        # The job ended while the killed poller held it, so the next sweep sees COMPLETED.
        assert moves == [(None, "PENDING"), ("PENDING", "SUBMITTED"), ("SUBMITTED", "COMPLETED")], (
            moves
        )


def test_req_3_7_rate_limited_status_calls_honour_retry_after(
    stack_env, simulator, workbench_client, database
):
    run = submitted_run(database, workbench_client, {"duration_seconds": 30})
    simulator.faults(
        rate_limit={"count": 2, "retry_after": 1, "only": "status"},
        job_ids=[run["workbench_job_id"]],
    )
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        time.sleep(seconds)

    cfg = polling.SweepConfig(max_retries=3, retry_base_seconds=0.01, retry_cap_seconds=0.05)
    status = polling.fetch_status(
        workbench_client, run["workbench_job_id"], cfg, random.Random(5), sleep
    )
    assert status.job_id == run["workbench_job_id"]
    assert len(slept) == 2 and all(s >= 1.0 for s in slept), slept


def test_req_3_7_failing_status_calls_back_off_with_growing_jittered_delays(
    stack_env, simulator, workbench_client, database
):
    run = submitted_run(database, workbench_client, {"duration_seconds": 30})
    simulator.faults(
        error_5xx={"status": 502, "count": 3, "only": "status"}, job_ids=[run["workbench_job_id"]]
    )
    slept = []
    cfg = polling.SweepConfig(max_retries=3, retry_base_seconds=0.05, retry_cap_seconds=1)
    polling.fetch_status(
        workbench_client, run["workbench_job_id"], cfg, random.Random(9), slept.append
    )
    assert len(slept) == 3
    assert all(0 <= s <= 0.05 * 2**i for i, s in enumerate(slept)), slept


def test_issue_10_4_a_wait_completion_that_failed_or_came_early_is_retried_by_a_later_sweep(
    database, workbench_client, conductor, private_workflow
):
    name, started = private_workflow
    run = make_run(database)
    started.append(str(run["id"]))
    store = RunStore(database)
    workflow_id = conductor.start_workflow(name, 1, str(run["id"]), {})
    store.set_workflow_id(run["id"], workflow_id)
    # The job ended while the workflow was still in its submit task, before its WAIT.
    store.transition(
        run["id"], Transition("SUBMITTED", "test", "s", workbench_job_id=f"wb-{run['id']}")
    )
    store.transition(run["id"], Transition("COMPLETED", "test", "the job succeeded"))

    def synced() -> bool:
        return fetch_run(database, run["id"])["workflow_synced_at"] is not None

    unreachable = ConductorClient("http://127.0.0.1:9/api", timeout=1)
    try:
        assert polling.sweep(store, workbench_client, unreachable, CFG)["synced"] == 0
    finally:
        unreachable.close()
    assert not synced()
    assert polling.sweep(store, workbench_client, conductor, CFG)["synced"] == 0, (
        "completed a WAIT task that does not exist yet"
    )
    assert not synced()
    assert conductor.get_workflow(workflow_id, include_tasks=False)["status"] == "RUNNING"
    conductor.complete_task(workflow_id, workflow.SUBMIT_TASK_REF, "COMPLETED", {})

    def waiting() -> bool:
        tasks = conductor.get_workflow(workflow_id)["tasks"]
        return any(
            t["referenceTaskName"] == workflow.WAIT_TASK_REF and t["status"] == "IN_PROGRESS"
            for t in tasks
        )

    await_true(waiting, 10, "the workflow to reach its WAIT task")
    assert polling.sweep(store, workbench_client, conductor, CFG)["synced"] == 1
    assert synced()
    done = conductor.get_workflow(workflow_id)
    assert done["status"] == "COMPLETED"
    (wait,) = [t for t in done["tasks"] if t["referenceTaskName"] == workflow.WAIT_TASK_REF]
    assert wait["outputData"]["status"] == "COMPLETED"
    assert polling.sweep(store, workbench_client, conductor, CFG)["synced"] == 0
