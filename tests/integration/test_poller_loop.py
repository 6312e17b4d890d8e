"""Req 6 / issue 10.8: the worker services keep exactly one batch_status_poller loop."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from batchcore.conductor import ConductorClient
from batchcore.runs.store import RunStore
from tests.integration.private_workflow import register_private, remove_private


@pytest.fixture
def absent_loop(conductor_url):
    """A private loop workflow (one WAIT) that nothing runs yet: (name, correlation id)."""
    name = f"test_loop_{uuid.uuid4().hex[:8]}"
    correlation_id = f"{name}-loop"
    wait = {"name": "loop_wait", "taskReferenceName": "loop_wait", "type": "WAIT"}
    register_private(conductor_url, name, [wait])
    yield name, correlation_id
    remove_private(conductor_url, name, [correlation_id], taskdef=None)


def test_req_3_1_two_worker_services_never_start_two_poller_loops(
    database, database_url, conductor, absent_loop
):
    """Issue 10.8: the race is run on a loop nobody runs yet (its own name, this test's own
    database), so every checker finds nothing and only the lock keeps them to one start."""
    from batchcore.db import Database
    from conductor_workers import supervision

    name, correlation_id = absent_loop
    checkers = 4
    pools = [Database(database_url, maxconn=1) for _ in range(checkers)]
    barrier = threading.Barrier(checkers)
    looked = threading.Condition()
    lookers = []

    class RacingConductor(ConductorClient):
        """Holds each look for running loops until every checker has looked (or 0.5 s
        passed: with the lock only one looks), so that checkers without it all find none."""

        def correlated(self, *args, **kwargs):
            found = super().correlated(*args, **kwargs)
            with looked:
                lookers.append(1)
                looked.notify_all()
                looked.wait_for(lambda: len(lookers) == checkers, timeout=0.5)
            return found

    racing = RacingConductor(conductor.base_url)

    def check(db) -> str | None:
        barrier.wait()
        return supervision.ensure_poller_loop(
            racing, RunStore(db), 2, name=name, version=1, correlation_id=correlation_id
        )

    try:
        with ThreadPoolExecutor(checkers) as together:
            ids = list(together.map(check, pools))
    finally:
        racing.close()
        for db in pools:
            db.close()
    running = [w["workflowId"] for w in conductor.correlated(name, correlation_id)]
    assert len(running) == 1, f"{len(running)} loops started by {checkers} racing checkers"
    assert len(lookers) == 1, "the checkers that lost the lock looked anyway"
    assert {i for i in ids if i} == set(running)
    again = supervision.ensure_poller_loop(
        conductor, RunStore(database), 2, name=name, version=1, correlation_id=correlation_id
    )
    assert again == running[0], "the recorded loop is kept"
