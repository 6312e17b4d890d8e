"""Issue 15: the outbox is written by the database in the same transaction as each change."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from batchcore.notifications.store import NotificationStore
from batchcore.runs.model import PollOutcome, Transition
from batchcore.runs.rows import transition
from batchcore.runs.store import RunStore
from tests.integration.helpers import make_run

URL = "https://receiver.example.com/hooks"


def notifications(database, run_id) -> list[dict]:
    return NotificationStore(database).for_run(run_id)


def fence(claimed) -> dict:
    """The claim's lease token, where the poller's write-back is fenced by one."""
    fenced = "lease_token" in {f.name for f in dataclasses.fields(PollOutcome)}
    return {"lease_token": claimed.poll_lease_token} if fenced else {}


def submitted(database, job_id: str | None = None, notify_url: str | None = URL) -> dict:
    """A run moved PENDING -> SUBMITTED through the store, as persist_run moves it."""
    run = make_run(database, notify_url=notify_url)
    RunStore(database).transition(
        run["id"],
        Transition("SUBMITTED", "submit", "Submitted", workbench_job_id=job_id or uuid.uuid4().hex),
    )
    return run


def test_every_change_of_a_run_with_notify_url_is_one_notification_in_order(database):
    run = submitted(database)
    RunStore(database).transition(run["id"], Transition("RUNNING", "poller", "Running"))
    found = notifications(database, run["id"])
    assert [(n["previous_status"], n["status"]) for n in found] == [
        (None, "PENDING"),
        ("PENDING", "SUBMITTED"),
        ("SUBMITTED", "RUNNING"),
    ]
    assert all(n["state"] == "pending" and n["url"] == URL for n in found)
    assert len({n["webhook_id"] for n in found}) == 3


def test_the_snapshot_is_the_run_right_after_its_change_not_a_later_one(database):
    run = submitted(database)
    RunStore(database).transition(run["id"], Transition("RUNNING", "poller", "Running"))
    with database.autocommit() as cur:
        cur.execute(
            "SELECT status, run_snapshot FROM run_notifications WHERE run_id = %s ORDER BY id",
            (run["id"],),
        )
        rows = cur.fetchall()
    assert [r["run_snapshot"]["status"] for r in rows] == ["PENDING", "SUBMITTED", "RUNNING"]
    assert rows[0]["run_snapshot"]["workbench_job_id"] is None
    assert rows[1]["run_snapshot"]["workbench_job_id"] is not None
    assert "idempotency_key" not in rows[0]["run_snapshot"]
    assert "request_fingerprint" not in rows[0]["run_snapshot"]


def test_a_change_that_rolls_back_leaves_no_notification(database):
    run = make_run(database, notify_url=URL)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), database.transaction() as cur:
        transition(cur, run["id"], Transition("SUBMITTED", "submit", "x", workbench_job_id="j1"))
        raise Boom
    assert [n["status"] for n in notifications(database, run["id"])] == ["PENDING"]


def test_a_run_without_notify_url_and_notes_notify_nothing(database):
    quiet = submitted(database, notify_url=None)
    assert notifications(database, quiet["id"]) == []
    run = submitted(database)
    with database.autocommit() as cur:
        cur.execute(
            "INSERT INTO pipeline_run_events (run_id, source, previous_status, status, message)"
            " VALUES (%s, 'test', 'SUBMITTED', 'SUBMITTED', 'a note')",
            (run["id"],),
        )
    assert len(notifications(database, run["id"])) == 2


def test_the_pollers_batch_statement_writes_one_notification_per_change(database):
    store = RunStore(database)
    runs = [submitted(database) for _ in range(5)]
    claimed = {r.id: r for r in store.claim_due_runs(batch_size=50, lease_seconds=60)}
    assert {r["id"] for r in runs} <= claimed.keys()
    outcomes = []
    targets = ["RUNNING", "COMPLETED", "FAILED", None, None]
    for run, target in zip(runs, targets, strict=True):
        outcome = PollOutcome(
            run_id=str(run["id"]),
            expected="SUBMITTED",
            new_status=target,
            message=f"moved to {target}" if target else None,
            error_message="boom" if target == "FAILED" else None,
            poll_error=None if target or run is runs[3] else "timeout",
            error_kind=None if target or run is runs[3] else "timeout",
            **fence(claimed[run["id"]]),
        )
        outcomes.append(outcome)
    moved = store.apply_poll_results(outcomes, interval_seconds=5)
    assert len(moved) == 3
    for run, target in zip(runs, targets, strict=True):
        found = notifications(database, run["id"])
        expected = ["PENDING", "SUBMITTED"] + ([target] if target else [])
        assert [n["status"] for n in found] == expected, target
        if target:
            assert found[-1]["previous_status"] == "SUBMITTED"
    with database.autocommit() as cur:
        cur.execute(
            "SELECT run_snapshot FROM run_notifications WHERE run_id = %s AND status = 'FAILED'",
            (runs[2]["id"],),
        )
        snapshot = cur.fetchone()["run_snapshot"]
    # The trigger fires after the whole statement: it sees the run the batch left.
    assert snapshot["status"] == "FAILED" and snapshot["error_message"] == "boom"
    assert snapshot["completed_at"] is not None


def test_the_reconcilers_repair_notifies_in_its_transaction(database):
    run = submitted(database)
    with RunStore(database).locked_for_repair(run["id"], "SUBMITTED") as repair:
        repair.transition(
            Transition("FAILED", "reconciler", "lost", error_message="lost on the Workbench")
        )
        repair.replace_workflow("wf-2", "restarted", "a note, no change")
    found = notifications(database, run["id"])
    assert [(n["previous_status"], n["status"]) for n in found][-1] == ("SUBMITTED", "FAILED")
    assert len(found) == 3
