"""Issue 11 through the whole stack: a run whose submit task message was popped and never
acknowledged, and whose decider message is stuck too (what conductor-oss/conductor#326 leaves),
is moved again by the stack's own reconciler (a new decision times the task out past its
registered poll timeout) and reaches COMPLETED with one Workbench job and the repair in its
history. The stuck messages are written into Conductor's queue table by the test; takes
about six minutes (the poll timeout, 300 s, and the margin)."""

from __future__ import annotations

import psycopg2
import pytest

from batchcore import registration
from batchcore.runs import workflow
from conductor_workers import progress
from tests.e2e.conftest import http_ready, run_body, stopped
from tests.integration.helpers import Simulator, await_true

pytestmark = pytest.mark.timeout(900)

POLL_TIMEOUT = progress.registered_timeouts(registration.load("tasks"))[
    "submit_to_workbench"
].poll_seconds


def lose(conn, queue: str, message_id: str) -> None:
    """The message popped and never acknowledged, due again only in a day."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE queue_message SET popped = true,"
            " deliver_on = localtimestamp + interval '1 day'"
            " WHERE queue_name = %s AND message_id = %s RETURNING message_id",
            (queue, message_id),
        )
        assert cur.fetchone(), f"no {queue} message {message_id}"


@pytest.mark.long_fault  # 6-8 minutes: make test-long
def test_issue_11_a_run_stuck_behind_a_lost_queue_message_is_repaired_by_the_stack(
    api, conductor_api, stack_env
):
    conn = psycopg2.connect(stack_env["CONDUCTOR_OWNER_DATABASE_URL"], connect_timeout=5)
    conn.autocommit = True
    body = run_body(parameters={"simulate": {"queue_seconds": 0, "duration_seconds": 1}})
    try:
        with stopped("submit-workers", http_ready(f"{stack_env['SUBMIT_WORKERS_URL']}/healthz")):
            resp = api.post_run(body)
            assert resp.status_code == 202, resp.text
            run = resp.json()
            wf_id = run["conductor_workflow_id"] or await_true(
                lambda: api.get_run(run["id"])["conductor_workflow_id"], 30, "the workflow id"
            )
            (submit,) = conductor_api(f"/workflow/{wf_id}")["tasks"]
            assert submit["status"] == "SCHEDULED"
            lose(conn, "submit_to_workbench", submit["taskId"])
            lose(conn, "_deciderQueue", wf_id)
        # The workers are back, and nothing hands them the lost message.
        done = api.await_status(run["id"], ("COMPLETED", "FAILED"), timeout=POLL_TIMEOUT + 240)
    finally:
        conn.close()
    assert done["status"] == "COMPLETED", done
    notes = [e for e in done["history"] if e["source"] == "reconciler"]
    assert [n["details"]["action"] for n in notes] == ["re-decided"], notes
    assert notes[0]["details"]["stuck_task"] == workflow.SUBMIT_TASK_REF
    assert notes[0]["details"]["moved"] is True
    assert done["conductor_workflow_id"] == wf_id, "a decision sufficed: nothing replaced"
    found = await_true(
        lambda: (w := conductor_api(f"/workflow/{wf_id}"))["status"] == "COMPLETED" and w,
        60,
        "the workflow to complete",
    )
    attempts = [
        t["status"] for t in found["tasks"] if t["referenceTaskName"] == workflow.SUBMIT_TASK_REF
    ]
    assert attempts == ["TIMED_OUT", "COMPLETED"], attempts
    assert len(Simulator(stack_env["WORKBENCH_ADMIN_URL"]).jobs(run["id"])) == 1
