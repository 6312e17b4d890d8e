"""Latencies through the running stack: POST to SUBMITTED against a no-op workflow, and how
long after a job finishes the poller records it.

Runs go through the stack's own gateway, submission workers, poller and simulator (the
`demo-batch` pipeline, s3:// prefixes so nothing is written). The baseline is a no-op
workflow on the same Conductor, its task polled by conductor-python with the project's
worker settings (bench/noop_worker.py); a two-task no-op workflow shows what each extra
task hop costs, since batch_pipeline_run reaches SUBMITTED after two tasks
(submit_to_workbench, then persist_run). Launches are interleaved (run, no-op, two-task
no-op, ...) at a low steady rate so that all three see the same machine.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2
import psycopg2.extras
import requests

from .common import PY, log, start_child
from .loadgen import percentile

NOOP_TASKS = ("bench_noop_task", "bench_noop_task_b")  # as in bench/noop_worker.py
NOOP, NOOP2 = "bench_noop", "bench_noop2"


def register(conductor: str) -> None:
    requests.post(
        f"{conductor}/metadata/taskdefs",
        json=[
            {
                "name": name,
                "description": "benchmark: does nothing",
                "retryCount": 0,
                "timeoutSeconds": 300,
                "responseTimeoutSeconds": 60,
            }
            for name in NOOP_TASKS
        ],
        timeout=30,
    ).raise_for_status()

    def workflow(name: str, tasks: tuple[str, ...]) -> dict:
        return {
            "name": name,
            "version": 1,
            "schemaVersion": 2,
            "description": f"benchmark: {len(tasks)} no-op task(s)",
            "tasks": [
                {"name": task, "taskReferenceName": f"noop{i}", "type": "SIMPLE"}
                for i, task in enumerate(tasks)
            ],
        }

    requests.put(
        f"{conductor}/metadata/workflow",
        json=[workflow(NOOP, NOOP_TASKS[:1]), workflow(NOOP2, NOOP_TASKS)],
        timeout=30,
    ).raise_for_status()


def poll_interval(conductor: str, default: int = 5) -> int:
    """POLL_INTERVAL_SECONDS of the running poller loop, read from its workflow's input."""
    try:
        loops = requests.get(
            f"{conductor}/workflow/batch_status_poller/correlated/batch-status-poller",
            params={"includeClosed": "false", "includeTasks": "false"},
            timeout=10,
        ).json()
        return int(loops[0]["input"]["poll_interval_seconds"])
    except (requests.RequestException, ValueError, KeyError, IndexError, TypeError):
        return default


def _start(conductor: str, name: str) -> str:
    resp = requests.post(
        f"{conductor}/workflow",
        json={"name": name, "version": 1, "input": {}},
        timeout=30,
    )
    resp.raise_for_status()
    return resp.text.strip().strip('"')


def _workflow_end(conductor: str, workflow_id: str) -> float | None:
    wf = requests.get(
        f"{conductor}/workflow/{workflow_id}", params={"includeTasks": "false"}, timeout=10
    ).json()
    return wf["endTime"] / 1000 if wf.get("status") == "COMPLETED" else None


def run(env: dict[str, str], log_dir: Path, samples: int, gap: float) -> dict:
    conductor = env["CONDUCTOR_SERVER_URL"]
    register(conductor)
    interval = poll_interval(conductor)
    worker = start_child(
        "noop-worker",
        [PY, "-m", "bench.noop_worker"],
        {"CONDUCTOR_SERVER_URL": conductor, "PYTHONUNBUFFERED": "1"},
        log_dir,
    )
    try:
        # Warm up: the worker is polling once a no-op workflow completes.
        deadline = time.monotonic() + 60
        warm = _start(conductor, NOOP)
        while _workflow_end(conductor, warm) is None:
            if time.monotonic() > deadline:
                raise SystemExit(f"the no-op worker did not run:\n{worker.tail()}")
            time.sleep(0.2)
        return _measure(env, conductor, interval, samples, gap)
    finally:
        worker.stop()


def _measure(env: dict[str, str], conductor: str, interval: int, samples: int, gap: float) -> dict:
    session = requests.Session()
    auth = {"Authorization": f"Bearer {env['GATEWAY_API_TOKEN']}"}
    lock = threading.Lock()
    launched: dict[str, list[tuple[str, float]]] = {"run": [], NOOP: [], NOOP2: []}
    rng = random.Random(5)

    def post_run() -> None:
        key = uuid.uuid4().hex
        body = {
            "pipeline": "demo-batch",
            "mode": "BATCH",
            "input_path_prefix": f"s3://bench/latency/{key}/in/",
            "output_path_prefix": f"s3://bench/latency/{key}/out/",
            # Jobs end at every phase of the poller's cycle.
            "parameters": {
                "simulate": {
                    "queue_seconds": 0,
                    "duration_seconds": round(rng.uniform(2, 2 + 2 * interval), 3),
                }
            },
        }
        sent = time.time()
        resp = session.post(
            f"{env['GATEWAY_URL']}/api/v1/pipeline-runs", json=body, headers=auth, timeout=60
        )
        resp.raise_for_status()
        with lock:
            launched["run"].append((resp.json()["id"], sent))

    def start_noop(name: str) -> None:
        sent = time.time()
        workflow_id = _start(conductor, name)
        with lock:
            launched[name].append((workflow_id, sent))

    kinds = [post_run, lambda: start_noop(NOOP), lambda: start_noop(NOOP2)]
    log(f"  {samples} of each, one launch every {gap:.2f}s (poll interval {interval}s)")
    with ThreadPoolExecutor(8) as pool:
        start = time.monotonic()
        futures = []
        for i in range(samples * len(kinds)):
            delay = start + i * gap - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(kinds[i % len(kinds)]))
        for f in futures:
            f.result()

    ends = _await_noops(conductor, launched)
    runs = _await_runs(env["DATABASE_URL"], [rid for rid, _ in launched["run"]], interval)
    sent_at = dict(launched["run"])
    submit = [runs[rid]["submitted_at"].timestamp() - sent_at[rid] for rid in runs]
    detect = [
        (runs[rid]["detected_at"] - runs[rid]["completed_at"]).total_seconds() for rid in runs
    ]
    noop = [ends[wid] - sent for wid, sent in launched[NOOP]]
    noop2 = [ends[wid] - sent for wid, sent in launched[NOOP2]]
    p95 = {
        "submit": percentile(submit, 95),
        "noop": percentile(noop, 95),
        "noop2": percentile(noop2, 95),
        "detect": percentile(detect, 95),
    }
    return {
        "submit_p95_vs_noop_workflow_ratio": p95["submit"] / p95["noop"],
        "submit_p95_s": p95["submit"],
        "submit_p50_s": percentile(submit, 50),
        "noop_workflow_p95_s": p95["noop"],
        "noop_workflow_p50_s": percentile(noop, 50),
        "noop2_workflow_p95_s": p95["noop2"],
        "submit_p95_vs_noop2_workflow_ratio": p95["submit"] / p95["noop2"],
        "detection_p95_minus_interval_s": p95["detect"] - interval,
        "detection_p95_s": p95["detect"],
        "detection_p50_s": percentile(detect, 50),
        "detection_max_s": max(detect),
        "poll_interval_seconds": interval,
        "latency_samples": len(submit),
    }


def _await_noops(conductor: str, launched: dict) -> dict[str, float]:
    ends: dict[str, float] = {}
    pending = [wid for name in (NOOP, NOOP2) for wid, _ in launched[name]]
    deadline = time.monotonic() + 120
    while True:
        for wid in pending:
            end = _workflow_end(conductor, wid)
            if end is not None:
                ends[wid] = end
        pending = [wid for wid in pending if wid not in ends]
        if not pending:
            return ends
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(pending)} no-op workflows did not complete within 120s")
        time.sleep(0.5)


def _await_runs(database_url: str, run_ids: list[str], interval: int) -> dict[str, dict]:
    """Each run's submitted_at, its job's end (completed_at) and when the poller saw it."""
    deadline = time.monotonic() + 60 + 4 * interval
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        while True:
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(
                    """
                    SELECT r.id::text AS id, r.status, r.submitted_at, r.completed_at,
                           (SELECT min(e.at) FROM pipeline_run_events e
                             WHERE e.run_id = r.id AND e.status IN ('COMPLETED', 'FAILED'))
                               AS detected_at
                    FROM pipeline_runs r WHERE r.id = ANY(%s::uuid[])
                    """,
                    (run_ids,),
                )
                rows = {row["id"]: row for row in cur.fetchall()}
            done = [r for r in rows.values() if r["detected_at"] is not None]
            if len(done) == len(run_ids):
                failed = [r["id"] for r in done if r["status"] != "COMPLETED"]
                if failed:
                    raise SystemExit(f"benchmark runs did not complete: {failed[:5]}")
                return rows
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"{len(run_ids) - len(done)} of {len(run_ids)} benchmark runs did not "
                    "end in time; is the stack's poller running? (make status)"
                )
            time.sleep(0.5)
    finally:
        conn.close()
