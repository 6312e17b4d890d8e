"""Issue 15 end to end: signed webhooks from the running stack to a real receiver on loopback."""

from __future__ import annotations

import socket

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from tests.e2e.conftest import TERMINAL, run_body
from tests.integration.helpers import await_true
from tests.webhook_receiver import Receiver

QUICK = {"simulate": {"outcome": "SUCCEEDED", "duration_seconds": 1}}


@pytest.fixture(scope="module")
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def verifier(stack_env) -> Webhook:
    return Webhook(stack_env["WEBHOOK_SECRET"])


def notifications(api, run_id) -> list[dict]:
    resp = api.session.get(f"{api.base}/api/v1/pipeline-runs/{run_id}/notifications", timeout=10)
    resp.raise_for_status()
    return resp.json()["items"]


def changes(run: dict) -> list[tuple]:
    """The run's status changes, from its audit trail."""
    return [
        (e["previous_status"], e["status"])
        for e in run["history"]
        if e["status"] != e["previous_status"]
    ]


def submit(api, url: str, parameters: dict | None = None) -> str:
    resp = api.post_run(run_body(notify_url=url, parameters=parameters or QUICK))
    assert resp.status_code == 202, resp.text
    assert resp.json()["notify_url"] == url
    return resp.json()["id"]


def all_delivered(api, run_id: str, timeout: float = 90) -> tuple[dict, list[dict]]:
    """The ended run and its notifications, once every change of it was delivered."""
    run = api.await_status(run_id, TERMINAL, timeout)

    def done():
        found = notifications(api, run_id)
        ok = len(found) == len(changes(run)) and all(n["state"] == "delivered" for n in found)
        return found if ok else None

    return run, await_true(done, timeout, f"every notification of run {run_id} delivered", 0.3)


def received_changes(receiver: Receiver, path: str, verifier: Webhook) -> list[tuple]:
    """(webhook-id, previous_status, status) of each POST the receiver got, verified."""
    seen = []
    for call in receiver.received[path]:
        payload = verifier.verify(call["body"], call["headers"])
        assert payload["type"] == "pipeline_run.status_changed"
        data = payload["data"]
        seen.append((call["headers"]["webhook-id"], data["previous_status"], data["status"]))
    return seen


def test_every_change_of_a_run_arrives_once_verified_and_in_order(api, receiver, verifier):
    plans = [
        QUICK,
        {"simulate": {"outcome": "FAILED", "duration_seconds": 1, "error_message": "bad input"}},
        {"simulate": {"outcome": "SUCCEEDED", "duration_seconds": 3}},
    ]
    runs = {submit(api, receiver.url(f"/every/{i}"), plan): i for i, plan in enumerate(plans)}
    for run_id, i in runs.items():
        run, found = all_delivered(api, run_id)
        got = received_changes(receiver, f"/every/{i}", verifier)
        assert [(p, s) for _, p, s in got] == changes(run)  # once each, in order
        assert len({webhook_id for webhook_id, _, _ in got}) == len(got)
        assert [n["id"] for n in found] == [webhook_id for webhook_id, _, _ in got]
        assert all(
            len(n["attempts"]) == 1 and n["attempts"][0]["status_code"] == 204 for n in found
        )
        last = verifier.verify(
            receiver.received[f"/every/{i}"][-1]["body"],
            receiver.received[f"/every/{i}"][-1]["headers"],
        )
        assert last["data"]["id"] == run_id and last["data"]["status"] == run["status"]
        assert last["data"]["notify_url"] == receiver.url(f"/every/{i}")
        assert "history" not in last["data"]
        if run["status"] == "FAILED":
            assert last["data"]["error_message"] == run["error_message"]


def test_a_500_is_retried_and_later_changes_wait_for_it(api, receiver, verifier):
    path = "/flaky"
    receiver.behave[path] = lambda n: (500, {}, 0) if n <= 2 else (204, {}, 0)
    run_id = submit(api, receiver.url(path))
    run, found = all_delivered(api, run_id)
    first = found[0]
    assert [a["status_code"] for a in first["attempts"]] == [500, 500, 204]
    assert first["attempts"][0]["error"] == "HTTP 500"
    assert first["attempts"][0]["response_excerpt"] == "ok"
    got = received_changes(receiver, path, verifier)
    # the same webhook-id three times (a receiver deduplicates on it), then the rest in order
    assert [g[0] for g in got[:3]] == [first["id"]] * 3
    assert [(p, s) for _, p, s in got[2:]] == changes(run)


def test_a_429_is_not_retried_before_its_retry_after(api, receiver, verifier):
    path = "/limited"
    receiver.behave[path] = lambda n: (429, {"Retry-After": "3"}, 0) if n == 1 else (204, {}, 0)
    run_id = submit(api, receiver.url(path))
    all_delivered(api, run_id)
    calls = receiver.received[path]
    assert calls[1]["at"] - calls[0]["at"] >= 2.9
    assert calls[0]["headers"]["webhook-id"] == calls[1]["headers"]["webhook-id"]


def test_a_slow_receiver_times_out_is_retried_and_holds_up_no_other_run(api, receiver, verifier):
    slow, fast = "/slow", "/fast"
    receiver.behave[slow] = lambda n: (204, {}, 8) if n == 1 else (204, {}, 0)
    slow_id = submit(api, receiver.url(slow))
    await_true(lambda: receiver.received[slow], 30, "the slow receiver's first POST", 0.1)
    fast_id = submit(api, receiver.url(fast))
    await_true(lambda: receiver.received[fast], 30, "the fast receiver's first POST", 0.1)
    # the fast run's acceptance arrived while the slow receiver still held its first POST
    assert receiver.received[fast][0]["at"] - receiver.received[slow][0]["at"] < 8
    _, found = all_delivered(api, slow_id)
    assert found[0]["attempts"][0]["error"] == "read timeout"
    assert found[0]["attempts"][0]["status_code"] is None
    assert found[0]["attempts"][-1]["status_code"] == 204
    all_delivered(api, fast_id)


def test_a_receiver_down_then_up_gets_every_change_in_order(api, verifier):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run_id = submit(api, f"http://127.0.0.1:{port}/late")

    def refused():
        found = notifications(api, run_id)
        return found and found[0]["attempts"] and found[0]["attempts"][0]["error"]

    assert await_true(refused, 60, "a first attempt to the dead receiver") == "connection refused"
    late = Receiver(port).start()
    try:
        run, found = all_delivered(api, run_id, timeout=120)
        assert found[0]["attempts"][0]["status_code"] is None
        assert found[0]["attempts"][-1]["status_code"] == 204
        got = received_changes(late, "/late", verifier)
        assert [(p, s) for _, p, s in got] == changes(run)
    finally:
        late.stop()


def test_redirects_are_not_followed(api, receiver):
    path = "/moved"
    receiver.behave[path] = lambda n: (302, {"Location": receiver.url("/target")}, 0)
    run_id = submit(api, receiver.url(path))

    def attempted():
        found = notifications(api, run_id)
        return found if found and found[0]["attempts"] else None

    first = await_true(attempted, 60, "a first attempt")[0]
    assert first["attempts"][0]["status_code"] == 302
    assert "redirects are not followed" in first["attempts"][0]["error"]
    assert first["state"] == "pending"

    def retried():
        found = notifications(api, run_id)
        return found if len(found[0]["attempts"]) >= 2 else None

    again = await_true(retried, 60, "a second attempt")[0]
    assert [a["status_code"] for a in again["attempts"][:2]] == [302, 302]
    assert len(receiver.received[path]) >= 2
    assert receiver.received["/target"] == []


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("https://10.1.2.3/hook", "private_address"),
        ("https://169.254.169.254/latest/meta-data", "private_address"),
        ("https://[::1]/hook", "private_address"),
        ("http://receiver.example.com/hook", "scheme"),
        ("https://user:pass@receiver.example.com/hook", "user_info"),
    ],
)
def test_a_hostile_notify_url_is_refused_at_post(api, url, rule):
    resp = api.post_run(run_body(notify_url=url))
    assert resp.status_code == 422, resp.text
    details = resp.json()["error"]["details"]
    assert ("notify_url", rule) in {(d["field"], d["rule"]) for d in details}


def loopback_name() -> str:
    """A host name (not an allowed host) that this machine resolves to a loopback address."""
    for name in (socket.gethostname(), "vm", "runsc", "ip6-localhost"):
        try:
            infos = socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)
        except OSError:
            continue
        if name not in ("localhost",) and all(
            info[4][0].startswith("127.") or info[4][0] == "::1" for info in infos
        ):
            return name
    raise AssertionError("no host name of this machine resolves to loopback (see /etc/hosts)")


def test_a_name_that_resolves_to_loopback_is_refused_at_delivery(api, receiver):
    name = loopback_name()
    run_id = submit(api, f"https://{name}:{receiver.port}/sneaky")

    def given_up():
        found = notifications(api, run_id)
        return found if found and found[0]["state"] == "given_up" else None

    first = await_true(given_up, 60, "the notification given up")[0]
    assert first["attempts"][0]["status_code"] is None
    assert f"{name} resolves to 127." in first["attempts"][0]["error"]
    assert receiver.received["/sneaky"] == []


def test_the_pollers_healthz_reports_the_notifier_loop_it_keeps(stack_env, conductor_url):
    """The poller service keeps the batch_notifier loop beside the poller loop, and its
    /healthz says so: the loop it keeps is the one running in Conductor, seen sweeping."""

    def report():
        body = requests.get(f"{stack_env['POLLER_URL']}/healthz", timeout=5).json()
        loop = body.get("notifier_loop") or {}
        return body if loop.get("loop_id") and loop.get("ok") else None

    body = await_true(report, 60, "the poller's /healthz reporting a kept notifier loop", 0.5)
    assert body["ok"] and body["poller_loop"]["ok"]
    running = requests.get(
        f"{conductor_url}/workflow/batch_notifier/correlated/batch_notifier",
        params={"includeClosed": "false", "includeTasks": "false"},
        timeout=10,
    ).json()
    assert [wf["workflowId"] for wf in running if wf["status"] == "RUNNING"] == [
        body["notifier_loop"]["loop_id"]
    ]


def test_a_cancel_is_notified_like_any_other_change(api, receiver, verifier):
    """Issue 13 meets issue 15: RUNNING -> CANCELLED arrives, signed, in its place."""
    run_id = submit(
        api, receiver.url("/cancelled"), {"simulate": {"duration_seconds": 60, "cancel_seconds": 0}}
    )
    api.await_status(run_id, "RUNNING", timeout=60)
    cancelled = api.session.post(f"{api.base}/api/v1/pipeline-runs/{run_id}/cancel", timeout=10)
    assert cancelled.status_code == 202, cancelled.text
    run, _ = all_delivered(api, run_id)
    assert run["status"] == "CANCELLED"
    got = received_changes(receiver, "/cancelled", verifier)
    assert [(p, s) for _, p, s in got] == changes(run)
    assert got[-1][1:] == ("RUNNING", "CANCELLED")
    last = verifier.verify(
        receiver.received["/cancelled"][-1]["body"], receiver.received["/cancelled"][-1]["headers"]
    )
    assert last["data"]["cancel_requested_by"] == run["cancel_requested_by"]
