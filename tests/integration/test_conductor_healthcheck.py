"""Issue 11: compose's Conductor health check (deploy/conductor/healthcheck.sh) run as written
against the real PostgreSQL: it fails on a message popped and never acknowledged past the
threshold (conductor-oss/conductor#326) and on nothing else. Its queue table is a copy of
Conductor's queue_message columns in a scratch database; its address the stack's."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest

from tests.conftest import scratch_database

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "conductor" / "healthcheck.sh"
THRESHOLD = 300
# What the script assumes of the compose network, and what this test points it at instead.
COMPOSE_HEALTH = "http://localhost:8080/health"
COMPOSE_LOGIN = "-U conductor -d conductor"


@pytest.fixture
def queue(stack_env, tmp_path):
    """(add a message, run the check): a scratch queue_message table and the script aimed
    at it and at the stack's Conductor."""
    text = SCRIPT.read_text()
    assert text.count(COMPOSE_HEALTH) == 1 and text.count(COMPOSE_LOGIN) == 1
    health = stack_env["CONDUCTOR_SERVER_URL"].removesuffix("/api") + "/health"
    script = tmp_path / "healthcheck.sh"
    script.write_text(
        text.replace(COMPOSE_HEALTH, health).replace(
            COMPOSE_LOGIN, '-U "$CHECK_USER" -d "$CHECK_DATABASE"'
        )
    )
    with scratch_database(stack_env, "healthcheck") as url:
        conn = psycopg2.connect(url, connect_timeout=5, options="-c TimeZone=UTC")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE queue_message (queue_name varchar(255) NOT NULL,"
                " message_id varchar(255) NOT NULL, deliver_on timestamp NOT NULL,"
                " popped boolean NOT NULL DEFAULT false)"
            )

        def add(queue_name: str, seconds_past_delivery: int, popped: bool) -> None:
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO queue_message VALUES"
                    " (%s, %s, localtimestamp - make_interval(secs => %s), %s)",
                    (queue_name, f"m{seconds_past_delivery}", seconds_past_delivery, popped),
                )

        login = urlsplit(url)

        def check(database: str = login.path.lstrip("/")) -> subprocess.CompletedProcess:
            env = {
                **os.environ,
                "CONDUCTOR_DB_PASSWORD": login.password,
                "CONDUCTOR_DB_HOST": login.hostname,
                "PGPORT": str(login.port),
                "CHECK_USER": login.username,
                "CHECK_DATABASE": database,
                "CONDUCTOR_STUCK_MESSAGE_SECONDS": str(THRESHOLD),
            }
            return subprocess.run(
                ["sh", str(script)], env=env, capture_output=True, text=True, timeout=30
            )

        try:
            yield add, check
        finally:
            conn.close()


def test_issue_11_conductors_health_check_fails_only_on_a_stuck_queue(queue):
    add, check = queue
    assert check().returncode == 0, "an empty queue"
    add("_deciderQueue", THRESHOLD * 10, popped=False)  # due, not popped: a backlog
    add("submit_to_workbench", THRESHOLD - 60, popped=True)  # popped, not yet overdue
    assert check().returncode == 0
    add("_deciderQueue", THRESHOLD + 60, popped=True)
    stuck = check()
    assert stuck.returncode == 1, stuck
    assert "1 message(s)" in stuck.stdout and "conductor-oss/conductor#326" in stuck.stdout
    assert "restart the Conductor server" in stuck.stdout


def test_issue_11_an_unreadable_queue_is_no_verdict_on_the_bug(queue):
    _, check = queue
    assert check(database="no_such_database").returncode == 0
