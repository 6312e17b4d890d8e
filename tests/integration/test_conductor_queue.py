"""The conductor-oss/conductor#326 check against the stack's real Conductor database."""

from __future__ import annotations

import psycopg2
import pytest

from batchcore import conductor_queue


def test_the_check_reads_conductors_queue_through_the_read_only_role(stack_env):
    url = stack_env["CONDUCTOR_DATABASE_URL"]
    assert "conductor_monitor" in url, "the stack publishes the read-only role's URL"
    health = conductor_queue.check(url, stuck_after_seconds=180)
    assert health.error is None, health.error
    assert health.status in ("ok", "stuck")


def test_the_read_only_role_can_neither_write_nor_read_beyond_the_queue(stack_env):
    with psycopg2.connect(stack_env["CONDUCTOR_DATABASE_URL"], connect_timeout=5) as conn:
        with conn.cursor() as cur:
            cur.execute("SHOW TimeZone")
            assert cur.fetchone()[0] == "UTC", "the zone the stack's Conductor JVM writes in"
            with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
                cur.execute("UPDATE queue_message SET popped = popped WHERE false")
        conn.rollback()
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("SELECT count(*) FROM workflow")


def test_a_refused_login_gives_no_verdict_and_no_password(stack_env):
    wrong = "wrong-password-6f1c"
    parts = stack_env["CONDUCTOR_DATABASE_URL"].split("@", 1)
    url = parts[0].rsplit(":", 1)[0] + f":{wrong}@" + parts[1]
    health = conductor_queue.check(url, stuck_after_seconds=180)
    assert health.status == "unknown" and "authentication failed" in health.error
    assert wrong not in health.error
