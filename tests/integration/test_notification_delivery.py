"""Issue 15: deliverers on the real outbox: many at once send nothing twice, each run in order."""

from __future__ import annotations

import base64
import threading

from standardwebhooks.webhooks import Webhook

from batchcore.notifications.store import NotificationStore
from batchcore.runs.model import Transition
from batchcore.runs.store import RunStore
from conductor_workers import notifying
from tests.integration.helpers import make_run
from tests.webhook_receiver import Receiver

SECRET = "whsec_" + base64.b64encode(b"i" * 32).decode()
CFG = notifying.DeliveryConfig(
    secret=SECRET, allowed_hosts=frozenset({"127.0.0.1"}), timeout_seconds=2, concurrency=4
)


def moved_through_its_life(database, url: str) -> str:
    run = make_run(database, notify_url=url)
    store = RunStore(database)
    store.transition(run["id"], Transition("SUBMITTED", "t", "s", workbench_job_id=str(run["id"])))
    store.transition(run["id"], Transition("RUNNING", "t", "r"))
    store.transition(run["id"], Transition("COMPLETED", "t", "c"))
    return str(run["id"])


def test_concurrent_deliverers_send_each_notification_once_and_each_run_in_order(database):
    receiver = Receiver().start()
    try:
        runs = [moved_through_its_life(database, receiver.url(f"/r/{i}")) for i in range(12)]
        store = NotificationStore(database)
        errors: list = []

        def deliverer():
            try:
                while any(n["state"] == "pending" for r in runs for n in store.for_run(r)):
                    notifying.sweep(store, CFG)
            except Exception as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=deliverer) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        verifier = Webhook(SECRET)
        for i, run_id in enumerate(runs):
            calls = receiver.received[f"/r/{i}"]
            seen = [verifier.verify(c["body"], c["headers"])["data"] for c in calls]
            assert [(d["previous_status"], d["status"]) for d in seen] == [
                (None, "PENDING"),
                ("PENDING", "SUBMITTED"),
                ("SUBMITTED", "RUNNING"),
                ("RUNNING", "COMPLETED"),
            ]
            assert {d["id"] for d in seen} == {run_id}
            found = store.for_run(run_id)
            assert [n["state"] for n in found] == ["delivered"] * 4
            assert [n["attempts"] for n in found] == [1] * 4
    finally:
        receiver.stop()


def test_a_sweep_without_a_secret_sends_nothing_and_keeps_the_outbox(database):
    run_id = moved_through_its_life(database, "https://receiver.example.com/x")
    summary = notifying.sweep(NotificationStore(database), notifying.DeliveryConfig(secret=None))
    assert summary["skipped"] == "WEBHOOK_SECRET is not set"
    assert {n["state"] for n in NotificationStore(database).for_run(run_id)} == {"pending"}


def test_a_lost_claim_records_nothing(database):
    run_id = moved_through_its_life(database, "https://receiver.example.com/x")
    store = NotificationStore(database)
    first = [c for c in store.claim(100, 60) if str(c.run_id) == run_id][0]
    # the lease lapses and another deliverer takes the notification over
    with database.autocommit() as cur:
        cur.execute("UPDATE run_notifications SET lease_until = now() - interval '1 s'")
    again = [c for c in store.claim(100, 60) if str(c.run_id) == run_id][0]
    assert again.id == first.id and again.lease_token != first.lease_token
    outcome = notifying.attempt(first, CFG, lambda *a: notifying.delivery.Answer(204, 1))
    assert store.record(first, outcome) is False
    assert store.record(again, outcome) is True
    assert store.for_run(run_id)[0]["attempts"] == 1
