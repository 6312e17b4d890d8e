"""conductor-oss/conductor#326 reproduced on the real stack, then detected and cured by it.

PostgreSQL stopped across one of Conductor's unack passes (every 60 s) and past its pool's
connection timeout (30 s) makes PostgresQueueDAO.processAllUnacks throw, and its executor
never runs it again. A workflow started afterwards is swept once (its decider message
popped, then postponed, still popped); its task is then polled and never answered. Only a
sweep enforces the response timeout, and the popped message is never handed out again: the
task stays IN_PROGRESS long past it. The stack's conductor-watch (held stopped while the bug
is shown) restarts Conductor, and the new server times the task out. Takes about eight
minutes; disturbs the whole stack.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import uuid

import psycopg2
import pytest
import requests

from batchcore import conductor_queue
from stack import conductor_watch, supervisor
from tests.e2e.conftest import bring_back, database_ready, http_ready
from tests.integration.helpers import await_true

# The outage: one unack pass (60 s apart) falls inside it, and its wait for a connection
# (Hikari's 30 s) ends inside it too.
OUTAGE_SECONDS = 100
RESPONSE_TIMEOUT_SECONDS = 10

pytestmark = pytest.mark.timeout(1200)


class Conductor:
    """The few REST calls the test makes, on test-unique definitions."""

    def __init__(self, api: str):
        self.api = api
        self.name = f"e2e_unack_{uuid.uuid4().hex[:10]}"

    def register(self) -> None:
        task = {
            "name": self.name,
            "retryCount": 0,
            # No poll timeout (nor a workflow timeout): the first sweep, at the workflow offset
            # (about 30 s), leaves the workflow running and its decider message popped.
            "responseTimeoutSeconds": RESPONSE_TIMEOUT_SECONDS,
            "timeoutSeconds": 3600,
            "timeoutPolicy": "TIME_OUT_WF",
            "ownerEmail": "e2e@example.com",
        }
        workflow = {
            "name": self.name,
            "version": 1,
            "schemaVersion": 2,
            "ownerEmail": "e2e@example.com",
            "tasks": [{"name": self.name, "taskReferenceName": "never_answered", "type": "SIMPLE"}],
        }
        requests.post(f"{self.api}/metadata/taskdefs", json=[task], timeout=10).raise_for_status()
        requests.put(
            f"{self.api}/metadata/workflow", json=[workflow], timeout=10
        ).raise_for_status()

    def start(self) -> str:
        resp = requests.post(f"{self.api}/workflow/{self.name}", json={}, timeout=10)
        resp.raise_for_status()
        return resp.text.strip()

    def poll(self) -> dict:
        """Take the task as a worker would, and never answer it."""
        resp = requests.get(
            f"{self.api}/tasks/poll/{self.name}", params={"workerid": "e2e-silent"}, timeout=10
        )
        resp.raise_for_status()
        return resp.json() if resp.content else {}

    def workflow(self, workflow_id: str) -> dict:
        resp = requests.get(f"{self.api}/workflow/{workflow_id}?includeTasks=true", timeout=10)
        resp.raise_for_status()
        return resp.json()

    def clean_up(self, workflow_id: str | None) -> None:
        paths = [f"workflow/{self.name}/1", f"metadata/taskdefs/{self.name}"]
        if workflow_id:
            paths[:0] = [
                f"workflow/{workflow_id}?reason=e2e+clean-up",
                f"workflow/{workflow_id}/remove",
            ]
        for path in paths:
            with contextlib.suppress(requests.RequestException):
                requests.delete(f"{self.api}/{path}", timeout=10)


def _decider_message_popped(monitor_url: str, workflow_id: str, past_delivery: float) -> bool:
    """The workflow's decider message is popped, `past_delivery` seconds past its delivery
    time or more (negative: due that much later)."""
    with psycopg2.connect(monitor_url, connect_timeout=5) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT popped AND deliver_on < localtimestamp - make_interval(secs => %s)"
            " FROM queue_message WHERE queue_name = '_deciderQueue' AND message_id = %s",
            (past_delivery, workflow_id),
        )
        row = cur.fetchone()
    return bool(row and row[0])


def _conductor_answers(api: str):
    def check() -> bool:
        try:  # a read that needs Conductor's database, not only its HTTP server
            return requests.get(f"{api}/metadata/taskdefs", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    return check


def _stack_healthy() -> bool:
    status = subprocess.run([sys.executable, "-m", "stack", "status"], capture_output=True)
    return status.returncode == 0


def _readiness(url: str) -> dict:
    try:
        return requests.get(f"{url}/readyz", timeout=5).json().get("conductor_queue", {})
    except (requests.RequestException, ValueError):
        return {}


@pytest.mark.long_fault  # 6-8 minutes: make test-long
def test_a_dead_unack_processor_is_detected_and_cured_by_a_restart(stack_env):
    api = stack_env["CONDUCTOR_SERVER_URL"]
    health_url = api.removesuffix("/api") + "/health"
    monitor_url = stack_env["CONDUCTOR_DATABASE_URL"]
    conductor = Conductor(api)
    workflow_id = None
    supervisor.ctl("stop", "conductor-watch", check=False, quiet=True)
    try:
        threshold = conductor_watch.read_state()["queue"]["stuck_after_seconds"]
        restarts_before = conductor_watch.read_state()["restarts"]
        pid_before = supervisor.ctl("pid", "conductor", check=False).stdout.strip()

        supervisor.ctl("stop", "postgres", check=False, quiet=True)
        time.sleep(OUTAGE_SECONDS)  # the fault itself is a duration: nothing to await
        bring_back("postgres", database_ready(stack_env["PG_ADMIN_URL"]), timeout=120)
        await_true(_conductor_answers(api), 120, "Conductor to reach its database", every=1)

        conductor.register()
        workflow_id = conductor.start()
        await_true(
            lambda: _decider_message_popped(monitor_url, workflow_id, -3600),
            120,
            f"the first sweep of {workflow_id} (its decider message popped)",
            every=1,
        )
        assert conductor.poll().get("workflowInstanceId") == workflow_id
        await_true(
            lambda: _decider_message_popped(monitor_url, workflow_id, threshold),
            RESPONSE_TIMEOUT_SECONDS + threshold + 120,
            f"the decider message of {workflow_id} to stay popped {threshold}s past delivery",
            every=5,
        )
        # The symptom: a task taken and never answered, long past its response timeout, and
        # nobody times it out.
        stuck = conductor.workflow(workflow_id)
        task = stuck["tasks"][0]
        overdue = time.time() - task["startTime"] / 1000 - RESPONSE_TIMEOUT_SECONDS
        assert (stuck["status"], task["status"]) == ("RUNNING", "IN_PROGRESS"), stuck
        assert overdue > 120, f"the task is {overdue:.0f}s past its response timeout"
        # The detection: the check, and a worker service's readiness details.
        health = conductor_queue.check(monitor_url, threshold)
        assert health.stuck and "_deciderQueue" in health.queues, health
        detail = await_true(
            lambda: (r := _readiness(stack_env["POLLER_URL"])).get("status") == "stuck" and r,
            90,
            "the poller's /readyz to report the stuck queue",
            every=2,
        )
        assert detail["issue"] == "conductor-oss/conductor#326"
        assert "restart the Conductor server" in detail["remedy"]

        # The cure: the stack's supervision restarts Conductor by itself.
        supervisor.ctl("start", "conductor-watch", check=False, quiet=True)
        restarted = await_true(
            lambda: (s := conductor_watch.read_state())["restarts"] > restarts_before and s,
            60,
            "conductor-watch to restart Conductor",
            every=1,
        )
        assert "conductor-oss/conductor#326" in restarted["last_restart_reason"]
        assert supervisor.ctl("pid", "conductor", check=False).stdout.strip() != pid_before
        await_true(http_ready(health_url), 240, "the new Conductor to answer", every=1)
        ended = await_true(
            lambda: (w := conductor.workflow(workflow_id))["status"] != "RUNNING" and w,
            240,
            f"the new server to time out {workflow_id}'s task",
            every=2,
        )
        assert ended["tasks"][0]["status"] == "TIMED_OUT", ended["tasks"][0]
        assert ended["status"] in ("FAILED", "TIMED_OUT"), ended["status"]
        await_true(
            lambda: conductor_queue.check(monitor_url, threshold).status == "ok",
            180,
            "Conductor's queue to be clear",
            every=5,
        )
    finally:
        bring_back("postgres", database_ready(stack_env["PG_ADMIN_URL"]), timeout=120)
        bring_back("conductor-watch", conductor_watch.is_fresh, timeout=60)
        bring_back("conductor", http_ready(health_url), timeout=300)
        conductor.clean_up(workflow_id)
        await_true(_stack_healthy, 300, "every process of the stack to be healthy", every=5)
