"""Issue 11 on the real Conductor: a loop RUNNING whose sweeps stopped finishing is decided
again, then replaced by its keeper; a private loop (its sweep task polled by nobody) recorded
in this test's own database, the keeper's clock moved by hand."""

from __future__ import annotations

import threading
import uuid

import pytest

from batchcore.runs.store import RunStore
from conductor_workers import supervision
from tests.integration.private_workflow import register_private, remove_private


@pytest.fixture
def unswept_loop(conductor_url):
    """A private loop whose one task no worker polls: it runs and never sweeps."""
    name = f"test_stall_{uuid.uuid4().hex[:8]}"
    loop = supervision.Loop("test", name, 1, f"{name}-loop", name)
    sweep = {"name": name, "taskReferenceName": "sweep", "type": "SIMPLE"}
    register_private(conductor_url, name, [sweep], task_response_timeout=60)
    yield loop
    remove_private(conductor_url, name, [loop.correlation_id], taskdef=name)


def test_issue_11_a_running_loop_that_stopped_sweeping_is_replaced(
    database, conductor, unswept_loop
):
    now = [0.0]
    store = RunStore(database)
    keeper = supervision.LoopKeeper(
        conductor, store, 1, threading.Event(), clock=lambda: now[0], loop=unswept_loop
    )
    keeper.check()
    stalled = keeper.loop_id
    assert conductor.get_workflow(stalled)["status"] == "RUNNING"

    now[0] += keeper.stale_after() + 1
    keeper.check()  # a new decision first
    assert conductor.get_workflow(stalled)["status"] == "RUNNING"
    now[0] += 1 + supervision.DECIDE_GRACE_SECONDS
    keeper.check()

    old = conductor.get_workflow(stalled, include_tasks=False)
    assert old["status"] == "TERMINATED"
    assert "replaced by the test loop keeper" in old["reasonForIncompletion"]
    assert keeper.loop_id != stalled and keeper.replacements == 1
    running = conductor.correlated(unswept_loop.name, unswept_loop.correlation_id)
    assert [wf["workflowId"] for wf in running] == [keeper.loop_id]
    with store.poller_loop_lock() as recorded:
        assert recorded.workflow_id == keeper.loop_id
