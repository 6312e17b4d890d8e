"""Service-layer logic that needs no real database: the ?wait= poll loop and its bound."""

from __future__ import annotations

import uuid
from contextlib import contextmanager

from batchcore.runs.store import RunStore
from gateway import submission

wait_while_pending = submission._wait_while_pending


class StatusCursor:
    """Answers RunStore.run_status's query from a scripted list of statuses."""

    def __init__(self, statuses: list[str]):
        self.statuses = statuses

    def execute(self, sql, params=None):
        assert "status" in sql

    def fetchone(self):
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return {"status": status}


class ScriptedDatabase:
    """Counts connection checkouts and whether one is held (no sleeping while one is)."""

    def __init__(self, statuses: list[str]):
        self.cursor = StatusCursor(statuses)
        self.open = 0
        self.transactions = 0

    @contextmanager
    def transaction(self):
        self.open += 1
        self.transactions += 1
        try:
            yield self.cursor
        finally:
            self.open -= 1

    autocommit = transaction


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep_checking(self, db: ScriptedDatabase):
        def sleep(seconds: float) -> None:
            assert db.open == 0, "slept while holding a database connection"
            self.sleeps.append(round(seconds, 3))
            self.now += seconds

        return sleep


def test_wait_polls_in_new_transactions_with_backoff_until_the_deadline():
    db = ScriptedDatabase(["PENDING"])
    clock = FakeClock()
    wait_while_pending(RunStore(db), uuid.uuid4(), 2.0, clock.sleep_checking(db), clock)
    assert clock.sleeps == [0.1, 0.2, 0.4, 0.5, 0.5, 0.3]
    assert clock.now == 102.0
    assert db.transactions == len(clock.sleeps) + 1


def test_wait_returns_as_soon_as_the_run_leaves_pending():
    db = ScriptedDatabase(["PENDING", "PENDING", "SUBMITTED"])
    clock = FakeClock()
    wait_while_pending(RunStore(db), uuid.uuid4(), 30.0, clock.sleep_checking(db), clock)
    assert clock.sleeps == [0.1, 0.2]
    assert db.transactions == 3


def test_wait_does_not_sleep_for_a_run_already_past_pending():
    db = ScriptedDatabase(["FAILED"])
    clock = FakeClock()
    wait_while_pending(RunStore(db), uuid.uuid4(), 30.0, clock.sleep_checking(db), clock)
    assert clock.sleeps == []


def test_waiting_seats_leave_at_least_one_thread_free():
    assert [submission.waiting_capacity(n) for n in (1, 2, 3, 4, 16)] == [0, 1, 1, 2, 8]


def test_a_request_past_the_waiting_bound_does_not_wait():
    room = submission.WaitingRoom(2)
    with room.seat() as first, room.seat() as second, room.seat() as third:
        assert (first, second, third) == (True, True, False)
    with room.seat() as again:
        assert again
    with submission.WaitingRoom(0).seat() as none:
        assert not none
