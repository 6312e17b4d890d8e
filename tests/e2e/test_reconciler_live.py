"""Issue 10.5: the reconciler as it really runs, inside the stack's poll_status on its interval,
restarts a run whose start was lost and the run goes through batch_pipeline_run to its end."""

from __future__ import annotations

import uuid

import pytest

from batchcore.db import Database
from batchcore.runs import workflow
from batchcore.runs.model import NewRun
from batchcore.runs.store import RunStore
from tests.integration.helpers import await_true


@pytest.fixture
def stack_store(stack_env):
    db = Database(stack_env["DATABASE_URL"], maxconn=2)
    yield RunStore(db)
    db.close()


def test_issue_10_5_a_run_whose_start_was_lost_is_restarted_and_completes(
    api, stack_store, pipelines_db, conductor_api
):
    tag = uuid.uuid4().hex
    # The gateway stored the run and died before it started the workflow.
    _, run, created, _ = stack_store.create_run(
        NewRun(
            "demo-batch",
            "BATCH",
            f"s3://e2e-in/{tag}",
            f"s3://e2e-out/{tag}",
            {"simulate": {"queue_seconds": 0, "duration_seconds": 1}},
        )
    )
    assert created and run.conductor_workflow_id is None
    with pipelines_db.cursor() as cur:  # long enough ago to count as stuck, whatever the setting
        cur.execute(
            "UPDATE pipeline_runs SET created_at = now() - interval '1 day' WHERE id = %s",
            (run.id,),
        )
    # The reconciler runs at most every RECONCILE_INTERVAL_SECONDS (30 s by default).
    done = api.await_status(run.id, ("COMPLETED", "FAILED"), timeout=150)
    assert done["status"] == "COMPLETED", done
    moves = [(e["previous_status"], e["status"], e["source"]) for e in done["history"]]
    assert moves[0] == (None, "PENDING", "gateway")
    assert ("PENDING", "PENDING", "reconciler") in moves
    assert moves[-2:] in (
        [("PENDING", "SUBMITTED", "persist"), ("SUBMITTED", "COMPLETED", "poller")],
        [("SUBMITTED", "RUNNING", "poller"), ("RUNNING", "COMPLETED", "poller")],
    )
    note = next(e for e in done["history"] if e["source"] == "reconciler")
    assert note["details"]["action"] == "restarted"
    assert note["details"]["workflow_id"] == done["conductor_workflow_id"]

    def workflow_done():
        found = conductor_api(f"/workflow/{done['conductor_workflow_id']}")
        return found if found["status"] == "COMPLETED" else None

    found = await_true(workflow_done, 30, "the restarted workflow to complete")
    assert found["workflowName"] == workflow.BATCH_WORKFLOW
    assert found["correlationId"] == str(run.id)
    assert found["input"]["pipeline_run_id"] == str(run.id)
    (wait,) = [t for t in found["tasks"] if t["referenceTaskName"] == workflow.WAIT_TASK_REF]
    assert wait["outputData"]["status"] == "COMPLETED"
