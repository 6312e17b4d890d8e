"""The database at millions of runs: the store's own queries on a big database against the
same on a 10,000-run one, alternated, and what a poll writes and a sweep holds.

Figures (issue 14, point 2): `scale_runs`; `list_p95_scale_ratio` (the worst list variant),
`get_run_p95_scale_ratio`, `claim_scale_ratio`, `reconcile_scale_ratio` (the worst reconciler
query), each a p95 on the big database over the p95 on the small one; `wal_bytes_per_poll`;
`poller_rss_scale_ratio` (a sweep's peak resident set over 100,000 active runs vs 10,000).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2
import psycopg2.extras

from batchcore.db import Database
from batchcore.queries import Q
from batchcore.runs.model import PollOutcome
from batchcore.runs.paging import encode_cursor
from batchcore.runs.rows import LIFECYCLE_SETS as LIFECYCLE
from batchcore.runs.store import RunStore
from batchcore.workbench_errors import KIND_MALFORMED, KIND_UNAUTHORIZED

from . import common, scale_load, sweeps
from . import sim as simulator
from .common import log

LIST_LIMIT = 50  # the API's default page
CLAIM_BATCH = 200  # POLL_BATCH_SIZE's default
RECONCILE = {"pending": 600, "every": 300, "lost_after": 10, "limit": 50, "give_up": 3600}
GIVE_UP_KINDS = ["unknown_status", KIND_MALFORMED, KIND_UNAUTHORIZED]
WARMUP_ROUNDS = 3


@dataclass
class Side:
    """One scale database, its store and what the probes need from it."""

    name: str
    url: str
    store: RunStore
    conn: psycopg2.extensions.connection
    run_ids: list[str]
    cursors: dict[str, str]

    def close(self) -> None:
        self.conn.close()
        self.store.db.close()


def _open(name: str, url: str) -> Side:
    conn = psycopg2.connect(url, cursor_factory=psycopg2.extras.RealDictCursor)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM pipeline_runs")
        total = cur.fetchone()["n"]
        cur.execute(
            "SELECT id FROM pipeline_runs WHERE random() < %s LIMIT 400", (400 * 2 / total,)
        )
        run_ids = [str(r["id"]) for r in cur.fetchall()]
        cursors = {}
        # A page far down the listing: 90 % of the way to the oldest run (of that status), or
        # less where a whole page would not remain after it (the small database has about 250
        # failures): a part page against a whole one would measure the page's size.
        for key, where in (("all", "true"), ("failed", "status = 'FAILED'")):
            cur.execute(f"SELECT count(*) AS n FROM pipeline_runs WHERE {where}")
            count = cur.fetchone()["n"]
            depth = max(0, min(int(count * 0.9), count - LIST_LIMIT - 2))
            cur.execute(
                f"SELECT created_at, id FROM pipeline_runs WHERE {where} "
                "ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1",
                (depth,),
            )
            row = cur.fetchone()
            cursors[key] = encode_cursor(row["created_at"], row["id"])
    return Side(name, url, RunStore(Database(url, maxconn=2)), conn, run_ids, cursors)


def _probes() -> dict[str, tuple[str, Callable[[Side, int], object]]]:
    """name -> (group, one call on a side); each is the store's own query."""

    def listing(statuses, pipeline=None, cursor=None):
        return lambda s, i: s.store.list_runs(
            statuses, pipeline, LIST_LIMIT, s.cursors[cursor] if cursor else None
        )

    def query(name, params):
        def run(s: Side, i: int):
            with s.conn.cursor() as cur:
                cur.execute(Q[name], params)
                return cur.fetchall()

        return run

    def claim(s: Side, i: int):
        # The claim as the poller runs it, rolled back: every sample claims the same runs.
        with s.conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(
                Q["claim_due_runs"],
                {"batch_size": CLAIM_BATCH, "lease_seconds": 60, "lease_token": str(uuid.uuid4())},
            )
            rows = cur.fetchall()
            cur.execute("ROLLBACK")
            return rows

    r = RECONCILE
    return {
        "list_newest": ("list", listing(())),
        "list_failed": ("list", listing(("FAILED",))),
        "list_completed_pipeline": ("list", listing(("COMPLETED",), "scale-report")),
        "list_deep": ("list", listing((), cursor="all")),
        "list_failed_deep": ("list", listing(("FAILED",), cursor="failed")),
        "get_run": (
            "get_run",
            lambda s, i: s.store.get_run_with_history(s.run_ids[i % len(s.run_ids)]),
        ),
        "claim_due_runs": ("claim", claim),
        "stuck_pending_runs": (
            "reconcile",
            query("stuck_pending_runs", {"older_than": r["pending"], "limit": r["limit"]}),
        ),
        "active_runs_to_check": (
            "reconcile",
            query("active_runs_to_check", {"every": r["every"], "limit": r["limit"]}),
        ),
        "runs_lost_on_workbench": (
            "reconcile",
            query("runs_lost_on_workbench", {"min_failures": r["lost_after"], "limit": r["limit"]}),
        ),
        "runs_to_give_up": (
            "reconcile",
            query(
                "runs_to_give_up",
                {"give_up": r["give_up"], "kinds": GIVE_UP_KINDS, "limit": r["limit"]},
            ),
        ),
        "ended_runs_to_finish": (
            "reconcile",
            query(
                "ended_runs_to_finish",
                {**LIFECYCLE, "older_than": 60, "every": r["every"], "limit": r["limit"]},
            ),
        ),
        "unsynced_terminal_runs": (
            "sync",
            query("unsynced_terminal_runs", {**LIFECYCLE, "limit": 200}),
        ),
    }


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def measure(big: Side, small: Side, rounds: int) -> dict:
    """Each probe on both sides, alternating which goes first; p95s in ms and their ratios."""
    probes = _probes()
    samples = {(name, side): [] for name in probes for side in ("big", "small")}
    for r in range(rounds + WARMUP_ROUNDS):
        order = ((big, "big"), (small, "small")) if r % 2 == 0 else ((small, "small"), (big, "big"))
        for name, (_, call) in probes.items():
            for side, key in order:
                started = time.perf_counter()
                call(side, r)
                if r >= WARMUP_ROUNDS:
                    samples[(name, key)].append((time.perf_counter() - started) * 1000)
    out: dict = {}
    worst: dict[str, tuple[float, str]] = {}
    for name, (group, _) in probes.items():
        b, s = p95(samples[(name, "big")]), p95(samples[(name, "small")])
        out[f"scale_{name}_p95_ms"] = round(b, 2)
        out[f"scale_{name}_p95_ms_small"] = round(s, 2)
        out[f"scale_{name}_ratio"] = round(b / s, 2)
        log(f"  {name:24} p95 {b:8.2f} ms vs {s:6.2f} ms: x{b / s:.2f}")
        if b / s > worst.get(group, (0.0, ""))[0]:
            worst[group] = (b / s, name)
    for group, figure in (
        ("list", "list_p95_scale_ratio"),
        ("get_run", "get_run_p95_scale_ratio"),
        ("claim", "claim_scale_ratio"),
        ("reconcile", "reconcile_scale_ratio"),
    ):
        out[figure] = round(worst[group][0], 2)
        out[f"{figure}_worst"] = worst[group][1]
    out["scale_samples_per_probe"] = rounds
    return out


def _poll_unchanged(store: RunStore) -> int:
    """One claim and the write-back of its runs as unchanged (the common poll); how many.
    Runs in a failure streak keep it (their lease lapses): a reused database still has the
    reconciler's lost and given-up runs."""
    claimed = store.claim_due_runs(CLAIM_BATCH, 60)
    outcomes = [
        PollOutcome(str(run.id), run.status, lease_token=run.poll_lease_token)
        for run in claimed
        if not run.poll_failures
    ]
    # Interval 0: the runs fall due again at once, so the batches cycle through all of them.
    store.apply_poll_results(outcomes, 0)
    return len(outcomes)


def wal_per_poll(side: Side, env: dict[str, str], active: int, batches: int) -> dict:
    """WAL written by the poller's write-back of runs that did not change (the common poll):
    from pg_walinspect, only this database's records, full-page images apart (those come once
    per page per checkpoint); the raw LSN distance beside it includes other tenants' WAL.
    Every active run is polled once first: the steady state, not the first update of rows
    the bulk load packed into full pages."""
    for _ in range(active // CLAIM_BATCH + 1):
        _poll_unchanged(side.store)
    admin = common.admin_connect(env, side.name)
    polled = record = fpi = raw = claim_record = claimed_runs = hot = index_entries = 0
    try:
        with admin.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
            cur.execute("SELECT oid FROM pg_database WHERE datname = current_database()")
            db_oid = cur.fetchone()[0]
            for _ in range(batches):
                cur.execute("SELECT pg_current_wal_insert_lsn()")
                before_claim = cur.fetchone()[0]
                claimed = side.store.claim_due_runs(CLAIM_BATCH, 60)
                cur.execute(
                    "SELECT coalesce(sum(record_length - fpi_length), 0)"
                    " FROM pg_get_wal_records_info(%s, pg_current_wal_flush_lsn())"
                    " WHERE block_ref LIKE %s",
                    (before_claim, f"%/{db_oid}/%"),
                )
                claim_record += int(cur.fetchone()[0])
                outcomes = [
                    PollOutcome(str(run.id), run.status, lease_token=run.poll_lease_token)
                    for run in claimed
                    if not run.poll_failures
                ]
                cur.execute("SELECT pg_current_wal_insert_lsn()")
                start = cur.fetchone()[0]
                side.store.apply_poll_results(outcomes, 0)
                # Its commit was flushed, and with it every record the write-back made.
                cur.execute("SELECT pg_current_wal_flush_lsn()")
                end = cur.fetchone()[0]
                cur.execute(
                    "SELECT coalesce(sum(record_length - fpi_length), 0),"
                    " coalesce(sum(fpi_length), 0), pg_wal_lsn_diff(%s, %s),"
                    " count(*) FILTER (WHERE record_type = 'HOT_UPDATE'),"
                    " count(*) FILTER (WHERE resource_manager = 'Btree')"
                    " FROM pg_get_wal_records_info(%s, %s)"
                    " WHERE block_ref LIKE %s",
                    (end, start, start, end, f"%/{db_oid}/%"),
                )
                rec, img, dist, hot_updates, index_records = cur.fetchone()
                hot += hot_updates
                index_entries += index_records
                polled += len(outcomes)
                claimed_runs += len(claimed)
                record, fpi, raw = record + int(rec), fpi + int(img), raw + int(dist)
    finally:
        admin.close()
    return {
        "wal_bytes_per_poll": round(record / polled, 1),
        "wal_fpi_bytes_per_poll": round(fpi / polled, 1),
        "wal_lsn_bytes_per_poll": round(raw / polled, 1),
        "wal_polls": polled,
        "wal_hot_update_share": round(hot / polled, 3),
        "wal_index_records_per_poll": round(index_entries / polled, 2),
        "wal_bytes_per_claimed_run": round(claim_record / claimed_runs, 1),
    }


def poller_rss(env: dict[str, str], sim, database_url: str, counts: tuple[int, int]) -> dict:
    """A sweep's peak resident set over `counts[1]` active runs against `counts[0]`."""
    small_n, big_n = counts
    log(f"  creating {big_n:,} Workbench jobs for the sweeps")
    jobs = simulator.create_jobs(sim, big_n)
    conductor = env["CONDUCTOR_SERVER_URL"]
    peaks: dict[int, float] = {}
    seconds: dict[int, float] = {}
    for n in (small_n, big_n):
        seed = sweeps.Seed(database_url, jobs[:n])
        seed.reset()
        [res] = sweeps.run_pollers("sweep", 1, sweeps._env(seed, sim, conductor))
        if res["checked"] != n:
            raise SystemExit(f"the sweep checked {res['checked']} of {n} runs")
        peaks[n], seconds[n] = res["peak_rss_mb"], res["seconds"]
        log(f"  sweep of {n:,} runs: {res['seconds']:.1f} s, peak RSS {res['peak_rss_mb']:.1f} MiB")
    return {
        "poller_rss_scale_ratio": round(peaks[big_n] / peaks[small_n], 3),
        "poller_rss_mb_scale_big": round(peaks[big_n], 1),
        "poller_rss_mb_scale_small": round(peaks[small_n], 1),
        "poller_rss_scale_runs_big": big_n,
        "poller_rss_scale_runs_small": small_n,
        "poller_rss_scale_sweep_seconds_big": round(seconds[big_n], 1),
        "poller_rss_scale_sweep_seconds_small": round(seconds[small_n], 1),
    }


def run(env: dict[str, str], sim, database_url: str, quick: bool) -> dict:
    """The whole scale phase; the scale databases are dropped after it unless
    BENCH_SCALE_KEEP=1 (then a later run reuses them)."""
    keep = os.environ.get("BENCH_SCALE_KEEP") not in (None, "", "0")
    big_shape, small_shape = scale_load.shapes(quick)
    log(f"scale databases: {big_shape.total:,} runs and {small_shape.total:,}")
    big_url = scale_load.prepare(env, big_shape, reuse=keep)
    small_url = scale_load.prepare(env, small_shape, reuse=keep)
    big, small = _open(big_shape.name, big_url), _open(small_shape.name, small_url)
    try:
        results = {
            "scale_runs": big_shape.total,
            "scale_runs_small": small_shape.total,
            "scale_active_runs": big_shape.active,
            "scale_active_runs_small": small_shape.active,
        }
        results |= measure(big, small, 60 if quick else 400)
        results |= wal_per_poll(big, env, big_shape.active, 10 if quick else 25)
    finally:
        big.close()
        small.close()
        if not keep:
            scale_load.drop(env)
    results |= poller_rss(env, sim, database_url, (2_000, 20_000) if quick else (10_000, 100_000))
    return results
