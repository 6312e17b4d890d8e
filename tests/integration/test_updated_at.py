"""A run's updated_at is when something its user sees last changed (migration 0014): a poll
that only confirms the status keeps it; a change of status moves it."""

from __future__ import annotations

import uuid

from batchcore.runs.model import PollOutcome
from batchcore.runs.store import RunStore

INSERT = """
INSERT INTO pipeline_runs (id, pipeline, mode, status, input_path_prefix, output_path_prefix,
                           request_fingerprint, workbench_job_id, submitted_at, next_poll_at,
                           created_at, updated_at)
VALUES (%s, 'demo-batch', 'BATCH', 'SUBMITTED', 's3://in/', 's3://out/', 'test', %s, now(),
        now() - interval '1 second', now() - interval '1 hour', now() - interval '1 hour')
"""


def _updated_at(database, run_id: str):
    with database.autocommit() as cur:
        cur.execute("SELECT updated_at FROM pipeline_runs WHERE id = %s", (run_id,))
        return cur.fetchone()["updated_at"]


def _poll(store: RunStore, **outcome) -> None:
    [claimed] = store.claim_due_runs(10, 60)
    store.apply_poll_results(
        [
            PollOutcome(
                str(claimed.id), claimed.status, lease_token=claimed.poll_lease_token, **outcome
            )
        ],
        0,
    )


def test_a_poll_that_changes_nothing_a_user_sees_keeps_updated_at(database):
    run_id = str(uuid.uuid4())
    with database.autocommit() as cur:
        cur.execute(INSERT, (run_id, f"job-{run_id}"))
    store = RunStore(database)
    before = _updated_at(database, run_id)

    _poll(store)
    with database.autocommit() as cur:
        cur.execute(
            "SELECT last_polled_at, poll_lease_token FROM pipeline_runs WHERE id = %s", (run_id,)
        )
        polled = cur.fetchone()
    assert polled["last_polled_at"] > before  # the poll was written
    assert _updated_at(database, run_id) == before

    _poll(store, new_status="RUNNING", message="Workbench job is running")
    assert _updated_at(database, run_id) > before
