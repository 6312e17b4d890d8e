"""The pool keeps its connections, replaces those the server closed, and autocommit() is one
round trip per statement."""

from __future__ import annotations

import psycopg2

from batchcore.db import Database


def _backend_pid(db: Database) -> int:
    with db.autocommit() as cur:
        cur.execute("SELECT pg_backend_pid() AS pid")
        return cur.fetchone()["pid"]


def test_connections_are_kept_and_reused(database_url):
    db = Database(database_url, maxconn=2)
    try:
        first = _backend_pid(db)
        assert [_backend_pid(db) for _ in range(5)] == [first] * 5
        with db.transaction() as cur:
            cur.execute("SELECT pg_backend_pid() AS pid")
            assert cur.fetchone()["pid"] == first
    finally:
        db.close()


def test_a_kept_connection_the_server_ended_is_replaced_not_failed(database_url, stack_env):
    db = Database(database_url, maxconn=2)
    try:
        first = _backend_pid(db)
        admin = psycopg2.connect(stack_env["PG_ADMIN_URL"])
        admin.autocommit = True
        try:
            with admin.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(%s, 5000)", (first,))
                assert cur.fetchone()[0], "the backend did not end within 5 s"
        finally:
            admin.close()
        # The server's goodbye reaches the idle socket; the next checkout notices it.
        second = _backend_pid(db)
        assert second != first
        db.ping()
    finally:
        db.close()


def test_autocommit_commits_each_statement_and_transaction_still_rolls_back(database):
    with database.autocommit() as cur:
        cur.execute("CREATE TABLE pool_probe (n int)")
        cur.execute("INSERT INTO pool_probe VALUES (1)")
    try:
        with database.transaction() as cur:
            cur.execute("INSERT INTO pool_probe VALUES (2)")
            raise RuntimeError("roll it back")
    except RuntimeError:
        pass
    with database.transaction() as cur:
        cur.execute("SELECT array_agg(n ORDER BY n) AS ns FROM pool_probe")
        assert cur.fetchone()["ns"] == [1]
