"""The poller service's two loop keepers (batch_status_poller, batch_notifier) and /healthz."""

from __future__ import annotations

import json
import threading

from werkzeug.test import Client

from conductor_workers import health, notifying, supervision
from tests.unit.fake_services import FakeConductor
from tests.unit.fake_store import FakeClock, FakeStore


class StaticReport:
    def __init__(self, ok: bool, problem: str = ""):
        self.ok, self.problem = ok, problem

    def report(self) -> dict:
        return {"ok": self.ok, "problems": [self.problem] if self.problem else []}


def _healthz(keepers: dict, workers_healthy: bool = True) -> tuple[int, dict]:
    app = health.make_app(
        lambda: health.liveness(workers_healthy, "poller", {"poll_status": True}, keepers),
        lambda: {"ok": True},
        "/nonexistent",
    )
    response = Client(app).get("/healthz")
    return response.status_code, json.loads(response.get_data())


def test_healthz_reports_both_loop_keepers_and_fails_when_the_notifier_keeper_does():
    keepers = {"poller_loop": StaticReport(True), "notifier_loop": StaticReport(True)}
    status, body = _healthz(keepers)
    assert status == 200 and body["ok"]
    assert body["poller_loop"] == {"ok": True, "problems": []}
    assert body["notifier_loop"] == {"ok": True, "problems": []}
    keepers["notifier_loop"] = StaticReport(False, "the notifier loop keeper is not running")
    status, body = _healthz(keepers)
    assert status == 503 and not body["ok"]
    assert body["notifier_loop"]["problems"] == ["the notifier loop keeper is not running"]
    assert body["poller_loop"]["ok"]


def test_healthz_without_keepers_is_the_workers_health():
    assert _healthz({})[0] == 200
    assert _healthz({}, workers_healthy=False)[0] == 503


def test_the_notifier_keeper_keeps_its_own_loop_and_watches_its_sweeps():
    conductor, now = FakeConductor(), [1000.0]
    keeper = supervision.LoopKeeper(
        conductor,
        FakeStore(FakeClock()),
        notifying.NOTIFIER_INTERVAL_SECONDS,
        threading.Event(),
        clock=lambda: now[0],
        loop=notifying.NOTIFIER_LOOP,
    )
    keeper._sweep_seen_at = now[0]
    keeper.check()
    assert conductor.started == [
        ("batch_notifier", 1, "batch_notifier", {"poll_interval_seconds": 1})
    ]
    report = keeper.report()
    assert report["loop_id"] == keeper.loop_id
    assert report["problems"] == ["the notifier loop keeper thread is not running"]
    keeper.thread = threading.current_thread()  # alive
    now[0] += supervision.STALE_SWEEP_FLOOR_SECONDS + 1
    assert "no sweep seen finishing" in keeper.report()["problems"][0]
    # A poll_status task is not the notifier's sweep; a deliver_notifications one is.
    tasks = conductor.workflows[keeper.loop_id]["tasks"]
    tasks.append({"taskDefName": "poll_status", "status": "COMPLETED", "endTime": 5})
    keeper.check()
    assert not keeper.report()["ok"]
    tasks.append({"taskDefName": "deliver_notifications", "status": "COMPLETED", "endTime": 7})
    keeper.check()
    assert keeper.report()["ok"]
    assert len(conductor.started) == 1, "the running loop is kept"


def test_the_started_notifier_keeper_runs_in_a_thread_of_its_own():
    conductor, stop = FakeConductor(), threading.Event()
    keeper = notifying.keep_notifier_loop_running(conductor, db=None, stop=stop)
    try:
        assert keeper.thread.name == "notifier-loop-keeper" and keeper.thread.is_alive()
        assert keeper.loop is notifying.NOTIFIER_LOOP
    finally:
        stop.set()
        keeper.thread.join(5)
