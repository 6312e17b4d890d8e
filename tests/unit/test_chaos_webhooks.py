"""The webhook_receiver_down scenario's judgement of what a receiver got."""

from __future__ import annotations

import base64
import socket
from datetime import UTC, datetime

import requests
from standardwebhooks.webhooks import Webhook

from batchcore.notifications.signing import body_of, signed_headers
from chaos import results
from chaos.webhooks import PATH, Arrival, Change, Tally, judge

SECRET = "whsec_" + base64.b64encode(b"c" * 32).decode()
LIFE = [(None, "PENDING"), ("PENDING", "SUBMITTED"), ("SUBMITTED", "COMPLETED")]


def arrival(run_id: str, change: tuple, webhook_id: str, acknowledged: bool = True) -> Arrival:
    return Arrival(webhook_id, run_id, change, acknowledged)


def life(run_id: str, changes: list[tuple] = LIFE) -> list[Change]:
    return [Change(f"{run_id}{i}", c) for i, c in enumerate(changes)]


def test_all_arrived_in_order_with_a_repeat_and_a_refused_attempt():
    arrivals = [arrival("a", c, f"a{i}") for i, c in enumerate(LIFE)]
    arrivals.insert(1, arrival("a", LIFE[0], "a0"))  # acknowledged twice: a duplicate
    arrivals.insert(0, arrival("a", LIFE[0], "a0", acknowledged=False))  # answered 500: a retry
    figures = judge({"a": life("a")}, arrivals)
    assert figures == {
        "notifications_expected": 3,
        "notifications_lost": 0,
        "out_of_order": 0,
        "duplicates": 1,
        "notifications_forged": 0,
        "notifications_unexpected": 0,
    }


def test_lost_out_of_order_forged_and_unexpected_are_counted():
    arrivals = [
        arrival("a", LIFE[1], "a1"),
        arrival("a", LIFE[2], "a2"),
        arrival("a", LIFE[0], "a0"),  # after both later changes: one out of order
        arrival("b", LIFE[0], "b0", acknowledged=False),  # only ever answered 500: lost
        Arrival("b1", None, None, True),  # failed verification
        arrival("c", LIFE[0], "c0"),  # no run of this scenario
        arrival("b", LIFE[0], "b1"),  # b's second id carrying its first change
    ]
    figures = judge({"a": life("a"), "b": life("b", LIFE[:2])}, arrivals)
    assert figures["notifications_expected"] == 5
    assert figures["notifications_lost"] == 2
    assert figures["out_of_order"] == 1
    assert figures["notifications_forged"] == 1
    assert figures["notifications_unexpected"] == 2
    assert figures["duplicates"] == 0


def test_a_change_the_outbox_missed_is_lost_and_a_run_may_repeat_a_change():
    back_and_forth = [*LIFE[:2], ("SUBMITTED", "PENDING"), ("PENDING", "SUBMITTED")]
    expected = life("a", back_and_forth)
    arrivals = [arrival("a", c, f"a{i}") for i, c in enumerate(back_and_forth)]
    figures = judge({"a": expected}, arrivals[:1] + arrivals[2:])
    assert (figures["notifications_lost"], figures["out_of_order"]) == (1, 0)
    expected[3] = Change(None, back_and_forth[3])  # no notification written for it
    figures = judge({"a": expected}, arrivals)
    assert (figures["notifications_lost"], figures["notifications_unexpected"]) == (1, 1)


def _post(url: str, run_id: str, change: tuple, webhook_id: str, secret: str = SECRET) -> int:
    body = body_of({"id": run_id, "status": change[1]}, change[0], "t")
    headers = signed_headers(secret, webhook_id, body, datetime.now(UTC))
    return requests.post(url, data=body, headers=headers, timeout=5).status_code


def test_the_tally_verifies_on_arrival_and_knows_which_calls_it_answered_500():
    tally = Tally(Webhook(SECRET), 0)
    receiver = tally.up(fail_every=2)
    tally.port = receiver.port
    url = f"http://127.0.0.1:{receiver.port}{PATH}"
    try:
        codes = [_post(url, "a", c, f"a{i}") for i, c in enumerate(LIFE)]
        other = "whsec_" + base64.b64encode(b"x" * 32).decode()
        codes.append(_post(url, "a", LIFE[0], "forged", secret=other))
        tally.down()
    finally:
        receiver.stop()
    assert codes == [204, 500, 204, 500]
    assert [a.acknowledged for a in tally.arrivals] == [True, False, True, False]
    assert [a.change for a in tally.arrivals] == [*LIFE, None]
    with socket.socket() as probe:  # down: nothing listens on the port any more
        assert probe.connect_ex(("127.0.0.1", receiver.port)) != 0


def test_the_results_file_totals_name_the_scenarios_figures():
    figures = results.merge(
        {},
        {"webhook_receiver_down": {"notifications_lost": 0, "out_of_order": 2, "rounds": 1}},
    )
    assert figures["notifications_out_of_order"] == 2
    assert not results.verdict_ok(figures)


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
