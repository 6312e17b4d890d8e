"""Req 2.5: migrations apply in order, re-running is a no-op, a failure leaves nothing behind."""

from __future__ import annotations

import psycopg2
import pytest

from batchcore import migrate
from tests.conftest import scratch_database


def _tables(url: str) -> set[str]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in cur.fetchall()}


@pytest.fixture
def empty_database_url(stack_env):
    """A database with nothing in it, owned by the service's role."""
    with scratch_database(stack_env, "empty") as url:
        yield url


def test_req_6_2_migrations_from_empty_then_again_as_a_no_op(empty_database_url):
    applied = migrate.apply(empty_database_url)
    assert applied == [m.version for m in migrate.discover()]
    assert {"pipelines", "pipeline_runs", "pipeline_run_events", "schema_migrations"} <= _tables(
        empty_database_url
    )
    assert migrate.apply(empty_database_url) == []
    with psycopg2.connect(empty_database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM schema_migrations")
        assert cur.fetchone()[0] == len(applied)
        cur.execute("SELECT name, mode, enabled FROM pipelines")
        assert ("demo-batch", "BATCH", True) in cur.fetchall()


def test_req_6_2_failed_migration_leaves_nothing_half_applied(empty_database_url, tmp_path):
    good = migrate.discover()
    bad = migrate.Migration("9999", "broken", "CREATE TABLE half_done (id int); SELECT 1/0;")
    with pytest.raises(migrate.MigrationError, match="9999_broken failed and was rolled back"):
        migrate.apply(empty_database_url, [*good, bad])
    assert "half_done" not in _tables(empty_database_url)
    with psycopg2.connect(empty_database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM schema_migrations ORDER BY version")
        assert [r[0] for r in cur.fetchall()] == [m.version for m in good]


def test_req_6_2_an_applied_migration_that_was_edited_is_refused(empty_database_url):
    migrate.apply(empty_database_url)
    first = migrate.discover()[0]
    edited = migrate.Migration(first.version, first.name, first.sql + "\n-- edited")
    with pytest.raises(migrate.MigrationError, match="changed after it was applied"):
        migrate.apply(empty_database_url, [edited])
