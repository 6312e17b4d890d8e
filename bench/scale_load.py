"""The scale phase's databases: millions of ended runs with their audit trail, loaded in SQL.

`python -m bench.scale_load [--quick]` loads them and keeps them (the scale phase reuses
databases whose count matches, when BENCH_SCALE_KEEP=1), so a long load can run outside the
stack lock and the measuring under it.

Each database is migrated with batchcore.migrate as the service's role, then filled by an
admin session, the ended runs with session_replication_role = replica: the audit trail's
triggers (actor, notifications) and foreign-key checks would cost a lookup per event, and the
loader writes the actor itself. The few open runs go in with every trigger, as in service.
Runs are spread over a year, newest last; failures are both spread (one in 41, none in the
last five weeks: the cause was fixed) and clustered (two old incidents); a few of the newest
ended runs still await their workflow's sync. Active runs are recent, all
due a poll, some failing to be read.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from dataclasses import dataclass

import psycopg2

from batchcore import migrate

from . import common
from .common import log

BIG_DB = "batch_bench_scale"
SMALL_DB = "batch_bench_scale_small"
CHUNK = 200_000
PIPELINES = ("scale-etl", "scale-train", "scale-report")  # 60 %, 30 %, 10 % of the runs
# The same in both databases, so that the reconciler's and the sync's reads return as many
# rows on each: what grows is everything around them.
STUCK_PENDING = 20
FAILING = 200
UNSYNCED = 100

PIPELINE_ROWS = """
INSERT INTO pipelines (name, mode, workflow_name, workflow_version, description)
SELECT p, 'BATCH', 'batch_pipeline_run', 1, 'scale benchmark' FROM unnest(%(names)s::text[]) p
ON CONFLICT (name) DO NOTHING
"""

# g runs from 1 (the oldest) to %(total)s (the newest); each run is created, submitted 2 s
# later, started 20 s later and ended after a duration of one to sixty minutes.
TERMINAL_RUNS = """
WITH src AS (
    SELECT g, f.frac, f.created,
           ((g %% 41 = 0 AND f.frac < 0.9)
            OR (f.frac BETWEEN 0.300 AND 0.302 AND g %% 5 <> 0)
            OR (f.frac BETWEEN 0.710 AND 0.7105 AND g %% 10 < 6 AND g %% 3 <> 0)) AS failed,
           (60 + (g * 7919) %% 3600) * interval '1 second' AS duration
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) g,
         LATERAL (SELECT g::float8 / %(total)s AS frac) fr,
         LATERAL (SELECT fr.frac,
                         now() - interval '2 hours' - (1 - fr.frac) * interval '365 days'
                         AS created) f
),
runs AS (
    INSERT INTO pipeline_runs (
        id, pipeline, mode, status, input_path_prefix, output_path_prefix, parameters,
        idempotency_key, request_fingerprint, conductor_workflow_id, workbench_job_id,
        error_message, error_details, created_at, updated_at, submitted_at, started_at,
        completed_at, last_polled_at, workflow_synced_at, submitted_by)
    SELECT gen_random_uuid(),
           CASE WHEN g %% 10 < 6 THEN 'scale-etl' WHEN g %% 10 < 9 THEN 'scale-train'
                ELSE 'scale-report' END,
           'BATCH', CASE WHEN failed THEN 'FAILED' ELSE 'COMPLETED' END,
           's3://scale/in/' || g || '/', 's3://scale/out/' || g || '/',
           jsonb_build_object('shard', g %% 16, 'day', to_char(created, 'YYYY-MM-DD')),
           CASE WHEN g %% 2 = 0 THEN 'key-' || g END, 'scale', 'wf-' || g, 'job-' || g,
           CASE WHEN failed THEN 'The Workbench job failed: exit code 1' END,
           CASE WHEN failed THEN '{"code": "job_failed"}'::jsonb END,
           created, created + interval '20 seconds' + duration + interval '3 seconds',
           created + interval '2 seconds', created + interval '20 seconds',
           created + interval '20 seconds' + duration,
           created + interval '20 seconds' + duration,
           CASE WHEN g <= %(total)s - %(unsynced)s
                THEN created + interval '20 seconds' + duration + interval '3 seconds' END,
           'default'
    FROM src
    RETURNING id, status, workbench_job_id, created_at, submitted_at, started_at, completed_at
)
INSERT INTO pipeline_run_events (run_id, at, source, actor, previous_status, status, message)
SELECT r.id, e.at, e.source, e.source, e.previous_status, e.status, e.message
FROM runs r CROSS JOIN LATERAL (VALUES
    (r.created_at, 'gateway', NULL, 'PENDING', 'Run accepted'),
    (r.submitted_at, 'persist', 'PENDING', 'SUBMITTED',
     'Workbench job ' || r.workbench_job_id || ' submitted'),
    (r.started_at, 'poller', 'SUBMITTED', 'RUNNING', 'Workbench job is running'),
    (r.completed_at, 'poller', 'RUNNING', r.status,
     CASE WHEN r.status = 'FAILED' THEN 'Workbench job failed' ELSE 'Workbench job succeeded'
     END)
) AS e(at, source, previous_status, status, message)
"""

# Recent active runs, every one due a poll; of the first FAILING, half have had their job
# answered 404 for a while (some past the reconciler's 10), half an answer retrying cannot fix.
ACTIVE_RUNS = """
WITH src AS (
    SELECT h, now() - (%(count)s - h) * interval '300 milliseconds' - interval '1 minute'
              AS created,
           CASE WHEN h > %(failing)s THEN NULL WHEN h %% 2 = 0 THEN 'not_found'
                ELSE 'unknown_status' END AS kind
    FROM generate_series(1, %(count)s) h
),
runs AS (
    INSERT INTO pipeline_runs (
        id, pipeline, mode, status, input_path_prefix, output_path_prefix, parameters,
        request_fingerprint, conductor_workflow_id, workbench_job_id, created_at, updated_at,
        submitted_at, started_at, last_polled_at, next_poll_at, workflow_checked_at,
        poll_failures, poll_kind_failures, poll_failing_since, last_poll_error,
        last_poll_error_kind, submitted_by)
    SELECT gen_random_uuid(),
           CASE WHEN h %% 10 < 6 THEN 'scale-etl' WHEN h %% 10 < 9 THEN 'scale-train'
                ELSE 'scale-report' END,
           'BATCH', CASE WHEN h %% 2 = 0 THEN 'SUBMITTED' ELSE 'RUNNING' END,
           's3://scale/in/a' || h || '/', 's3://scale/out/a' || h || '/', '{}',
           'scale', 'wf-a' || h, 'job-a' || h, created, now() - interval '5 seconds',
           created + interval '2 seconds',
           CASE WHEN h %% 2 = 1 THEN created + interval '20 seconds' END,
           now() - interval '5 seconds', now() - (h %% 100) * interval '10 milliseconds',
           now() - (h %% 600) * interval '1 second',
           CASE WHEN kind IS NULL THEN 0 ELSE h %% 13 + 1 END,
           CASE WHEN kind IS NULL THEN 0 ELSE h %% 13 + 1 END,
           CASE WHEN kind IS NOT NULL THEN now() - (h %% 13 + 1) * interval '10 minutes' END,
           CASE WHEN kind IS NOT NULL THEN 'Workbench answered ' || kind END, kind, 'default'
    FROM src
    RETURNING id, status, workbench_job_id, created_at, submitted_at, started_at
)
INSERT INTO pipeline_run_events (run_id, at, source, actor, previous_status, status, message)
SELECT r.id, e.at, e.source, e.source, e.previous_status, e.status, e.message
FROM runs r CROSS JOIN LATERAL (VALUES
    (r.created_at, 'gateway', NULL, 'PENDING', 'Run accepted'),
    (r.submitted_at, 'persist', 'PENDING', 'SUBMITTED', 'Workbench job submitted'),
    (r.started_at, 'poller', 'SUBMITTED', 'RUNNING', 'Workbench job is running')
) AS e(at, source, previous_status, status, message)
WHERE e.at IS NOT NULL
"""

PENDING_RUNS = """
WITH runs AS (
    INSERT INTO pipeline_runs (id, pipeline, mode, status, input_path_prefix, output_path_prefix,
                               request_fingerprint, created_at, updated_at, submitted_by)
    SELECT gen_random_uuid(), 'scale-etl', 'BATCH', 'PENDING', 's3://scale/in/p' || h || '/',
           's3://scale/out/p' || h || '/', 'scale', now() - h * interval '1 minute',
           now() - h * interval '1 minute', 'default'
    FROM generate_series(1, %(count)s) h
    RETURNING id, created_at
)
INSERT INTO pipeline_run_events (run_id, at, source, actor, status, message)
SELECT id, created_at, 'gateway', 'default', 'PENDING', 'Run accepted' FROM runs
"""


@dataclass(frozen=True)
class Shape:
    """How many runs one scale database holds."""

    name: str
    terminal: int
    active: int
    unsynced: int = UNSYNCED

    @property
    def total(self) -> int:
        return self.terminal + self.active + STUCK_PENDING


def shapes(quick: bool) -> tuple[Shape, Shape]:
    """The big database and its 10,000-run baseline (a tenth of its runs active)."""
    big = Shape(BIG_DB, 200_000 if quick else 2_000_000, 10_000)
    small = Shape(SMALL_DB, 10_000 - 1_000 - STUCK_PENDING, 1_000)
    return big, small


def fingerprint(shape: Shape) -> str:
    """What a loaded database holds: its shape and the loader's SQL (reuse only the same)."""
    text = repr((shape, FAILING, STUCK_PENDING, TERMINAL_RUNS, ACTIVE_RUNS, PENDING_RUNS))
    return "bench scale " + hashlib.sha256(text.encode()).hexdigest()[:16]


def _loaded(url: str) -> str | None:
    """The fingerprint the database was loaded with, or None."""
    try:
        conn = psycopg2.connect(url)
    except psycopg2.OperationalError:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
                " WHERE datname = current_database()"
            )
            return cur.fetchone()[0]
    finally:
        conn.close()


def prepare(env: dict[str, str], shape: Shape, reuse: bool) -> str:
    """The database of `shape`, migrated and loaded (reused when `reuse` and its count
    matches: new migrations are applied to it); returns its URL for the service's role."""
    url = common.with_db(env["DATABASE_URL"], shape.name)
    if reuse and _loaded(url) == fingerprint(shape):
        try:
            migrate.apply(url)
        except migrate.MigrationError as exc:
            log(f"  reloading {shape.name}: {exc}")
        else:
            log(f"  reusing {shape.name} ({shape.total:,} runs)")
            return url
    admin = common.admin_connect(env)
    try:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {shape.name} WITH (FORCE)")
            cur.execute(f"CREATE DATABASE {shape.name} OWNER pipelines")
    finally:
        admin.close()
    migrate.apply(url)
    _load(env, shape)
    return url


def _load(env: dict[str, str], shape: Shape) -> None:
    started = time.monotonic()
    conn = common.admin_connect(env, shape.name)
    try:
        with conn.cursor() as cur:
            cur.execute("SET session_replication_role = replica")
            cur.execute(PIPELINE_ROWS, {"names": list(PIPELINES)})
            for first in range(1, shape.terminal + 1, CHUNK):
                last = min(first + CHUNK - 1, shape.terminal)
                cur.execute(
                    TERMINAL_RUNS,
                    {
                        "first": first,
                        "last": last,
                        "total": shape.terminal,
                        "unsynced": shape.unsynced,
                    },
                )
                log(f"  {shape.name}: {last:,} ended runs ({time.monotonic() - started:.0f} s)")
            # The few open runs go in with every trigger, as in service: the poll schedule
            # (migration 0015) is filled by its own trigger.
            cur.execute("SET session_replication_role = DEFAULT")
            cur.execute(ACTIVE_RUNS, {"count": shape.active, "failing": FAILING})
            cur.execute(PENDING_RUNS, {"count": STUCK_PENDING})
            # What autovacuum would have done by the time a table holds this history.
            cur.execute("VACUUM ANALYZE pipeline_runs")
            cur.execute("VACUUM ANALYZE pipeline_run_events")
            cur.execute("VACUUM ANALYZE pipeline_run_polls")
            cur.execute(f"COMMENT ON DATABASE {shape.name} IS %s", (fingerprint(shape),))
    finally:
        conn.close()
    log(f"  {shape.name}: {shape.total:,} runs loaded in {time.monotonic() - started:.0f} s")


def drop(env: dict[str, str]) -> None:
    admin = common.admin_connect(env)
    try:
        with admin.cursor() as cur:
            for name in (BIG_DB, SMALL_DB):
                cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_load", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--drop", action="store_true", help="drop both databases and stop")
    args = parser.parse_args(argv)
    env = common.stack_env()
    if args.drop:
        drop(env)
        return 0
    quick = args.quick or os.environ.get("BENCH_QUICK") not in (None, "", "0")
    for shape in shapes(quick):
        prepare(env, shape, reuse=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
