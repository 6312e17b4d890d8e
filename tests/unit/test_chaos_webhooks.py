"""The webhook_receiver_down scenario's judgement of what a receiver got."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from batchcore.notifications.signing import body_of, signed_headers
from chaos.webhooks import judge

SECRET = "whsec_" + base64.b64encode(b"c" * 32).decode()
LIFE = [(None, "PENDING"), ("PENDING", "SUBMITTED"), ("SUBMITTED", "COMPLETED")]


def call(run_id: str, change: tuple, webhook_id: str, secret: str = SECRET) -> dict:
    body = body_of({"id": run_id, "status": change[1]}, change[0], "t")
    return {"body": body, "headers": signed_headers(secret, webhook_id, body, datetime.now(UTC))}


def test_all_arrived_in_order_with_a_repeat():
    calls = [call("a", c, f"a{i}") for i, c in enumerate(LIFE)]
    calls.insert(1, call("a", LIFE[0], "a0"))
    figures = judge({"a": LIFE}, calls, Webhook(SECRET))
    assert figures == {
        "notifications_expected": 3,
        "notifications_lost": 0,
        "notifications_out_of_order_runs": 0,
        "notifications_repeated": 1,
        "notifications_forged": 0,
    }


def test_lost_out_of_order_and_forged_are_counted():
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    calls = [
        call("a", LIFE[1], "a1"),
        call("a", LIFE[0], "a0"),
        call("b", LIFE[0], "b0", secret=other),
    ]
    figures = judge({"a": LIFE, "b": LIFE}, calls, Webhook(SECRET))
    assert figures["notifications_lost"] == 1 + 3
    assert figures["notifications_out_of_order_runs"] == 1
    assert figures["notifications_forged"] == 1


def test_the_bench_measures_each_notification_once_from_its_change():
    from bench.notifications import delays

    body = body_of({"id": "a", "status": "PENDING"}, None, "2026-11-28T10:00:00+00:00")
    headers = signed_headers(SECRET, "a0", body, datetime.now(UTC))
    changed = datetime(2026, 11, 28, 10, 0, tzinfo=UTC).timestamp()
    calls = [
        {"body": body, "headers": headers, "at": changed + 1.5},
        {"body": body, "headers": headers, "at": changed + 9.0},  # a repeat: not a new delay
    ]
    # verification refuses old timestamps, so the signature time is now; the delay is the body's
    assert delays(calls, Webhook(SECRET)) == [1.5]
