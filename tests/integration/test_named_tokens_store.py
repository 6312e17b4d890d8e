"""Named tokens (issue 13) on the real PostgreSQL: keys scoped to the submitter, an actor on
every audit event."""

from __future__ import annotations

import uuid

import psycopg2
import pytest
from psycopg2.extras import Json

from batchcore.errors import Conflict
from batchcore.runs.model import NewRun, Transition
from batchcore.runs.store import RunStore
from tests.integration.helpers import fetch_run, history


def request(submitted_by: str, key: str, output: str = "s3://out/a/") -> NewRun:
    return NewRun(
        "demo-batch",
        "BATCH",
        "s3://in/a/",
        output,
        idempotency_key=key,
        submitted_by=submitted_by,
    )


def test_the_same_key_from_two_names_makes_two_runs_and_neither_reveals_the_other(database):
    store = RunStore(database)
    key = f"k-{uuid.uuid4()}"
    _, alice, alice_created, _ = store.create_run(request("alice", key))
    # Another body under the same key: for another client that is no conflict, a new run.
    _, bob, bob_created, _ = store.create_run(request("bob", key, "s3://out/b/"))
    assert alice_created and bob_created and alice.id != bob.id
    assert (alice.submitted_by, bob.submitted_by) == ("alice", "bob")
    _, replay, replayed_created, _ = store.create_run(request("bob", key, "s3://out/b/"))
    assert (replay.id, replayed_created) == (bob.id, False)
    with pytest.raises(Conflict) as err:
        store.create_run(request("alice", key, "s3://out/b/"))
    assert str(alice.id) in err.value.message and str(bob.id) not in err.value.message


def test_a_run_that_failed_before_starting_releases_its_key_only_to_its_own_client(database):
    store = RunStore(database)
    key = f"k-{uuid.uuid4()}"
    _, failed, _, _ = store.create_run(request("alice", key))
    _, bobs, _, _ = store.create_run(request("bob", key))
    failure = Transition("FAILED", "gateway", "not started", error_message="x", actor="alice")
    store.transition(failed.id, failure)
    _, retry, created, _ = store.create_run(request("alice", key))
    assert created and retry.id != failed.id
    assert fetch_run(database, failed.id)["idempotency_key"] is None
    assert fetch_run(database, bobs.id)["idempotency_key"] == key
    replaced = history(database, failed.id)[-1]
    assert (replaced["details"]["replaced_by"], replaced["actor"]) == (str(retry.id), "alice")


def test_every_event_has_an_actor_the_requests_name_or_else_its_source(database):
    store = RunStore(database)
    _, run, _, _ = store.create_run(request("alice", f"k-{uuid.uuid4()}"))
    store.transition(run.id, Transition("SUBMITTED", "persist", "ok", workbench_job_id="wb-1"))
    # A writer that names no actor, as the poller's and reconciler's SQL do.
    with database.transaction() as cur:
        cur.execute(
            "INSERT INTO pipeline_run_events (run_id, source, previous_status, status, message,"
            " details) VALUES (%s, 'poller', 'SUBMITTED', 'SUBMITTED', 'polled', %s)",
            (run.id, Json({})),
        )
    events = history(database, run.id)
    assert [(e["source"], e["actor"]) for e in events] == [
        ("gateway", "alice"),
        ("persist", "persist"),
        ("poller", "poller"),
    ]


def test_a_submitter_name_the_settings_would_refuse_is_refused_by_the_database(database):
    with pytest.raises(psycopg2.errors.CheckViolation):
        RunStore(database).create_run(request("Not A Name", "k"))
