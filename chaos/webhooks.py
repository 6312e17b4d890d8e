"""The webhook_receiver_down scenario (issue 15): notifications outlive a dead receiver."""

from __future__ import annotations

import socket
import time

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.webhook_receiver import Receiver

from .harness import Stack, run_body, verify


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _submit(stack: Stack, url: str, count: int, rate: float) -> list[str]:
    accepted = []
    for _ in range(count):
        body = run_body({"duration_seconds": 2}, notify_url=url)
        resp = stack.session.post(f"{stack.gateway}/api/v1/pipeline-runs", json=body, timeout=40)
        if resp.status_code == 202:
            accepted.append(resp.json()["id"])
        time.sleep(1 / rate)
    return accepted


def _expected(stack: Stack, run_ids: list[str]) -> dict[str, list[tuple]]:
    """Each run's status changes, from its audit trail, oldest first."""
    changes: dict[str, list[tuple]] = {run_id: [] for run_id in run_ids}
    for run_id, previous, status in stack.sql(
        "SELECT run_id::text, previous_status, status FROM pipeline_run_events"
        " WHERE run_id = ANY(%s::uuid[]) AND status IS DISTINCT FROM previous_status ORDER BY id",
        (run_ids,),
    ):
        changes[run_id].append((previous, status))
    return changes


def _pending(stack: Stack, run_ids: list[str]) -> int:
    return stack.sql(
        "SELECT count(*) FROM run_notifications WHERE run_id = ANY(%s::uuid[])"
        " AND state = 'pending'",
        (run_ids,),
    )[0][0]


def judge(expected: dict[str, list[tuple]], calls: list[dict], verifier: Webhook) -> dict:
    """What the receiver got against what each run went through: lost (never arrived),
    out of order (a run's first arrivals not in its order), repeats (same webhook-id again:
    allowed by at-least-once) and forged (failing verification)."""
    got: dict[str, list[tuple]] = {}
    seen_ids: set[str] = set()
    repeats = forged = 0
    for call in calls:
        try:
            data = verifier.verify(call["body"], call["headers"])["data"]
        except WebhookVerificationError:
            forged += 1
            continue
        if call["headers"]["webhook-id"] in seen_ids:
            repeats += 1
            continue
        seen_ids.add(call["headers"]["webhook-id"])
        got.setdefault(data["id"], []).append((data["previous_status"], data["status"]))
    lost = sum(max(0, len(c) - len(got.get(r, []))) for r, c in expected.items())
    out_of_order = sum(1 for r, c in expected.items() if got.get(r, []) != c[: len(got.get(r, []))])
    return {
        "notifications_expected": sum(len(c) for c in expected.values()),
        "notifications_lost": lost,
        "notifications_out_of_order_runs": out_of_order,
        "notifications_repeated": repeats,
        "notifications_forged": forged,
    }


def webhook_receiver_down(
    stack: Stack, runs: int = 40, rate: float = 2.0, down_seconds: float = 60.0
) -> dict:
    """A receiver down while runs change status, then up: every change arrives, in order.

    Runs with a notify_url go through their lives while nothing listens on it; polling goes
    on regardless, and once the receiver is up each change arrives, verified, in order.
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}/chaos"
    started = time.monotonic()
    accepted = _submit(stack, url, runs, rate)
    result = verify(stack, accepted, timeout=300)
    time.sleep(max(0.0, down_seconds - (time.monotonic() - started)))  # the outage itself
    receiver = Receiver(port).start()
    try:
        up_at = time.monotonic()
        deadline = up_at + 300
        while _pending(stack, accepted) and time.monotonic() < deadline:
            time.sleep(1)
        drained = time.monotonic() - up_at
        calls = list(receiver.received["/chaos"])
    finally:
        receiver.stop()
    verifier = Webhook(stack.env["WEBHOOK_SECRET"])
    return {
        **result,
        **judge(_expected(stack, accepted), calls, verifier),
        "notifications_left_pending": _pending(stack, accepted),
        "seconds_to_drain_after_up": round(drained, 1),
        "faults_injected": 1,
    }
