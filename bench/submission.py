"""Submission through the stack against no-op workflows: POST to SUBMITTED at a low rate
(`submit_latency`) and a 1,000-run burst (`burst`).

A run reaches SUBMITTED after two tasks of two types (submit_to_workbench, then persist_run),
each waiting for its runner's next poll, so the baseline is the structurally equal two-task
no-op workflow (bench/noop_worker.py), polled with the running submission service's worker
settings (read from its process), on the same Conductor; the one-task one is shown beside it.
"""

from __future__ import annotations

import functools
import os
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2
import requests

from batchcore import settings as settings_mod

from . import latency
from .common import (
    PY,
    Child,
    log,
    start_child,
)
from .gateway import _supervised_pid
from .latency import NOOP, NOOP2
from .loadgen import percentile

WORKER_VARS = (
    "SUBMIT_WORKER_THREADS",
    "SUBMIT_WORKER_POLL_INTERVAL_MS",
    "SUBMIT_WORKER_POLL_TIMEOUT_MS",
)
# The two-task no-op again, its runners held by Conductor as the SDK asks (100 ms): what the
# poll timeout setting changes, side by side.
NOOP2_SDK, NOOP2_SDK_TASKS = "bench_noop2_sdk_hold", ("bench_noop_task_c", "bench_noop_task_d")
SDK_POLL_TIMEOUT_MS = 100
CPU_GROUPS = ("conductor", "postgres", "gateway", "submit-workers", "workbench", "poller")


def worker_settings() -> dict[str, str]:
    """The submission service's poll settings, as its running process has them."""
    found: dict[str, str] = {}
    pid = _supervised_pid("submit-workers")
    if pid:
        try:
            raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            raw = []
        for item in raw:
            name, _, value = item.decode(errors="replace").partition("=")
            if name in WORKER_VARS and value:
                found[name] = value
    # A variable the service does not set has its default there, unless this process names
    # one (to measure a service started before these settings existed).
    return {
        name: found.get(name) or os.environ.get(name) or str(settings_mod.default(name))
        for name in WORKER_VARS
    }


def _register_sdk_hold(conductor: str) -> None:
    requests.post(
        f"{conductor}/metadata/taskdefs",
        json=[
            {"name": name, "retryCount": 0, "timeoutSeconds": 300, "responseTimeoutSeconds": 60}
            for name in NOOP2_SDK_TASKS
        ],
        timeout=30,
    ).raise_for_status()
    tasks = [
        {"name": name, "taskReferenceName": f"noop{i}", "type": "SIMPLE"}
        for i, name in enumerate(NOOP2_SDK_TASKS)
    ]
    requests.put(
        f"{conductor}/metadata/workflow",
        json=[{"name": NOOP2_SDK, "version": 1, "schemaVersion": 2, "tasks": tasks}],
        timeout=30,
    ).raise_for_status()


def start_noop_worker(env: dict[str, str], log_dir: Path, sdk_hold: bool = False) -> Child:
    """The no-op worker, polling like the submission service (or, `sdk_hold`, with the poll
    timeout the SDK sends); returns once it has run a workflow."""
    conductor = env["CONDUCTOR_SERVER_URL"]
    latency.register(conductor)
    extra = {}
    if sdk_hold:
        _register_sdk_hold(conductor)
        extra = {
            "BENCH_NOOP_TASKS": ",".join(NOOP2_SDK_TASKS),
            "SUBMIT_WORKER_POLL_TIMEOUT_MS": str(SDK_POLL_TIMEOUT_MS),
        }
    worker = start_child(
        "noop-worker-sdk-hold" if sdk_hold else "noop-worker",
        [PY, "-m", "bench.noop_worker"],
        {"CONDUCTOR_SERVER_URL": conductor, "PYTHONUNBUFFERED": "1", **worker_settings(), **extra},
        log_dir,
    )
    deadline = time.monotonic() + 60
    warm = latency._start(conductor, NOOP2_SDK if sdk_hold else NOOP2)
    while latency._workflow_end(conductor, warm) is None:
        if time.monotonic() > deadline:
            worker.stop()
            raise SystemExit(f"the no-op worker did not run:\n{worker.tail()}")
        time.sleep(0.2)
    return worker


def _run_body(rng: random.Random) -> dict:
    key = uuid.uuid4().hex
    return {
        "pipeline": "demo-batch",
        "mode": "BATCH",
        "input_path_prefix": f"s3://bench/submit/{key}/in/",
        "output_path_prefix": f"s3://bench/submit/{key}/out/",
        # Short jobs: the poller ends each run at its first look, so it loads the stack little.
        "parameters": {
            "simulate": {"queue_seconds": 0, "duration_seconds": round(rng.uniform(0.5, 1), 3)}
        },
    }


def _post(session: requests.Session, url: str, **kwargs) -> requests.Response:
    """POST, again on a connection the server dropped (a loaded server resets some)."""
    for attempt in range(3):
        try:
            resp = session.post(url, timeout=120, **kwargs)
            resp.raise_for_status()
            return resp
        except requests.ConnectionError:
            if attempt == 2:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def _start_workflow(session: requests.Session, conductor: str, name: str, tag: str) -> str:
    body = {"name": name, "version": 1, "input": {}, "correlationId": tag}
    return _post(session, f"{conductor}/workflow", json=body).text.strip().strip('"')


def _post_run(session: requests.Session, env: dict[str, str], body: dict) -> str:
    """The new run's id; its Idempotency-Key makes a repeated POST harmless."""
    headers = {
        "Authorization": f"Bearer {env['GATEWAY_API_TOKEN']}",
        "Idempotency-Key": body["input_path_prefix"],
    }
    url = f"{env['GATEWAY_URL']}/api/v1/pipeline-runs"
    return _post(session, url, json=body, headers=headers).json()["id"]


def _submitted_at(database_url: str, run_ids: list[str], timeout: float) -> dict[str, float]:
    """Each run's submitted_at (epoch seconds), once every run has one."""
    deadline = time.monotonic() + timeout
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        while True:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT id::text, extract(epoch FROM submitted_at)::float8 FROM pipeline_runs"
                    " WHERE id = ANY(%s::uuid[]) AND submitted_at IS NOT NULL",
                    (run_ids,),
                )
                rows = dict(cur.fetchall())
            if len(rows) == len(run_ids):
                return rows
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"{len(run_ids) - len(rows)} of {len(run_ids)} runs were not SUBMITTED "
                    f"within {timeout:.0f}s; are the submission workers running? (make status)"
                )
            time.sleep(1.0)
    finally:
        conn.close()


def _ended_at(conductor: str, name: str, tag: str, count: int, timeout: float) -> dict[str, float]:
    """Each end time (epoch seconds) of the `count` workflows correlated with `tag`."""
    deadline = time.monotonic() + timeout
    while True:
        flows = requests.get(
            f"{conductor}/workflow/{name}/correlated/{tag}",
            params={"includeClosed": "true", "includeTasks": "false"},
            timeout=60,
        ).json()
        done = {w["workflowId"]: w["endTime"] / 1000 for w in flows if w["status"] == "COMPLETED"}
        if len(done) >= count:
            return done
        if time.monotonic() > deadline:
            raise SystemExit(f"{count - len(done)} of {count} no-op workflows did not complete")
        time.sleep(1.0)


# ----------------------------------------------------------------- latency at a low rate


def submit_latency(env: dict[str, str], log_dir: Path, samples: int, gap: float) -> dict:
    """p95 of POST to SUBMITTED against the two-task (and the one-task) no-op workflow."""
    conductor = env["CONDUCTOR_SERVER_URL"]
    workers = [start_noop_worker(env, log_dir)]
    try:
        workers.append(start_noop_worker(env, log_dir, sdk_hold=True))
        launched = _launch_interleaved(env, samples, gap)
        tag_ends = {
            name: _ended_at(conductor, name, launched["tag"], samples, 120)
            for name in (NOOP, NOOP2, NOOP2_SDK)
        }
    finally:
        for worker in workers:
            worker.stop()
    runs = _submitted_at(env["DATABASE_URL"], [rid for rid, _ in launched["run"]], 120)
    submit = [runs[rid] - sent for rid, sent in launched["run"]]
    noop1 = [tag_ends[NOOP][wid] - sent for wid, sent in launched[NOOP]]
    noop2 = [tag_ends[NOOP2][wid] - sent for wid, sent in launched[NOOP2]]
    noop2_sdk = [tag_ends[NOOP2_SDK][wid] - sent for wid, sent in launched[NOOP2_SDK]]
    p95 = {k: percentile(v, 95) for k, v in (("run", submit), ("1", noop1), ("2", noop2))}
    return {
        "submit_p95_vs_noop_2task_ratio": p95["run"] / p95["2"],
        "submit_p95_vs_noop_1task_ratio": p95["run"] / p95["1"],
        "submit_latency_p95_s": p95["run"],
        "submit_latency_p50_s": percentile(submit, 50),
        "submit_noop_2task_p95_s": p95["2"],
        "submit_noop_2task_p50_s": percentile(noop2, 50),
        "submit_noop_1task_p95_s": p95["1"],
        "submit_noop_1task_p50_s": percentile(noop1, 50),
        "submit_noop_2task_sdk_hold_p95_s": percentile(noop2_sdk, 95),
        "submit_noop_2task_sdk_hold_p50_s": percentile(noop2_sdk, 50),
        "submit_latency_samples": len(submit),
        **{f"submit_worker_{k[14:].lower()}": int(v) for k, v in worker_settings().items()},
    }


def _launch_interleaved(env: dict[str, str], samples: int, gap: float) -> dict:
    conductor = env["CONDUCTOR_SERVER_URL"]
    tag = f"bench-submit-{uuid.uuid4().hex[:12]}"
    rng = random.Random(7)
    local = threading.local()
    lock = threading.Lock()
    launched: dict = {"tag": tag, "run": [], NOOP: [], NOOP2: [], NOOP2_SDK: []}

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session

    def post_run() -> None:
        body = _run_body(rng)
        sent = time.time()
        run_id = _post_run(session(), env, body)
        with lock:
            launched["run"].append((run_id, sent))

    def start_noop(name: str) -> None:
        sent = time.time()
        workflow_id = _start_workflow(session(), conductor, name, tag)
        with lock:
            launched[name].append((workflow_id, sent))

    kinds = [post_run, *(functools.partial(start_noop, name) for name in (NOOP, NOOP2, NOOP2_SDK))]
    log(f"  {samples} of each, one launch every {gap:.2f}s, workers {worker_settings()}")
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
    return launched
