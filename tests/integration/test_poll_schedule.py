"""The poll schedule (migration 0015, issue 14.2): an active run is on it at its next_poll_at,
any other run is not, whichever statement moves it; a poll that changes nothing is a HOT
update of the run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from batchcore.runs.model import PollOutcome, Transition
from batchcore.runs.store import RunStore
from tests.integration.helpers import await_true, fetch_run, make_run


def on_schedule(database, run_id):
    """The run's next_poll_at on the schedule, or None when it is not on it."""
    with database.autocommit() as cur:
        cur.execute("SELECT next_poll_at FROM pipeline_run_polls WHERE run_id = %s", (run_id,))
        row = cur.fetchone()
    return row["next_poll_at"] if row else None


def scheduled(database, run_id) -> bool:
    """On the schedule, at the run's own next_poll_at."""
    at = on_schedule(database, run_id)
    assert at == fetch_run(database, run_id)["next_poll_at"], "the schedule mirrors the run"
    return at is not None


def schedule_poll(database, run_id, at: str) -> None:
    with database.transaction() as cur:
        cur.execute(f"UPDATE pipeline_runs SET next_poll_at = {at} WHERE id = %s", (run_id,))


def submitted(store: RunStore, database) -> uuid.UUID:
    run_id = make_run(database)["id"]
    job = f"wb-{uuid.uuid4().hex[:8]}"
    store.transition(run_id, Transition("SUBMITTED", "test", "submitted", workbench_job_id=job))
    return run_id


def claim_one(store: RunStore, run_id) -> uuid.UUID:
    (held,) = [r for r in store.claim_due_runs(50, 60) if r.id == run_id]
    return held.poll_lease_token


def test_a_run_joins_the_schedule_when_submitted_and_leaves_it_when_it_ends(database):
    store = RunStore(database)
    pending = make_run(database)["id"]
    assert not scheduled(database, pending)
    run_id = submitted(store, database)
    assert scheduled(database, run_id)
    assert on_schedule(database, run_id) <= datetime.now(UTC), "due at once"
    store.transition(run_id, Transition("RUNNING", "test", "running"))
    assert scheduled(database, run_id)
    store.transition(run_id, Transition("COMPLETED", "test", "done"))
    assert not scheduled(database, run_id)


def test_the_pollers_write_back_reschedules_active_runs_and_unschedules_ended_ones(database):
    store = RunStore(database)
    stays, moves, ends = (submitted(store, database) for _ in range(3))
    token = {r.id: r.poll_lease_token for r in store.claim_due_runs(50, 60)}
    outcomes = [
        PollOutcome(str(stays), "SUBMITTED", lease_token=token[stays]),
        PollOutcome(
            str(moves),
            "SUBMITTED",
            new_status="RUNNING",
            message="running",
            lease_token=token[moves],
        ),
        PollOutcome(
            str(ends), "SUBMITTED", new_status="COMPLETED", message="done", lease_token=token[ends]
        ),
    ]
    before = datetime.now(UTC)
    store.apply_poll_results(outcomes, 30)
    for run_id in (stays, moves):
        assert scheduled(database, run_id)
        assert on_schedule(database, run_id) > before, "polled again after the interval"
        assert fetch_run(database, run_id)["poll_lease_until"] is None
    assert fetch_run(database, moves)["status"] == "RUNNING"
    assert not scheduled(database, ends)
    assert [r.id for r in store.claim_due_runs(50, 60)] == [], "none due before the interval"


def test_a_write_back_of_a_stale_claim_does_not_reschedule_the_run(database):
    store = RunStore(database)
    run_id = submitted(store, database)
    stale = claim_one(store, run_id)
    with database.transaction() as cur:
        cur.execute(
            "UPDATE pipeline_runs SET poll_lease_until = now() - interval '1 second' WHERE id = %s",
            (run_id,),
        )
    claim_one(store, run_id)  # a newer claim holds it now
    due = on_schedule(database, run_id)
    store.apply_poll_results([PollOutcome(str(run_id), "SUBMITTED", lease_token=stale)], 30)
    assert on_schedule(database, run_id) == due


def test_a_cancel_request_makes_an_active_run_due_at_once(database):
    store = RunStore(database)
    run_id = submitted(store, database)
    schedule_poll(database, run_id, "now() + interval '1 hour'")
    store.request_cancel(run_id, "someone")
    assert scheduled(database, run_id)
    assert on_schedule(database, run_id) <= datetime.now(UTC)
    assert run_id in {r.id for r in store.claim_due_runs(50, 60)}


def test_the_claim_leases_due_runs_in_schedule_order_and_skips_leased_ones(database):
    store = RunStore(database)
    later, sooner = submitted(store, database), submitted(store, database)
    schedule_poll(database, later, "now() - interval '1 minute'")
    schedule_poll(database, sooner, "now() - interval '2 minutes'")
    assert [r.id for r in store.claim_due_runs(1, 60)] == [sooner]
    assert [r.id for r in store.claim_due_runs(5, 60)] == [later]
    assert store.claim_due_runs(5, 60) == []


def _updates(database) -> tuple[int, int]:
    with database.autocommit() as cur:
        cur.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
            " WHERE relname = 'pipeline_runs'"
        )
        row = cur.fetchone()
    return row["n_tup_upd"], row["n_tup_hot_upd"]


def test_a_poll_that_changes_nothing_is_a_hot_update_of_the_run(database):
    store = RunStore(database)
    runs = [submitted(store, database) for _ in range(20)]
    claimed = store.claim_due_runs(50, 60)
    assert {r.id for r in claimed} == set(runs)
    # The set-up's 40 updates (20 submissions, 20 leases), once every backend has reported
    # them (PostgreSQL 15 sends a backend's counts at most every second, or when idle).
    await_true(lambda: _updates(database)[0] >= 40, 15, "the set-up's updates counted")
    base_upd, base_hot = _updates(database)
    store.apply_poll_results(
        [PollOutcome(str(r.id), r.status, lease_token=r.poll_lease_token) for r in claimed], 30
    )
    await_true(lambda: _updates(database)[0] >= base_upd + 20, 15, "the write-back counted")
    upd, hot = _updates(database)
    # next_poll_at, the only indexed column a poll moved, is on the schedule now, so a polled
    # run keeps its index entries wherever its page has room for the new version (with it
    # indexed, none of these updates was HOT; a page the set-up filled may have no room).
    assert upd - base_upd == 20
    assert hot - base_hot >= 10
