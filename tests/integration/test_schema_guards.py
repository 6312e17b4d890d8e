"""Req 2.5: the database itself keeps the data true (statuses, keys, terminal runs, the trail)."""

from __future__ import annotations

import re
import uuid

import psycopg2
import pytest

from batchcore.runs import model, rows
from tests.integration.helpers import fetch_run, history


def _run(database, **extra) -> dict:
    with database.transaction() as cur:
        run, _ = rows.create_run(
            cur,
            model.NewRun(
                "demo-batch", "BATCH", "s3://in/" + uuid.uuid4().hex, "s3://out/x", {}, **extra
            ),
        )
    return run


def _sql(database, statement: str, params: dict):
    with database.transaction() as cur:
        cur.execute(statement, params)


def _finish(database, run_id, status="COMPLETED"):
    with database.transaction() as cur:
        rows.transition(
            cur,
            run_id,
            model.Transition("SUBMITTED", "test", "s", workbench_job_id="wb-" + uuid.uuid4().hex),
        )
        rows.transition(
            cur,
            run_id,
            model.Transition(
                status, "test", "done", error_message="boom" if status == "FAILED" else None
            ),
        )


@pytest.mark.parametrize("status", ["COMPLETED", "FAILED"])
def test_req_7_3_terminal_status_guard_refuses_an_update_in_sql(database, status):
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
        assert rows.get_run(cur, run["id"])["status"] == status


# The lifecycle as the README states it, written out here on purpose rather than read from
# the code, so that widening the code's rules turns the test red.
STATUSES = ("PENDING", "SUBMITTED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED")
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
LIFECYCLE = {
    "PENDING": {"SUBMITTED", "FAILED", "CANCELLED"},
    "SUBMITTED": {"RUNNING", "COMPLETED", "FAILED", "CANCELLED"},
    "RUNNING": {"COMPLETED", "FAILED", "CANCELLED"},
    "COMPLETED": set(),
    "FAILED": set(),
    "CANCELLED": set(),
}
# What may still change on a terminal run: the workflow behind it and bookkeeping.
AFTER_END = {
    "conductor_workflow_id",
    "updated_at",
    "last_polled_at",
    "next_poll_at",
    "poll_failures",
    "last_poll_error",
    "last_poll_error_kind",
    "poll_lease_until",
    "workflow_synced_at",
    "workflow_checked_at",
    "cancel_sent_at",
}
# What may be set once on an ended run, together: the cancel of a job that may still run.
ONCE_AFTER_END = ("cancel_requested_at", "cancel_requested_by", "cancel_reason")
# A value that differs from the current one, by column type (NULLs included).
CHANGED_VALUE = {
    "text": "COALESCE({c}, '') || 'x'",
    "uuid": "gen_random_uuid()",
    "jsonb": """COALESCE({c}, '{{}}') || '{{"changed": true}}'""",
    "timestamp with time zone": "COALESCE({c}, now()) + interval '1 day'",
    "integer": "{c} + 1",
}


def _insert_run(database, status: str) -> uuid.UUID:
    """A run put straight into `status` by SQL, meeting the table's CHECKs for it."""
    run_id = uuid.uuid4()
    _sql(
        database,
        "INSERT INTO pipeline_runs (id, pipeline, mode, status, input_path_prefix,"
        " output_path_prefix, request_fingerprint, workbench_job_id, completed_at, error_message)"
        " VALUES (%(id)s, 'demo-batch', 'BATCH', %(status)s, %(in)s, 's3://out/x', 'test',"
        " %(job)s, %(completed)s, %(error)s)",
        {
            "id": run_id,
            "status": status,
            "in": f"s3://in/{run_id.hex}",
            "job": None if status == "PENDING" else f"wb-{run_id.hex}",
            "completed": "2026-01-01T00:00:00Z" if status in TERMINAL else None,
            "error": "boom" if status == "FAILED" else None,
        },
    )
    return run_id


def _move(database, run_id, status: str) -> str:
    """Try one status change that meets the table's CHECKs: 'allowed' or the refusal."""
    try:
        _sql(
            database,
            "UPDATE pipeline_runs SET status = %(status)s,"
            " workbench_job_id = COALESCE(workbench_job_id, 'wb-' || id),"
            " completed_at = CASE WHEN %(status)s IN ('COMPLETED', 'FAILED', 'CANCELLED')"
            "                     THEN COALESCE(completed_at, now()) END,"
            " error_message = CASE WHEN %(status)s = 'FAILED'"
            "                      THEN COALESCE(error_message, 'boom') END"
            " WHERE id = %(id)s",
            {"id": run_id, "status": status},
        )
    except psycopg2.errors.CheckViolation as exc:
        return str(exc).splitlines()[0]
    with database.transaction() as cur:
        cur.execute("SELECT status FROM pipeline_runs WHERE id = %(id)s", {"id": run_id})
        assert cur.fetchone()["status"] == status
    return "allowed"


def test_req_3_4_the_tables_statuses_are_the_lifecycles(database):
    with database.transaction() as cur:
        cur.execute(
            "SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint"
            " WHERE conrelid = 'pipeline_runs'::regclass AND contype = 'c'"
            " AND pg_get_constraintdef(oid) LIKE '%(status = ANY%'"
        )
        (check,) = cur.fetchall()
    assert tuple(re.findall(r"'(\w+)'::text", check["def"])) == STATUSES


def test_req_3_4_every_status_move_is_allowed_or_refused_as_the_lifecycle_says(database):
    expected, seen = {}, {}
    for old in STATUSES:
        for new in STATUSES:
            if new == old or new in LIFECYCLE[old]:
                expected[old, new] = "allowed"
            elif LIFECYCLE[old]:
                expected[old, new] = f"cannot move from {old} to {new}"
            else:
                expected[old, new] = f"is {old} (terminal) and cannot change"
            outcome = _move(database, _insert_run(database, old), new)
            seen[old, new] = expected[old, new] if expected[old, new] in outcome else outcome
    assert seen == expected


@pytest.mark.parametrize("status", ["SUBMITTED", "RUNNING"])
@pytest.mark.parametrize("job", ["'wb-other'", "NULL"])
def test_req_2_3_an_active_runs_workbench_job_never_changes(database, status, job):
    run_id = _insert_run(database, status)
    with pytest.raises(psycopg2.errors.CheckViolation, match="already has Workbench job"):
        _sql(
            database,
            f"UPDATE pipeline_runs SET workbench_job_id = {job} WHERE id = %(id)s",
            {"id": run_id},
        )
    assert fetch_run(database, run_id)["workbench_job_id"] == f"wb-{run_id.hex}"


@pytest.mark.parametrize("status", TERMINAL)
def test_req_7_3_every_column_of_a_terminal_run_is_frozen_but_its_bookkeeping(database, status):
    run_id = _insert_run(database, status)
    with database.transaction() as cur:
        cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = 'pipeline_runs' ORDER BY ordinal_position"
        )
        columns = {row["column_name"]: row["data_type"] for row in cur.fetchall()}
    assert set(columns) > AFTER_END
    before = fetch_run(database, run_id)
    frozen, changeable = [], []
    for column, data_type in columns.items():
        if column in ONCE_AFTER_END:
            continue  # below
        value = CHANGED_VALUE[data_type].format(c=column)
        try:
            _sql(
                database,
                f"UPDATE pipeline_runs SET {column} = {value} WHERE id = %(id)s",
                {"id": run_id},
            )
            changeable.append(column)
        except psycopg2.errors.CheckViolation as exc:
            assert f"is {status} (terminal) and cannot change ({column})" in str(exc)
            frozen.append(column)
    assert set(changeable) == AFTER_END
    after = fetch_run(database, run_id)
    assert {c: after[c] for c in frozen} == {c: before[c] for c in frozen}


@pytest.mark.parametrize("status", TERMINAL)
def test_an_ended_runs_job_cancel_is_recorded_once_and_then_frozen(database, status):
    """Issue 13: a job that may still run for an ended run is to be cancelled: the request is
    set once (with the job's id, once, if it was unknown), never rewritten."""
    run_id = _insert_run(database, status)
    ask = (
        "UPDATE pipeline_runs SET cancel_requested_at = now(), cancel_requested_by = %(by)s,"
        " cancel_reason = 'ended' WHERE id = %(id)s"
    )
    _sql(database, ask, {"id": run_id, "by": "submit"})
    with pytest.raises(psycopg2.errors.CheckViolation, match=r"cannot change \(cancel_"):
        _sql(database, ask, {"id": run_id, "by": "poller"})
    assert fetch_run(database, run_id)["cancel_requested_by"] == "submit"


def test_an_ended_run_without_a_job_may_record_the_job_found_for_its_cancel_once(database):
    run_id = _insert_run(database, "PENDING")
    _sql(
        database,
        "UPDATE pipeline_runs SET status = 'CANCELLED', completed_at = now(),"
        " cancel_requested_at = now(), cancel_requested_by = 'alice',"
        " cancel_reason = 'requested', submit_started_at = now() WHERE id = %(id)s",
        {"id": run_id},
    )
    attach = "UPDATE pipeline_runs SET workbench_job_id = %(job)s WHERE id = %(id)s"
    _sql(database, attach, {"id": run_id, "job": "wb-found"})
    with pytest.raises(psycopg2.errors.CheckViolation, match=r"cannot change \(workbench_job_id"):
        _sql(database, attach, {"id": run_id, "job": "wb-other"})


def test_req_5_5_unknown_status_and_unknown_pipeline_are_refused(database):
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


def test_req_2_1_idempotency_key_is_unique(database):
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


def test_req_7_2_audit_trail_is_append_only(database):
    run = _run(database)
    for statement in (
        "UPDATE pipeline_run_events SET message = 'x' WHERE run_id = %(id)s",
        "DELETE FROM pipeline_run_events WHERE run_id = %(id)s",
    ):
        with pytest.raises(psycopg2.errors.CheckViolation, match="append-only"):
            _sql(database, statement, {"id": run["id"]})


@pytest.mark.parametrize(
    ("statement", "refused_by"),
    [
        ("TRUNCATE pipeline_run_events", "pipeline_run_events"),
        ("TRUNCATE pipeline_run_events RESTART IDENTITY", "pipeline_run_events"),
        ("TRUNCATE pipeline_runs CASCADE", "pipeline_runs"),
        ("TRUNCATE pipeline_runs, pipeline_run_events, pipeline_run_polls", "pipeline_runs"),
        # Without the poll schedule, whose key refers to the runs, PostgreSQL refuses first.
        ("TRUNCATE pipeline_runs, pipeline_run_events", "a foreign key"),
    ],
)
def test_req_7_2_no_truncate_empties_the_runs_or_their_trail(database, statement, refused_by):
    run = _run(database)
    trail = history(database, run["id"])
    assert trail
    if refused_by == "a foreign key":
        refusal = pytest.raises(psycopg2.errors.FeatureNotSupported, match="foreign key")
    else:
        refusal = pytest.raises(
            psycopg2.errors.CheckViolation, match=f"^{refused_by} cannot be truncated"
        )
    with refusal:
        _sql(database, statement, {})
    assert history(database, run["id"]) == trail
    assert fetch_run(database, run["id"])["status"] == "PENDING"


def test_req_7_4_active_runs_need_a_job_id_and_failed_runs_a_message(database):
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


def test_req_3_1_poller_and_listing_queries_use_their_indexes(database):
    # An empty table has no statistics: only the order an index gives is asked for here
    # (test_query_plans judges the plans on a realistic mix with statistics).
    with database.transaction() as cur:
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("SET LOCAL enable_bitmapscan = off")
        cur.execute("SET LOCAL enable_sort = off")
        cur.execute(
            "EXPLAIN SELECT run_id FROM pipeline_run_polls"
            " WHERE next_poll_at <= now() ORDER BY next_poll_at LIMIT 100"
        )
        assert "pipeline_run_polls_due" in " ".join(r["QUERY PLAN"] for r in cur.fetchall())
        cur.execute(
            "EXPLAIN SELECT id FROM pipeline_runs ORDER BY created_at DESC, id DESC LIMIT 50"
        )
        assert "pipeline_runs_newest" in " ".join(r["QUERY PLAN"] for r in cur.fetchall())
