"""Issue 11: a loop keeper replaces a loop that is RUNNING but whose sweeps stopped finishing
(a lost queue message, conductor-oss/conductor#326), after a new decision did not move it."""

from __future__ import annotations

import threading

import pytest

from conductor_workers import notifying, supervision
from tests.unit.fake_services import FakeConductor
from tests.unit.fake_store import FakeClock, FakeStore

INTERVAL = 5
LOOPS = [supervision.POLLER_LOOP, notifying.NOTIFIER_LOOP]


class Now:
    """The keeper's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


@pytest.fixture
def now():
    return Now()


@pytest.fixture
def conductor():
    return FakeConductor()


def keeper_of(conductor, store, now, loop=supervision.POLLER_LOOP) -> supervision.LoopKeeper:
    keeper = supervision.LoopKeeper(
        conductor, store, INTERVAL, threading.Event(), clock=now, loop=loop
    )
    keeper.thread = threading.current_thread()  # report() as from a live keeper thread
    return keeper


def sweep_ended(conductor, loop_id: str, end_ms: int, loop=supervision.POLLER_LOOP) -> None:
    conductor.workflows[loop_id]["tasks"].append(
        {"taskDefName": loop.sweep_task, "status": "COMPLETED", "endTime": end_ms}
    )


def stall(keeper: supervision.LoopKeeper, now: Now) -> None:
    now.seconds += keeper.stale_after() + 1


@pytest.mark.parametrize("loop", LOOPS, ids=lambda loop: loop.label)
def test_a_loop_whose_sweeps_stopped_is_decided_again_then_replaced(conductor, now, loop):
    keeper = keeper_of(conductor, FakeStore(FakeClock()), now, loop)
    keeper.check()
    stalled = keeper.loop_id
    sweep_ended(conductor, stalled, 111, loop)
    keeper.check()
    stall(keeper, now)
    keeper.check()
    assert conductor.decided == [stalled], "a new decision first: it may time the sweep out"
    assert conductor.workflows[stalled]["status"] == "RUNNING"
    assert not keeper.report()["ok"]

    now.seconds += INTERVAL + supervision.DECIDE_GRACE_SECONDS - 1
    keeper.check()
    assert conductor.workflows[stalled]["status"] == "RUNNING", "the decision gets its time"

    now.seconds += 1
    keeper.check()
    assert conductor.workflows[stalled]["status"] == "TERMINATED"
    assert "replaced by the" in conductor.workflows[stalled]["reasonForIncompletion"]
    assert keeper.loop_id not in (None, stalled)
    assert conductor.workflows[keeper.loop_id]["status"] == "RUNNING"
    assert [w["workflowName"] for w in conductor.workflows.values()].count(loop.name) == 2
    report = keeper.report()
    assert report["ok"] and report["stalled_loops_replaced"] == 1, report


def test_a_loop_the_new_decision_moved_is_kept(conductor, now):
    keeper = keeper_of(conductor, FakeStore(FakeClock()), now)
    keeper.check()
    loop_id = keeper.loop_id
    stall(keeper, now)
    conductor.on_decide = lambda wf: sweep_ended(conductor, wf["workflowId"], 222)
    keeper.check()
    now.seconds += INTERVAL + supervision.DECIDE_GRACE_SECONDS + 1
    keeper.check()
    assert conductor.workflows[loop_id]["status"] == "RUNNING"
    assert keeper.loop_id == loop_id and keeper.report()["ok"]
    # Stalled again later: decided again before any replacement.
    stall(keeper, now)
    keeper.check()
    assert conductor.decided == [loop_id, loop_id]


def test_two_keepers_that_saw_one_stall_replace_the_loop_once(conductor, now):
    store = FakeStore(FakeClock())
    first, second = keeper_of(conductor, store, now), keeper_of(conductor, store, now)
    first.check()
    second.check()
    stalled = first.loop_id
    assert second.loop_id == stalled
    stall(first, now)
    first.check()
    second.check()
    now.seconds += INTERVAL + supervision.DECIDE_GRACE_SECONDS + 1
    first.check()
    second.check()
    assert first.loop_id == second.loop_id != stalled
    assert conductor.workflows[first.loop_id]["status"] == "RUNNING"
    assert len(conductor.started) == 2, "the stalled loop and one replacement"
    assert first.replacements == 1 and second.replacements == 0
    assert second.report()["ok"], "a replacement is timed from when the keeper saw it"


def test_a_stalled_id_no_longer_recorded_replaces_nothing(conductor):
    store = FakeStore(FakeClock())
    kept = supervision.ensure_poller_loop(conductor, store, INTERVAL)
    old = conductor.add(supervision.POLLER_LOOP.name, "another-correlation-id")
    again = supervision.ensure_poller_loop(conductor, store, INTERVAL, stalled_id=old)
    assert again == kept
    assert conductor.workflows[kept]["status"] == "RUNNING"
    assert conductor.workflows[old]["status"] == "RUNNING"


@pytest.mark.parametrize("ended", ["TERMINATED", "FAILED", "COMPLETED", None])
def test_a_recorded_loop_that_ended_or_vanished_is_replaced(conductor, ended):
    store = FakeStore(FakeClock())
    old = supervision.ensure_poller_loop(conductor, store, INTERVAL)
    if ended is None:
        del conductor.workflows[old]  # Conductor no longer knows it (its data purged)
    else:
        conductor.workflows[old]["status"] = ended
    new = supervision.ensure_poller_loop(conductor, store, INTERVAL)
    assert new != old and conductor.workflows[new]["status"] == "RUNNING"
    assert store.poller_loop_id == new
