"""Req 2.5: the database itself keeps the data true (statuses, keys, terminal runs, the trail)."""

from __future__ import annotations

import uuid

import psycopg2
import pytest

from batchcore import store


def _run(database, **extra) -> dict:
    with database.transaction() as cur:
        run, _ = store.create_run(
            cur,
            store.NewRun(
                "demo-batch", "BATCH", "s3://in/" + uuid.uuid4().hex, "s3://out/x", {}, **extra
            ),
        )
    return run


def _sql(database, statement: str, params: dict):
    with database.transaction() as cur:
        cur.execute(statement, params)


def _finish(database, run_id, status="COMPLETED"):
    with database.transaction() as cur:
        store.transition(
            cur,
            run_id,
            store.Transition("SUBMITTED", "test", "s", workbench_job_id="wb-" + uuid.uuid4().hex),
        )
        store.transition(
            cur,
            run_id,
            store.Transition(
                status, "test", "done", error_message="boom" if status == "FAILED" else None
            ),
        )


@pytest.mark.parametrize("status", ["COMPLETED", "FAILED"])
def test_req_2_5_terminal_status_guard_refuses_an_update_in_sql(database, status):
    run = _run(database)
    _finish(database, run["id"], status)
    for change in (
        "status = 'RUNNING'",
        "error_message = 'rewritten'",
        "completed_at = now() + interval '1 day'",
        "workbench_job_id = 'other'",
    ):
        with pytest.raises(psycopg2.errors.CheckViolation, match="terminal"):
            _sql(
                database, f"UPDATE pipeline_runs SET {change} WHERE id = %(id)s", {"id": run["id"]}
            )
    with database.transaction() as cur:
        assert store.get_run(cur, run["id"])["status"] == status


def test_req_2_5_transitions_outside_the_lifecycle_are_refused_in_sql(database):
    run = _run(database)
    with pytest.raises(psycopg2.errors.CheckViolation, match="cannot move from PENDING to RUNNING"):
        _sql(
            database,
            "UPDATE pipeline_runs SET status = 'RUNNING', workbench_job_id = 'j' WHERE id = %(id)s",
            {"id": run["id"]},
        )


def test_req_2_5_unknown_status_and_unknown_pipeline_are_refused(database):
    run = _run(database)
    with pytest.raises(psycopg2.errors.CheckViolation):
        _sql(
            database,
            "UPDATE pipeline_runs SET status = 'DONE' WHERE id = %(id)s",
            {"id": run["id"]},
        )
    with pytest.raises(psycopg2.errors.ForeignKeyViolation):
        _sql(
            database,
            "UPDATE pipeline_runs SET pipeline = 'nope' WHERE id = %(id)s",
            {"id": run["id"]},
        )


def test_req_2_5_idempotency_key_is_unique(database):
    run = _run(database, idempotency_key="k-1")
    with pytest.raises(psycopg2.errors.UniqueViolation):
        _sql(
            database,
            "INSERT INTO pipeline_runs (id, pipeline, mode, input_path_prefix, "
            "output_path_prefix, idempotency_key, request_fingerprint) VALUES "
            "(%(id)s, 'demo-batch', 'BATCH', 's3://a/b', 's3://a/c', 'k-1', 'x')",
            {"id": uuid.uuid4()},
        )
    assert run["idempotency_key"] == "k-1"


def test_req_2_5_audit_trail_is_append_only(database):
    run = _run(database)
    for statement in (
        "UPDATE pipeline_run_events SET message = 'x' WHERE run_id = %(id)s",
        "DELETE FROM pipeline_run_events WHERE run_id = %(id)s",
    ):
        with pytest.raises(psycopg2.errors.CheckViolation, match="append-only"):
            _sql(database, statement, {"id": run["id"]})


def test_req_2_5_active_runs_need_a_job_id_and_failed_runs_a_message(database):
    run = _run(database)
    with pytest.raises(psycopg2.errors.CheckViolation):
        _sql(
            database,
            "UPDATE pipeline_runs SET status = 'SUBMITTED' WHERE id = %(id)s",
            {"id": run["id"]},
        )
    with pytest.raises(psycopg2.errors.CheckViolation):
        _sql(
            database,
            "UPDATE pipeline_runs SET status = 'FAILED', completed_at = now() WHERE id = %(id)s",
            {"id": run["id"]},
        )


def test_req_2_5_poller_and_listing_queries_use_their_indexes(database):
    with database.transaction() as cur:
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute(
            "EXPLAIN SELECT id FROM pipeline_runs WHERE status IN ('SUBMITTED','RUNNING')"
            " AND next_poll_at <= now() ORDER BY next_poll_at LIMIT 100"
        )
        assert "pipeline_runs_due" in " ".join(r["QUERY PLAN"] for r in cur.fetchall())
        cur.execute(
            "EXPLAIN SELECT id FROM pipeline_runs ORDER BY created_at DESC, id DESC LIMIT 50"
        )
        assert "pipeline_runs_newest" in " ".join(r["QUERY PLAN"] for r in cur.fetchall())
