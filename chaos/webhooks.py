"""The webhook_receiver_down scenario (issue 15): notifications outlive a dead receiver."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.webhook_receiver import Receiver

from .harness import Stack, run_body, verify

PATH = "/chaos"
# The program whose task workers run deliver_notifications (conductor_workers.tasks.notify,
# imported by the poller role); SIGKILLing it kills every notifying process.
NOTIFYING_PROGRAM = "poller"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Arrival:
    """One POST the receiver got: verified (run and change) or not, and whether it said 2xx."""

    webhook_id: str
    run_id: str | None  # None: it failed verification
    change: tuple | None
    acknowledged: bool


@dataclass
class Tally:
    """The receivers of the scenario, one after another on one port, each call verified as it
    arrives (a signature is checked against its timestamp within 5 minutes, so not later)."""

    verifier: Webhook
    port: int
    arrivals: list[Arrival] = field(default_factory=list)
    answered_500: set[tuple[int, int]] = field(default_factory=set)
    _receivers: list[Receiver] = field(default_factory=list)
    _seen: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def up(self, fail_every: int | None = None) -> Receiver:
        """A receiver on the port; with `fail_every`, every such request answered 500."""
        receiver = Receiver(self.port)
        index = len(self._receivers)
        if fail_every:
            receiver.behave[PATH] = lambda n: self._fail(index, n, fail_every)
        self._receivers.append(receiver)
        return receiver.start()

    def _fail(self, index: int, n: int, every: int) -> tuple[int, dict, float]:
        if n % every:
            return 204, {}, 0
        self.answered_500.add((index, n))
        return 500, {}, 0

    def catch_up(self) -> None:
        """Verify what arrived since the last call."""
        with self._lock:
            for index, receiver in enumerate(self._receivers):
                calls = receiver.received[PATH]
                start, end = self._seen.get(index, 0), len(calls)
                for n in range(start + 1, end + 1):
                    self.arrivals.append(self._arrival(calls[n - 1], (index, n)))
                self._seen[index] = end

    def _arrival(self, call: dict, number: tuple[int, int]) -> Arrival:
        headers = {k.lower(): v for k, v in call["headers"].items()}
        acknowledged = number not in self.answered_500
        try:
            data = self.verifier.verify(call["body"], call["headers"])["data"]
        except WebhookVerificationError:
            return Arrival(headers.get("webhook-id", ""), None, None, acknowledged)
        change = (data["previous_status"], data["status"])
        return Arrival(headers["webhook-id"], data["id"], change, acknowledged)

    def close(self) -> None:
        for receiver in self._receivers:
            receiver.stop()  # returns at once for one already stopped

    def watch(self, stop: threading.Event) -> threading.Thread:
        def loop() -> None:
            while not stop.wait(0.5):
                self.catch_up()

        thread = threading.Thread(target=loop, name="webhook-tally", daemon=True)
        thread.start()
        return thread

    def down(self) -> None:
        """Stop the current receiver: connections to the port are refused."""
        self.catch_up()
        self._receivers[-1].stop()


@dataclass(frozen=True)
class Change:
    """One status change of a run, and the webhook-id its outbox notification was given."""

    webhook_id: str | None  # None: the outbox holds no notification for it
    change: tuple


def judge(expected: dict[str, list[Change]], arrivals: list[Arrival]) -> dict:
    """What the receiver acknowledged against what each run went through.

    lost: an expected change never acknowledged, verified; out_of_order: a change whose first
    acknowledged arrival came after a later change of its run; duplicates: a webhook-id
    acknowledged again (at-least-once allows it); forged: failing verification; unexpected:
    verified but no change of these runs, or carrying another change than its id's.
    """
    place = {
        c.webhook_id: (run_id, i, c.change)
        for run_id, changes in expected.items()
        for i, c in enumerate(changes)
        if c.webhook_id
    }
    acknowledged: set[str] = set()
    latest: dict[str, int] = {}
    duplicates = forged = unexpected = out_of_order = 0
    for arrival in arrivals:
        if arrival.run_id is None:
            forged += 1
        elif not arrival.acknowledged:
            continue
        elif arrival.webhook_id in acknowledged:
            duplicates += 1
        else:
            run_id, index, change = place.get(arrival.webhook_id, (None, -1, None))
            if (run_id, change) != (arrival.run_id, arrival.change):
                unexpected += 1
                continue
            acknowledged.add(arrival.webhook_id)
            out_of_order += index < latest.get(run_id, -1)
            latest[run_id] = max(index, latest.get(run_id, -1))
    return {
        "notifications_expected": sum(len(c) for c in expected.values()),
        "notifications_lost": sum(
            c.webhook_id not in acknowledged for changes in expected.values() for c in changes
        ),
        "out_of_order": out_of_order,
        "duplicates": duplicates,
        "notifications_forged": forged,
        "notifications_unexpected": unexpected,
    }


def _expected(stack: Stack, run_ids: list[str]) -> dict[str, list[Change]]:
    """Each run's status changes, from its audit trail, oldest first, with the webhook-id of
    the notification the outbox wrote for each (a change it missed has none: lost)."""
    changes: dict[str, list[Change]] = {run_id: [] for run_id in run_ids}
    for run_id, previous, status, webhook_id in stack.sql(
        "SELECT e.run_id::text, e.previous_status, e.status, 'msg_' || n.webhook_id"
        " FROM pipeline_run_events e LEFT JOIN run_notifications n ON n.event_id = e.id"
        " WHERE e.run_id = ANY(%s::uuid[]) AND e.status IS DISTINCT FROM e.previous_status"
        " ORDER BY e.id",
        (run_ids,),
    ):
        changes[run_id].append(Change(webhook_id, (previous, status)))
    return changes


def _states(stack: Stack, run_ids: list[str]) -> Counter:
    return Counter(
        dict(
            stack.sql(
                "SELECT state, count(*) FROM run_notifications WHERE run_id = ANY(%s::uuid[])"
                " GROUP BY state",
                (run_ids,),
            )
        )
    )


def _submit(stack: Stack, url: str, count: int, rate: float, accepted: list[str]) -> None:
    """`count` runs with the notify_url, `rate` a second; the accepted ones into `accepted`."""
    next_at = time.monotonic()
    for _ in range(count):
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at += 1 / rate
        body = run_body({"duration_seconds": 2}, notify_url=url)
        try:
            resp = stack.session.post(
                f"{stack.gateway}/api/v1/pipeline-runs", json=body, timeout=40
            )
        except OSError:
            continue
        if resp.status_code == 202:
            accepted.append(resp.json()["id"])


def _at(started: float, second: float) -> None:
    time.sleep(max(0.0, started + second - time.monotonic()))


def webhook_receiver_down(
    stack: Stack,
    runs: int = 300,
    rate: float = 3.0,
    down_seconds: float = 120.0,
    failing_seconds: float = 60.0,
) -> dict:
    """300 runs notify a receiver down for 2 min, then failing a third of requests for 1 min.

    The notifying processes (the poller program) are SIGKILLed twice meanwhile. Every change of
    every run arrives, verified, in its run's order (repeats allowed).
    """
    tally = Tally(Webhook(stack.env["WEBHOOK_SECRET"]), _free_port())
    url = f"http://127.0.0.1:{tally.port}{PATH}"
    accepted: list[str] = []
    stop_watching = threading.Event()
    tally.up()
    watcher = tally.watch(stop_watching)
    try:
        result, drained = _outage(
            stack, tally, url, accepted, runs, rate, down_seconds, failing_seconds
        )
        time.sleep(1)  # the last answers reach the receiver's record
    finally:
        stop_watching.set()
        watcher.join()
        tally.catch_up()
        tally.close()
    states = _states(stack, accepted)
    return {
        **result,
        **judge(_expected(stack, accepted), tally.arrivals),
        "notifications_left_pending": states["pending"],
        "notifications_given_up": states["given_up"],
        "receiver_answers_500": len(tally.answered_500),
        "notifying_process_kills": 2,
        "seconds_to_drain_after_healthy": round(drained, 1),
        "faults_injected": 1 + len(tally.answered_500) + 2,
    }


def _outage(
    stack: Stack,
    tally: Tally,
    url: str,
    accepted: list[str],
    runs: int,
    rate: float,
    down_seconds: float,
    failing_seconds: float,
) -> tuple[dict, float]:
    """Runs arrive for 100 s: the receiver up 20 s, down, then failing, then healthy; the
    notifying processes killed once while it is down and once while it fails. Returns the
    runs' verification and how long after the receiver was healthy the outbox was empty."""
    submitter = threading.Thread(target=_submit, args=(stack, url, runs, rate, accepted))
    started = time.monotonic()
    submitter.start()
    _at(started, 20)
    tally.down()
    _at(started, 20 + down_seconds / 2)
    stack.kill(NOTIFYING_PROGRAM)  # while every delivery fails
    _at(started, 20 + down_seconds)
    failing = tally.up(fail_every=3)
    _at(started, 20 + down_seconds + failing_seconds * 0.4)
    stack.kill(NOTIFYING_PROGRAM)  # with deliveries in flight
    _at(started, 20 + down_seconds + failing_seconds)
    failing.behave.pop(PATH)  # healthy from now on
    healthy_at = time.monotonic()
    submitter.join()
    result = verify(stack, accepted, timeout=420)
    # Retries back off (full jitter, doubling from 5 s): after three minutes of failures the
    # next attempt of a run's first notification may be minutes away.
    deadline = healthy_at + 900
    while _states(stack, accepted)["pending"] and time.monotonic() < deadline:
        time.sleep(2)
    return result, time.monotonic() - healthy_at
