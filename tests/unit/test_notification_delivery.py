"""Issue 15: what one delivery attempt decides, and the address check made at delivery."""

from __future__ import annotations

import base64
import socket
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from batchcore.notifications import delivery
from batchcore.notifications.store import DELIVERED, GIVEN_UP, PENDING, Claimed
from conductor_workers.notifying import DeliveryConfig, attempt

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
CFG = DeliveryConfig(secret=SECRET, retry_hours=24, timeout_seconds=1)
NOW = datetime.now(UTC)


def claimed(attempts: int = 0, created_at: datetime = NOW) -> Claimed:
    return Claimed(
        id=1,
        webhook_id=uuid.uuid4(),
        run_id=uuid.uuid4(),
        url="https://receiver.example.com/h",
        status="RUNNING",
        previous_status="SUBMITTED",
        occurred_at=NOW,
        run_snapshot={"id": "r", "status": "RUNNING", "poll_failures": 0},
        attempts=attempts,
        created_at=created_at,
        lease_token=uuid.uuid4(),
    )


def answering(answer: delivery.Answer, seen: list | None = None):
    def post(url, body, headers, timeout, allowed_hosts):
        if seen is not None:
            seen.append((url, body, headers, timeout))
        return answer

    return post


def test_a_2xx_is_delivered_and_what_was_sent_verifies():
    seen: list = []
    result = attempt(claimed(), CFG, answering(delivery.Answer(204, 12), seen))
    assert result.state == DELIVERED and result.status_code == 204 and result.duration_ms == 12
    _, body, headers, timeout = seen[0]
    assert timeout == 1
    payload = Webhook(SECRET).verify(body, headers)
    assert payload["data"]["previous_status"] == "SUBMITTED"
    assert headers["webhook-id"].startswith("msg_")


def test_a_500_is_retried_later_and_a_429_not_before_its_retry_after():
    failed = attempt(claimed(), CFG, answering(delivery.Answer(500, 5, "HTTP 500")))
    assert failed.state == PENDING and failed.next_attempt_at > failed.at
    limited = attempt(
        claimed(), CFG, answering(delivery.Answer(429, 5, "HTTP 429", retry_after=90.0))
    )
    assert limited.state == PENDING
    assert limited.next_attempt_at - limited.at >= timedelta(seconds=89)


def test_a_refused_target_and_a_410_are_given_up_at_once():
    refused = delivery.Answer(None, 1, "refused: x resolves to 127.0.0.1", refused=True)
    assert attempt(claimed(), CFG, answering(refused)).state == GIVEN_UP
    assert attempt(claimed(), CFG, answering(delivery.Answer(410, 1, "HTTP 410"))).state == GIVEN_UP


def test_past_the_retry_window_a_failure_is_given_up_and_says_so():
    old = claimed(attempts=40, created_at=NOW - timedelta(hours=25))
    result = attempt(old, CFG, answering(delivery.Answer(None, 1, "connect timeout")))
    assert result.state == GIVEN_UP
    assert result.error == "connect timeout; given up"


def fake_resolver(monkeypatch, *addresses: str):
    def getaddrinfo(host, port, *args, **kwargs):
        family = socket.AF_INET6
        return [
            (socket.AF_INET if ":" not in a else family, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    monkeypatch.setattr(delivery.socket, "getaddrinfo", getaddrinfo)


def test_a_name_resolving_to_loopback_is_refused_unless_allowed(monkeypatch):
    fake_resolver(monkeypatch, "93.184.216.34", "127.0.0.1")
    with pytest.raises(delivery.RefusedTarget, match="127.0.0.1"):
        delivery.resolve_checked("evil.example.com", 443, frozenset())
    assert delivery.resolve_checked("evil.example.com", 443, frozenset({"evil.example.com"}))


def test_the_address_connected_to_is_the_one_checked(monkeypatch):
    fake_resolver(monkeypatch, "93.184.216.34")
    assert delivery.resolve_checked("ok.example.com", 443, frozenset()) == "93.184.216.34"
    fake_resolver(monkeypatch, "169.254.169.254")
    with pytest.raises(delivery.RefusedTarget):
        delivery.resolve_checked("ok.example.com", 443, frozenset())


def test_post_to_a_refused_name_never_connects(monkeypatch):
    fake_resolver(monkeypatch, "10.0.0.8")
    connected = []
    monkeypatch.setattr(delivery.urllib3, "HTTPSConnectionPool", lambda **kw: connected.append(kw))
    answer = delivery.post("https://internal.example.com/h", b"{}", {}, 1.0, frozenset())
    assert answer.refused and answer.status_code is None and "10.0.0.8" in answer.error
    assert connected == []


def test_a_closed_port_is_named_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    answer = delivery.post(f"http://127.0.0.1:{port}/h", b"{}", {}, 1.0, frozenset({"127.0.0.1"}))
    assert answer.status_code is None and answer.error == "connection refused"
