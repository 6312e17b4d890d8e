"""The detector of Conductor's dead unack processor: its verdict, report and query."""

from __future__ import annotations

import re

import psycopg2
import pytest

from batchcore import conductor_queue, settings
from batchcore.conductor_queue import ISSUE, QueueHealth, QueueWatch, health_from_row
from batchcore.queries import Q


def test_no_message_past_the_threshold_is_ok():
    health = health_from_row((0, None, None), stuck_after_seconds=300)
    assert (health.stuck, health.status) == (False, "ok")
    assert health.report() == {"status": "ok", "stuck_after_seconds": 300}


def test_a_message_past_the_threshold_is_stuck_and_names_the_issue_and_the_remedy():
    health = health_from_row((2, 421.6, ["_deciderQueue", "WAIT"]), stuck_after_seconds=300)
    assert (health.stuck, health.status) == (True, "stuck")
    report = health.report()
    assert report["stuck_messages"] == 2
    assert report["oldest_seconds"] == 422
    assert report["queues"] == ["WAIT", "_deciderQueue"]
    assert report["issue"] == ISSUE == "conductor-oss/conductor#326"
    assert "restart the Conductor server" in report["remedy"]
    assert ISSUE in report["message"] and "restart the Conductor server" in report["message"]


def test_a_failed_check_is_no_verdict_either_way():
    health = QueueHealth(stuck_messages=3, stuck_after_seconds=300, error="connection refused")
    assert (health.stuck, health.status) == (False, "unknown")
    assert health.report() == {
        "status": "unknown",
        "stuck_after_seconds": 300,
        "error": "connection refused",
    }


def test_the_query_mirrors_conductors_own_unack_condition():
    """processAllUnacks un-pops `popped = true AND deliver_on + 60 s < now`: the same rows,
    with the threshold instead of 60 s, and only reads."""
    sql = " ".join(Q["conductor_stuck_messages"].split())
    assert re.search(r"\bFROM queue_message WHERE popped AND deliver_on < localtimestamp", sql)
    assert "%(stuck_after_seconds)s" in sql
    code = " ".join(
        line for line in Q["conductor_stuck_messages"].splitlines() if not line.startswith("--")
    ).upper()
    assert code.startswith("SELECT ")
    assert not re.search(r"\b(UPDATE|DELETE|INSERT|LOCK)\b", code), "it must only read"


def test_the_threshold_cannot_be_set_below_what_a_healthy_server_reaches():
    assert settings.default("CONDUCTOR_STUCK_MESSAGE_SECONDS") == 300
    with pytest.raises(settings.SettingsError, match="CONDUCTOR_STUCK_MESSAGE_SECONDS"):
        settings.load({"CONDUCTOR_STUCK_MESSAGE_SECONDS": "120"})
    assert settings.load({}).conductor_database_url == ""


def test_the_database_url_is_secret_and_checked():
    var = next(v for v in settings.VARIABLES if v.name == "CONDUCTOR_DATABASE_URL")
    assert var.secret
    with pytest.raises(settings.SettingsError, match="CONDUCTOR_DATABASE_URL"):
        settings.load({"CONDUCTOR_DATABASE_URL": "mysql://conductor@db/conductor"})
    cfg = settings.load({"CONDUCTOR_DATABASE_URL": "postgresql://ro:secret@db/conductor"})
    assert "secret" not in repr(cfg)


def test_an_unreachable_database_is_reported_not_raised(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise psycopg2.OperationalError("connection refused\nIs the server running?")

    monkeypatch.setattr(conductor_queue.psycopg2, "connect", refuse)
    health = conductor_queue.check("postgresql://ro@nowhere/conductor", 300)
    assert health.status == "unknown" and health.error == "connection refused"


def test_the_watch_logs_a_detection_once_and_hands_each_verdict_on(monkeypatch, caplog):
    verdicts = iter(
        [
            health_from_row((0, None, None), 300),
            health_from_row((1, 400.0, ["_deciderQueue"]), 300),
            health_from_row((1, 430.0, ["_deciderQueue"]), 300),
        ]
    )
    monkeypatch.setattr(conductor_queue, "check", lambda *_a, **_k: next(verdicts))
    seen: list[str] = []
    watch = QueueWatch(
        "postgresql://ro@db/conductor", 300, on_check=lambda h: seen.append(h.status)
    )
    assert watch.report()["status"] == "unknown"
    for _ in range(3):
        watch.check_once()
    assert seen == ["ok", "stuck", "stuck"]
    assert watch.report()["oldest_seconds"] == 430
    logged = [r.getMessage() for r in caplog.records if ISSUE in r.getMessage()]
    assert len(logged) == 1


def test_the_worker_service_exports_the_verdict_and_skips_the_check_without_a_url():
    from conductor_workers import health as worker_health

    assert worker_health.watch_conductor_queue("", 300) is None
    worker_health._export_queue_health(health_from_row((2, 400.0, ["_deciderQueue"]), 300))
    assert worker_health.QUEUE_STUCK_MESSAGES._value.get() == 2
    assert worker_health.QUEUE_STUCK_OLDEST._value.get() == 400.0
    worker_health._export_queue_health(QueueHealth(stuck_after_seconds=300, error="refused"))
    assert worker_health.QUEUE_CHECK_OK._value.get() == 0
    assert worker_health.QUEUE_STUCK_MESSAGES._value.get() == 2, "no verdict keeps the last"
