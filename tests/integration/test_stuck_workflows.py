"""Issue 11 on the real Conductor: each stuck shape conductor-oss/conductor#326 (or a killed
worker, or a lost decision) leaves, and the reconciler's repair that gets the run to its true
outcome, written in its history.

A popped, never acknowledged queue message is made by writing Conductor's own queue table
(the test only; the service reads Conductor through its REST API): its delivery time is moved
a day ahead so that not even a live unack processor hands it out again. The workflows and
runs are private (this test's task definitions and database); the test plays the workers.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import psycopg2
import pytest
import requests

from batchcore.runs import lifecycle, workflow
from batchcore.runs.model import Transition
from batchcore.runs.store import RunStore
from conductor_workers import polling, progress, reconcile, submission, unstick
from tests.integration.helpers import await_true, fetch_run, history, make_run

TIMEOUT_SECONDS = 3  # the private tasks' poll and response timeouts
MARGIN_SECONDS = 1


def config(finish_after: int = 30, **timeouts) -> reconcile.ReconcileConfig:
    return reconcile.ReconcileConfig(
        pending_after_seconds=60,
        check_workflows_every_seconds=0,
        batch=20,
        progress=unstick.ProgressConfig(
            margin_seconds=MARGIN_SECONDS,
            max_replacements=2,
            finish_after_seconds=finish_after,
            timeouts=timeouts,
        ),
    )


class PrivateRunWorkflow:
    """batch_pipeline_run's shape on private task definitions: `submit`, `persist_submitted`,
    the WAIT `await_completion`; the test takes and answers the tasks as the workers would."""

    def __init__(self, api: str, poll_timeout: int = TIMEOUT_SECONDS):
        self.api = api
        self.name = f"test_stuck_{uuid.uuid4().hex[:8]}"
        self.submit, self.persist = f"{self.name}_submit", f"{self.name}_persist"
        task = {
            "retryCount": 3,
            "retryLogic": "FIXED",
            "retryDelaySeconds": 0,
            "timeoutSeconds": 600,
            "timeoutPolicy": "RETRY",
            "responseTimeoutSeconds": TIMEOUT_SECONDS,
            "pollTimeoutSeconds": poll_timeout,
        }
        self._post("metadata/taskdefs", [{**task, "name": n} for n in (self.submit, self.persist)])
        tasks = [
            {"name": self.submit, "taskReferenceName": workflow.SUBMIT_TASK_REF, "type": "SIMPLE"},
            {
                "name": self.persist,
                "taskReferenceName": workflow.PERSIST_SUBMITTED_TASK_REF,
                "type": "SIMPLE",
            },
            {"name": "wait", "taskReferenceName": workflow.WAIT_TASK_REF, "type": "WAIT"},
        ]
        body = [{"name": self.name, "version": 1, "schemaVersion": 2, "tasks": tasks}]
        requests.put(f"{api}/metadata/workflow", json=body, timeout=10).raise_for_status()

    def _post(self, path: str, body) -> None:
        requests.post(f"{self.api}/{path}", json=body, timeout=10).raise_for_status()

    def take(self, task_name: str) -> dict:
        """Poll one task of `task_name` as a worker does (awaited: it may be due later)."""

        def poll():
            resp = requests.get(
                f"{self.api}/tasks/poll/{task_name}", params={"workerid": "test"}, timeout=10
            )
            resp.raise_for_status()
            return resp.json() if resp.content else None

        return await_true(poll, 30, f"a {task_name} task to take", every=0.3)

    def answer(self, task: dict, output: dict) -> None:
        self._post(
            "tasks",
            {
                "workflowInstanceId": task["workflowInstanceId"],
                "taskId": task["taskId"],
                "status": "COMPLETED",
                "outputData": output,
            },
        )

    def clean_up(self, run_ids: list[str]) -> None:
        for run_id in run_ids:
            resp = requests.get(f"{self.api}/workflow/{self.name}/correlated/{run_id}", timeout=10)
            for wf in resp.json():
                requests.delete(
                    f"{self.api}/workflow/{wf['workflowId']}", params={"reason": "test"}, timeout=10
                )
        requests.delete(f"{self.api}/metadata/workflow/{self.name}/1", timeout=10)
        for name in (self.submit, self.persist):
            requests.delete(f"{self.api}/metadata/taskdefs/{name}", timeout=10)


@pytest.fixture
def private_run_workflow(conductor_url, database):
    """Makes a PrivateRunWorkflow the demo pipeline of this test's database runs."""
    made: list[tuple[PrivateRunWorkflow, list[str]]] = []

    def make(poll_timeout: int = TIMEOUT_SECONDS):
        flow = PrivateRunWorkflow(conductor_url, poll_timeout)
        with database.transaction() as cur:
            cur.execute(
                "UPDATE pipelines SET workflow_name = %s WHERE name = 'demo-batch'", (flow.name,)
            )
        made.append((flow, runs := []))
        return flow, runs

    yield make
    for flow, runs in made:
        flow.clean_up(runs)


@pytest.fixture
def conductor_db(stack_env):
    """Conductor's own database, writable: only to make a message stuck as #326 leaves it."""
    conn = psycopg2.connect(stack_env["CONDUCTOR_OWNER_DATABASE_URL"], connect_timeout=5)
    conn.autocommit = True
    yield conn
    conn.close()


def lose_message(conductor_db, queue: str, message_id: str) -> None:
    """Mark the message popped and never acknowledged, due again only in a day."""

    def popped() -> bool:
        with conductor_db.cursor() as cur:
            cur.execute(
                "UPDATE queue_message SET popped = true,"
                " deliver_on = localtimestamp + interval '1 day'"
                " WHERE queue_name = %s AND message_id = %s RETURNING message_id",
                (queue, message_id),
            )
            return cur.fetchone() is not None

    await_true(popped, 10, f"the {queue} message {message_id} to exist")


def lose_decider_message(conductor_db, workflow_id: str) -> None:
    lose_message(conductor_db, "_deciderQueue", workflow_id)


def start(conductor, database, flow, runs) -> tuple[dict, str]:
    """A PENDING run, old enough for the reconciler, with its private workflow recorded."""
    run = make_run(database)
    runs.append(str(run["id"]))
    wf_id = workflow.start_run_workflow(conductor, _run(database, run), flow.name, 1)
    RunStore(database).set_workflow_id(run["id"], wf_id)
    with database.transaction() as cur:
        cur.execute(
            "UPDATE pipeline_runs SET created_at = now() - interval '10 minutes' WHERE id = %s",
            (run["id"],),
        )
    return run, wf_id


def _run(database, run):
    return RunStore(database).get_run(run["id"])


def task_of(conductor, wf_id: str, ref: str) -> dict:
    return [t for t in conductor.get_workflow(wf_id)["tasks"] if t["referenceTaskName"] == ref][-1]


def past_timeout(conductor, wf_id: str) -> None:
    """Wait until the workflow's open task is past its timeout and the margin."""

    def stuck() -> bool:
        found = conductor.get_workflow(wf_id)
        return progress.judge(found, unstick.now_ms(), {}, MARGIN_SECONDS).stuck

    await_true(stuck, TIMEOUT_SECONDS + MARGIN_SECONDS + 10, f"{wf_id} to be overdue", every=0.5)


def finish_as_the_workers_and_poller_do(database, conductor, flow, run) -> str:
    """Submit, persist, the job ending, the WAIT completed: the run's true outcome."""
    run_id = str(run["id"])
    job_id = f"wb-{run_id}"
    flow.answer(flow.take(flow.submit), {"workbench_job_id": job_id})
    persist = flow.take(flow.persist)
    submission.persist(RunStore(database), run_id, lifecycle.SUBMITTED, "persist", job_id)
    flow.answer(persist, {"status": lifecycle.SUBMITTED})
    RunStore(database).transition(run_id, Transition(lifecycle.COMPLETED, "poller", "done"))
    wf_id = fetch_run(database, run_id)["conductor_workflow_id"]
    await_true(
        lambda: task_of(conductor, wf_id, workflow.WAIT_TASK_REF)["status"] == "IN_PROGRESS",
        10,
        "the WAIT task",
    )
    synced = polling.sync_workflows(RunStore(database), conductor, polling.executor(2), limit=10)
    assert synced == 1
    return wf_id


def reconciler_actions(database, run_id) -> list[str]:
    return [
        e["details"]["action"] for e in history(database, run_id) if e["source"] == "reconciler"
    ]


def test_issue_11_a_task_message_popped_and_never_acknowledged_is_re_decided(
    database, conductor, conductor_db, private_run_workflow
):
    flow, runs = private_run_workflow()
    run, wf_id = start(conductor, database, flow, runs)
    submit = task_of(conductor, wf_id, workflow.SUBMIT_TASK_REF)
    lose_message(conductor_db, flow.submit, submit["taskId"])
    lose_decider_message(conductor_db, wf_id)
    assert reconcile.reconcile(RunStore(database), conductor, config()) == {"still_running": 1}
    past_timeout(conductor, wf_id)
    assert task_of(conductor, wf_id, workflow.SUBMIT_TASK_REF)["status"] == "SCHEDULED"

    assert reconcile.reconcile(RunStore(database), conductor, config()) == {"re_decided": 1}
    retried = task_of(conductor, wf_id, workflow.SUBMIT_TASK_REF)
    assert retried["taskId"] != submit["taskId"] and retried["retryCount"] == 1

    assert finish_as_the_workers_and_poller_do(database, conductor, flow, run) == wf_id
    assert conductor.get_workflow(wf_id)["status"] == "COMPLETED"
    stored = fetch_run(database, run["id"])
    assert stored["status"] == "COMPLETED" and stored["workflow_synced_at"] is not None
    assert reconciler_actions(database, run["id"]) == ["re-decided"]
    (event,) = [e for e in history(database, run["id"]) if e["source"] == "reconciler"]
    assert (event["details"]["stuck_task"], event["details"]["moved"]) == ("submit", True)


def test_issue_11_a_worker_killed_holding_a_task_with_its_decider_message_popped(
    database, conductor, conductor_db, private_run_workflow
):
    flow, runs = private_run_workflow()
    run, wf_id = start(conductor, database, flow, runs)
    held = flow.take(flow.submit)  # the worker dies with it: never answered
    lose_decider_message(conductor_db, wf_id)
    past_timeout(conductor, wf_id)
    assert task_of(conductor, wf_id, workflow.SUBMIT_TASK_REF)["status"] == "IN_PROGRESS"

    assert reconcile.reconcile(RunStore(database), conductor, config()) == {"re_decided": 1}
    statuses = [t["status"] for t in conductor.get_workflow(wf_id)["tasks"]]
    assert statuses == ["TIMED_OUT", "SCHEDULED"], statuses

    finish_as_the_workers_and_poller_do(database, conductor, flow, run)
    assert conductor.get_workflow(wf_id)["status"] == "COMPLETED"
    assert fetch_run(database, run["id"])["status"] == "COMPLETED"
    (event,) = [e for e in history(database, run["id"]) if e["source"] == "reconciler"]
    assert event["details"]["stuck_task_status"] == "IN_PROGRESS"
    assert "response timeout" in event["details"]["stuck_reason"]
    assert held["taskId"] != task_of(conductor, wf_id, workflow.SUBMIT_TASK_REF)["taskId"]


def test_issue_11_a_workflow_a_decision_cannot_move_is_replaced_without_a_second_job(
    database, conductor, conductor_db, private_run_workflow
):
    # Started before its definition had a poll timeout (as every workflow of the outage
    # was): Conductor's decider cannot time its lost task out, so only a new workflow helps.
    flow, runs = private_run_workflow(poll_timeout=0)
    run, wf_id = start(conductor, database, flow, runs)
    lose_message(conductor_db, flow.submit, task_of(conductor, wf_id, "submit")["taskId"])
    lose_decider_message(conductor_db, wf_id)
    current = {flow.submit: progress.TaskTimeouts(poll_seconds=TIMEOUT_SECONDS)}
    time.sleep(TIMEOUT_SECONDS + MARGIN_SECONDS + 1)  # the judgement is by the clock itself

    assert reconcile.reconcile(RunStore(database), conductor, config(**current)) == {"replaced": 1}
    old = conductor.get_workflow(wf_id)
    assert old["status"] == "TERMINATED" and "stuck at submit" in old["reasonForIncompletion"]
    new_id = fetch_run(database, run["id"])["conductor_workflow_id"]
    live = conductor.correlated(flow.name, str(run["id"]))
    assert [w["workflowId"] for w in live] == [new_id] != [wf_id]

    assert finish_as_the_workers_and_poller_do(database, conductor, flow, run) == new_id
    assert conductor.get_workflow(new_id)["status"] == "COMPLETED"
    assert fetch_run(database, run["id"])["status"] == "COMPLETED"
    assert reconciler_actions(database, run["id"]) == ["re-decided", "replaced"]


def test_issue_11_a_run_that_ends_while_its_wait_is_scheduled_has_its_workflow_finished(
    database, conductor, private_run_workflow
):
    flow, runs = private_run_workflow()
    run, wf_id = start(conductor, database, flow, runs)
    run_id = str(run["id"])
    job_id = f"wb-{run_id}"
    flow.answer(flow.take(flow.submit), {"workbench_job_id": job_id})
    persist = flow.take(flow.persist)
    submission.persist(RunStore(database), run_id, lifecycle.SUBMITTED, "persist", job_id)
    RunStore(database).transition(run_id, Transition(lifecycle.COMPLETED, "poller", "done"))
    # The job ends before the WAIT exists: the poller's sync finds nothing to complete and,
    # verifying, leaves the run unsynced while the workflow runs.
    store = RunStore(database)
    assert polling.sync_workflows(store, conductor, polling.executor(2), limit=10) == 0
    flow.answer(persist, {"status": lifecycle.SUBMITTED})
    await_true(
        lambda: task_of(conductor, wf_id, workflow.WAIT_TASK_REF)["status"] == "IN_PROGRESS",
        10,
        "the WAIT task",
    )
    # The sync kept missing it (#326: no decision came); the reconciler looks after 0 s here.
    assert reconcile.reconcile(store, conductor, config(finish_after=0)) == {"synced": 1}
    done = conductor.get_workflow(wf_id)
    assert done["status"] == "COMPLETED"
    wait = task_of(conductor, wf_id, workflow.WAIT_TASK_REF)
    assert wait["outputData"]["status"] == "COMPLETED"
    stored = fetch_run(database, run_id)
    assert stored["status"] == "COMPLETED" and stored["workflow_synced_at"] is not None
    assert reconciler_actions(database, run_id) == ["synced"]


def test_issue_11_runs_marked_synced_while_their_workflow_ran_are_finished_after_migration(
    database, conductor, private_run_workflow
):
    flow, runs = private_run_workflow()
    run, wf_id = start(conductor, database, flow, runs)
    run_id = str(run["id"])
    flow.answer(flow.take(flow.submit), {"workbench_job_id": f"wb-{run_id}"})
    persist = flow.take(flow.persist)
    submission.persist(RunStore(database), run_id, lifecycle.SUBMITTED, "persist", f"wb-{run_id}")
    flow.answer(persist, {"status": lifecycle.SUBMITTED})
    RunStore(database).transition(run_id, Transition(lifecycle.COMPLETED, "poller", "done"))
    # As the old sync left run 927d4690: marked synced, its WAIT still IN_PROGRESS.
    RunStore(database).mark_workflows_synced([run_id])
    await_true(
        lambda: task_of(conductor, wf_id, workflow.WAIT_TASK_REF)["status"] == "IN_PROGRESS",
        10,
        "the WAIT task",
    )
    store = RunStore(database)
    assert polling.sync_workflows(store, conductor, polling.executor(2), limit=10) == 0
    migration = Path(__file__).parents[2] / "sql/migrations/0009_reverify_workflow_syncs.sql"
    with database.transaction() as cur:
        cur.execute(migration.read_text())
    assert polling.sync_workflows(store, conductor, polling.executor(2), limit=10) == 1
    assert conductor.get_workflow(wf_id)["status"] == "COMPLETED"
    assert fetch_run(database, run_id)["workflow_synced_at"] is not None


def test_issue_11_a_workflow_started_for_a_run_the_gateway_failed_is_terminated(
    database, conductor, private_run_workflow
):
    flow, runs = private_run_workflow()
    run = make_run(database)
    runs.append(str(run["id"]))
    # The start answered an error (the run stored FAILED, no workflow id), yet it started.
    orphan = workflow.start_run_workflow(conductor, _run(database, run), flow.name, 1)
    RunStore(database).transition(
        run["id"],
        Transition(lifecycle.FAILED, "gateway", "no start", error_message="no start"),
    )
    assert reconcile.reconcile(RunStore(database), conductor, config(finish_after=0)) == {
        "terminated_unrecorded": 1
    }
    ended = conductor.get_workflow(orphan, include_tasks=False)
    assert ended["status"] == "TERMINATED"
    assert f"run {run['id']} ended FAILED" in ended["reasonForIncompletion"]
    assert reconciler_actions(database, run["id"]) == ["terminated"]
    assert reconcile.reconcile(RunStore(database), conductor, config(finish_after=0)) == {}
