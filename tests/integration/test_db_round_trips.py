"""Round trips to PostgreSQL, counted the way `make bench` counts them: a transaction costs
BEGIN and COMMIT on top of its statements, autocommit() one round trip per statement, and a
sweep over N due runs 2 * ceil(N / batch) + 2 at most (the issue's goal is + 5)."""

from __future__ import annotations

import math
import uuid

import psycopg2
import pytest

from batchcore.conductor import ConductorClient
from batchcore.db import Database
from batchcore.runs.model import NewRun
from batchcore.runs.store import RunStore
from bench import roundtrips
from conductor_workers import polling
from gateway.submission import submit_run
from tests.integration.test_polling import submitted_run


@pytest.fixture
def counted(monkeypatch, database_url):
    """A Database whose connections count their round trips; the counter starts at 0."""
    monkeypatch.setattr(psycopg2, "connect", roundtrips.counting_connect)
    db = Database(database_url, maxconn=3)
    db.ping()  # the connection is open before counting starts
    for kind in roundtrips.COUNTER.counts:
        roundtrips.COUNTER.counts[kind] = 0
    yield db
    db.close()


def test_a_transaction_costs_begin_and_commit_and_autocommit_does_not(counted):
    with counted.transaction() as cur:
        cur.execute("SELECT 1")
    assert roundtrips.COUNTER.counts == {
        "statement": 1,
        "begin": 1,
        "commit": 1,
        "rollback": 0,
        "connect": 0,
    }
    with counted.autocommit() as cur:
        cur.execute("SELECT 1")
        cur.execute("SELECT 2")
    assert roundtrips.COUNTER.round_trips == 5


def test_a_sweep_makes_two_round_trips_per_batch(
    counted, database, workbench_client, conductor_url
):
    runs = 5
    for _ in range(runs):
        submitted_run(database, workbench_client, {"queue_seconds": 3600})
    roundtrips.COUNTER.counts.update(statement=0, begin=0, commit=0)
    cfg = polling.SweepConfig(batch_size=2, concurrency=4, interval_seconds=60)
    conductor = ConductorClient(conductor_url)
    summary = polling.sweep(RunStore(counted), workbench_client, conductor, cfg)
    conductor.close()
    assert summary["checked"] == runs
    batches = math.ceil(runs / cfg.batch_size)
    # claims (the last one short, so no empty claim), applies, the unsynced-runs query, and
    # the cancel duties' two reads (runs past their deadline, ended runs' jobs to cancel)
    assert roundtrips.COUNTER.round_trips == 2 * batches + 3
    assert roundtrips.COUNTER.counts["begin"] == roundtrips.COUNTER.counts["commit"] == 0


def test_an_accepted_post_makes_two_round_trips(counted, conductor_url):
    """The run with its first event in one statement, the workflow id in another; the answer
    needs no read back (issue 14.3: it took 8, BEGIN and COMMIT included)."""
    conductor = ConductorClient(conductor_url)
    key = uuid.uuid4().hex
    request = NewRun("demo-batch", "BATCH", f"s3://in/{key}/", f"s3://out/{key}/")
    roundtrips.COUNTER.counts.update(statement=0, begin=0, commit=0)
    accepted = submit_run(counted, conductor, request, idempotency_key=key)
    counts = dict(roundtrips.COUNTER.counts)
    stored = RunStore(counted).get_run(accepted.run["id"])
    conductor.terminate(stored.conductor_workflow_id, "test over")
    conductor.close()
    assert accepted.created and accepted.run["status"] == "PENDING"
    assert accepted.run["conductor_workflow_id"] == stored.conductor_workflow_id is not None
    assert accepted.run["deadline_at"] == stored.deadline_at is not None
    assert [(e["status"], e["actor"], e["message"]) for e in accepted.history] == [
        ("PENDING", "default", "Run accepted")
    ]
    assert counts == {"statement": 2, "begin": 0, "commit": 0, "rollback": 0, "connect": 0}
