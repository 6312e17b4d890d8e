"""One poller process for the sweep benchmarks: `python -m bench.sweeper sweep|bare`.

It reads the service's variables (DATABASE_URL, WORKBENCH_API_URL, WORKBENCH_API_TOKEN,
CONDUCTOR_SERVER_URL, POLL_*), gets ready (imports, one database connection), prints
"ready", waits for a line on stdin, runs once, and prints one JSON line with what it did,
how long it took, its database round trips, its CPU time and its peak memory.

- `sweep`: conductor_workers.polling.sweep with the poll_status worker's own resources
  (settings, pool, Workbench client, thread pool), as a poller process runs it.
- `bare`: the baseline, the same claims, status GETs and updates written plainly with
  psycopg2 and requests, without the service's classes, retries, metrics or audit rules.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from bench import roundtrips

COUNTER = roundtrips.install()

# The bare loop's idea of the status mapping and of the update.
RUN_STATUS = {
    "QUEUED": "SUBMITTED",
    "RUNNING": "RUNNING",
    "SUCCEEDED": "COMPLETED",
    "FAILED": "FAILED",
    "CANCELLED": "FAILED",
}
BARE_UPDATE = """
UPDATE pipeline_runs r SET
    status = v.status,
    started_at = CASE WHEN v.status <> 'SUBMITTED' THEN COALESCE(r.started_at, now())
                      ELSE r.started_at END,
    completed_at = CASE WHEN v.status IN ('COMPLETED', 'FAILED') THEN now() END,
    error_message = CASE WHEN v.status = 'FAILED' THEN 'The Workbench job failed' END,
    last_polled_at = now(),
    next_poll_at = CASE WHEN v.status IN ('COMPLETED', 'FAILED') THEN NULL
                        ELSE now() + %(interval)s * interval '1 second' END,
    poll_failures = 0,
    poll_lease_until = NULL
FROM (VALUES %%s) AS v(id, status)
WHERE r.id = v.id::uuid
"""
BARE_EVENTS = (
    "INSERT INTO pipeline_run_events (run_id, source, previous_status, status, message) VALUES %s"
)


def _prepare_sweep():
    from conductor_workers import polling, resources
    from conductor_workers.tasks import poll as poll_tasks

    resources.database().ping()
    store = resources.store()
    workbench, conductor = resources.workbench(), resources.conductor()
    # The worker's own settings, but time to sweep every due run once even on a slow,
    # shared machine: the service's budget would stop a sweep early and leave the rest to
    # the next one, and the figure is the time one sweep of all of them takes.
    cfg = dataclasses.replace(poll_tasks._sweep_config(), time_budget_seconds=600)

    def run() -> dict:
        summary = polling.sweep(store, workbench, conductor, cfg)
        return {"checked": summary["checked"], "changed": summary["changed"]}

    return run


def _prepare_bare():
    import psycopg2
    import psycopg2.extras
    import requests
    from requests.adapters import HTTPAdapter

    from batchcore.queries import Q

    batch = int(os.environ.get("POLL_BATCH_SIZE", "200"))
    concurrency = int(os.environ.get("POLL_CONCURRENCY", "16"))
    interval = int(os.environ.get("POLL_INTERVAL_SECONDS", "5"))
    lease = int(os.environ.get("POLL_LEASE_SECONDS", "60"))
    base = os.environ["WORKBENCH_API_URL"].rstrip("/")
    headers = {"Authorization": f"Bearer {os.environ['WORKBENCH_API_TOKEN']}"}
    conn = psycopg2.connect(
        os.environ["DATABASE_URL"], connection_factory=roundtrips.CountingConnection
    )
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=concurrency))
    pool = ThreadPoolExecutor(concurrency)
    update = BARE_UPDATE.replace("%(interval)s", str(interval)).replace("%%s", "%s")

    def status(job_id: str) -> str:
        return session.get(f"{base}/jobs/{job_id}", headers=headers, timeout=(3, 10)).json()[
            "status"
        ]

    def run() -> dict:
        checked = changed = 0
        while True:
            cur = conn.cursor()
            cur.execute(
                Q["claim_due_runs"],
                {"batch_size": batch, "lease_seconds": lease, "lease_token": str(uuid.uuid4())},
            )
            claimed = cur.fetchall()
            conn.commit()
            if not claimed:
                break
            found = list(pool.map(status, [row[2] for row in claimed]))
            rows = [(str(row[0]), RUN_STATUS[s]) for row, s in zip(claimed, found, strict=True)]
            moved = [
                (str(row[0]), "poller", row[1], new, f"Workbench job is {s}")
                for row, s, (_, new) in zip(claimed, found, rows, strict=True)
                if new != row[1]
            ]
            psycopg2.extras.execute_values(cur, update, rows, page_size=len(rows))
            if moved:
                psycopg2.extras.execute_values(cur, BARE_EVENTS, moved, page_size=len(moved))
            conn.commit()
            checked += len(claimed)
            changed += len(moved)
            if len(claimed) < batch:
                break
        return {"checked": checked, "changed": changed}

    return run


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MiB. Not ru_maxrss: Linux carries that
    across fork and exec, so a poller started by a big benchmark process reported its size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    mode = sys.argv[1]
    run = _prepare_sweep() if mode == "sweep" else _prepare_bare()
    before = dict(COUNTER.counts)
    print("ready", flush=True)
    if not sys.stdin.readline():
        return 1
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    started_wall, started = time.time(), time.perf_counter()
    outcome = run()
    seconds = time.perf_counter() - started
    ended_wall = time.time()
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    counts = {k: v - before[k] for k, v in COUNTER.counts.items()}
    print(
        json.dumps(
            {
                "mode": mode,
                **outcome,
                "seconds": seconds,
                "started": started_wall,
                "ended": ended_wall,
                "round_trips": sum(v for k, v in counts.items() if k != "connect"),
                "round_trip_kinds": counts,
                "cpu_seconds": (usage1.ru_utime + usage1.ru_stime)
                - (usage0.ru_utime + usage0.ru_stime),
                "peak_rss_mb": peak_rss_mb(),
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
