"""The gateway against Conductor's own REST API: accepted starts per second and p99 overhead.

The gateway measured is the project's (gunicorn with gateway/gunicorn.conf.py, 2 gthread
workers x 16 threads), started by the benchmark on the benchmark database so that thousands
of runs never land in the stack's own database. Both sides start the same workflow,
`bench_accept_run` (one SIMPLE task no worker polls: the shape of batch_pipeline_run's start,
with nothing running downstream), and every workflow started is terminated after each phase
so that Conductor's sweeper has no growing backlog to re-decide.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import psycopg2
import requests

from . import loadgen
from .common import (
    PY,
    Child,
    MachineCpu,
    children_of,
    free_port,
    log,
    median,
    peak_rss_mb,
    start_child,
    token,
    tree_cpu_seconds,
    wait_http,
)

WORKFLOW, TASK, PIPELINE = "bench_accept_run", "bench_accept_idle", "bench-accept"
CONTENT_JSON = {"Content-Type": "application/json"}


def register(conductor: str, database_url: str) -> None:
    """The benchmark's task and workflow in Conductor, its pipeline in the benchmark database."""
    requests.post(
        f"{conductor}/metadata/taskdefs",
        json=[
            {
                "name": TASK,
                "description": "benchmark: a task nobody polls",
                "retryCount": 0,
                "timeoutSeconds": 3600,
                "responseTimeoutSeconds": 3600,
            }
        ],
        timeout=30,
    ).raise_for_status()
    requests.put(
        f"{conductor}/metadata/workflow",
        json=[
            {
                "name": WORKFLOW,
                "version": 1,
                "schemaVersion": 2,
                "description": "benchmark: the start of a run, with nothing downstream",
                "inputParameters": ["pipeline_run_id", "input_path_prefix", "output_path_prefix"],
                "tasks": [
                    {
                        "name": TASK,
                        "taskReferenceName": "idle",
                        "type": "SIMPLE",
                        "inputParameters": {
                            "pipeline_run_id": "${workflow.input.pipeline_run_id}",
                            "input_path_prefix": "${workflow.input.input_path_prefix}",
                            "output_path_prefix": "${workflow.input.output_path_prefix}",
                        },
                    }
                ],
            }
        ],
        timeout=30,
    ).raise_for_status()
    conn = psycopg2.connect(database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO pipelines (name, mode, workflow_name, workflow_version, description) "
                "VALUES (%s, 'BATCH', %s, 1, 'benchmark') ON CONFLICT (name) DO NOTHING",
                (PIPELINE, WORKFLOW),
            )
    finally:
        conn.close()


def start_gateway(env: dict[str, str], database_url: str, log_dir: Path) -> tuple[Child, str, str]:
    """gunicorn exactly as the stack runs it, on a free port and the benchmark database."""
    port, tok = free_port(), token()
    child = start_child(
        "gateway",
        [str(Path(PY).parent / "gunicorn"), "-c", "gateway/gunicorn.conf.py", "gateway.wsgi:app"],
        {
            "DATABASE_URL": database_url,
            "CONDUCTOR_SERVER_URL": env["CONDUCTOR_SERVER_URL"],
            "GATEWAY_API_TOKENS": tok,
            "GATEWAY_BIND": f"127.0.0.1:{port}",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        },
        log_dir,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/readyz", 60, "the benchmark's gateway")
    except SystemExit:
        log(child.tail())
        raise
    return child, url, tok


def _direct_target(conductor: str) -> loadgen.Target:
    def body() -> bytes:
        run_id = str(uuid.uuid4())
        return json.dumps(
            {
                "name": WORKFLOW,
                "version": 1,
                "correlationId": run_id,
                "input": {
                    "pipeline_run_id": run_id,
                    "input_path_prefix": f"s3://bench/in/{run_id}/",
                    "output_path_prefix": f"s3://bench/out/{run_id}/",
                },
            }
        ).encode()

    return loadgen.Target(
        "direct",
        f"{conductor}/workflow",
        body,
        CONTENT_JSON,
        frozenset({200}),
        keep=lambda body: body.decode().strip().strip('"'),
    )


def _gateway_target(url: str, tok: str) -> loadgen.Target:
    def body() -> bytes:
        key = uuid.uuid4().hex
        return json.dumps(
            {
                "pipeline": PIPELINE,
                "mode": "BATCH",
                "input_path_prefix": f"s3://bench/in/{key}/",
                "output_path_prefix": f"s3://bench/out/{key}/",
            }
        ).encode()

    return loadgen.Target(
        "gateway",
        f"{url}/api/v1/pipeline-runs",
        body,
        {**CONTENT_JSON, "Authorization": f"Bearer {tok}"},
        frozenset({202}),
        keep=lambda body: json.loads(body).get("conductor_workflow_id"),
    )


def terminate(conductor: str, workflow_ids: list[str]) -> None:
    """End the workflows a phase started, 1000 at a time (Conductor's bulk limit)."""
    for i in range(0, len(workflow_ids), 1000):
        requests.post(
            f"{conductor}/workflow/bulk/terminate",
            params={"reason": "benchmark phase over"},
            json=workflow_ids[i : i + 1000],
            timeout=600,
        ).raise_for_status()


class CpuMeter:
    """CPU seconds of Conductor, PostgreSQL and the gateway, less what they spend idle.

    Each group is a process and its children, exited ones included (a parent accounts for
    the children it reaped). What the stack spends with no load at all (workers polling
    Conductor, the poller's sweeps) is measured first and taken off each phase.
    """

    def __init__(self, gateway_pid: int, idle_seconds: float = 4.0):
        self.pids = {"gateway": gateway_pid}
        for name in ("conductor", "postgres"):
            pid = _supervised_pid(name)
            if pid:
                self.pids[name] = pid
        before, started = self.read(), time.monotonic()
        time.sleep(idle_seconds)
        spent, elapsed = self.read(), time.monotonic() - started
        self.idle_per_second = {k: (spent[k] - before[k]) / elapsed for k in spent}

    def read(self) -> dict[str, float]:
        return {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()}

    def per_request(self, before: dict, after: dict, seconds: float, count: int) -> dict:
        return {
            k: (after[k] - before[k] - self.idle_per_second[k] * seconds) / count * 1000
            for k in after
        }


def _supervised_pid(name: str) -> int | None:
    """The pid of one of the stack's programs, from its supervisord (None if unknown)."""
    from stack import config

    try:
        out = subprocess.run(
            [
                str(Path(PY).parent / "supervisorctl"),
                "-c",
                str(config.STACK_DIR / "supervisord.conf"),
                "pid",
                name,
            ],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return int(out) if out.isdigit() and out != "0" else None


def _phase(conductor: str, meter: CpuMeter, fn, *args) -> tuple[loadgen.Result, dict]:
    before, started = meter.read(), time.monotonic()
    with MachineCpu() as machine:
        result = fn(*args)
    elapsed, spent = time.monotonic() - started, meter.read()
    requests_made = max(1, len(result.kept) + result.failed)  # warm-up included, as the CPU
    cpu = meter.per_request(before, spent, elapsed, requests_made)
    cpu["client"] = result.client_cpu_ms_per_request
    cpu["machine_busy"] = machine.busy
    started = time.monotonic()
    terminate(conductor, result.kept)
    log(
        f"    {result.name:8} {result.rate:6.1f}/s ok={result.ok} failed={result.failed} "
        f"p50={loadgen.percentile(result.latencies, 50) * 1000:.0f}ms "
        f"p99={loadgen.percentile(result.latencies, 99) * 1000:.0f}ms, CPU ms per request: "
        + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items() if k != "machine_busy")
        + f"; machine {machine.busy:.0%} busy "
        f"(terminated {len(result.kept)} in {time.monotonic() - started:.0f}s)"
    )
    return result, cpu


def run(
    conductor: str,
    gateway_url: str,
    gateway_token: str,
    gateway_pid: int,
    *,
    concurrency: int,
    seconds: float,
    rate_seconds: float,
    rounds: int,
    rate_rounds: int,
) -> dict:
    """Max rate of each side, then both at 70 % of the direct maximum; rounds alternate.

    The machine is shared and noisy: short phases in alternating order (AB, BA, ...), a
    ratio per round, and the median of the rounds.
    """
    direct, gateway = _direct_target(conductor), _gateway_target(gateway_url, gateway_token)
    meter = CpuMeter(gateway_pid)
    ratios, direct_max, gateway_max = [], [], []
    cpu: dict[str, list[dict]] = {"direct": [], "gateway": []}
    for r in range(rounds):
        log(f"  round {r + 1}: closed loop, {concurrency} connections, {seconds:.0f}s each")
        order = (direct, gateway) if r % 2 == 0 else (gateway, direct)
        got = {}
        for t in order:
            got[t.name], used = _phase(conductor, meter, loadgen.max_rate, t, concurrency, seconds)
            cpu[t.name].append(used)
        direct_max.append(got["direct"].rate)
        gateway_max.append(got["gateway"].rate)
        ratios.append(got["gateway"].rate / got["direct"].rate)
    target_rate = 0.7 * median(direct_max)
    p99: dict[str, list[float]] = {"direct": [], "gateway": []}
    p50: dict[str, list[float]] = {"direct": [], "gateway": []}
    overheads = []
    for r in range(rate_rounds):
        log(f"  round {r + 1}: open loop at {target_rate:.1f}/s, {rate_seconds:.0f}s each")
        order = (direct, gateway) if r % 2 == 0 else (gateway, direct)
        got = {}
        for t in order:
            got[t.name], _ = _phase(
                conductor, meter, loadgen.fixed_rate, t, target_rate, rate_seconds, concurrency * 2
            )
        for name in p99:
            p99[name].append(loadgen.percentile(got[name].latencies, 99) * 1000)
            p50[name].append(loadgen.percentile(got[name].latencies, 50) * 1000)
        overheads.append(p99["gateway"][-1] - p99["direct"][-1])

    # The same at a rate the gateway itself sustains here (70 % of its own maximum): its
    # latency overhead when it is not short of CPU.
    own_rate = 0.7 * median(gateway_max)
    log(f"  open loop at {own_rate:.1f}/s (70 % of the gateway's maximum), {rate_seconds:.0f}s")
    low = {
        t.name: _phase(
            conductor, meter, loadgen.fixed_rate, t, own_rate, rate_seconds, concurrency * 2
        )[0]
        for t in (direct, gateway)
    }
    low_p99 = {name: loadgen.percentile(r.latencies, 99) * 1000 for name, r in low.items()}

    def cpu_ms(side: str, group: str) -> float:
        return median([c.get(group, float("nan")) for c in cpu[side]])

    return {
        "gateway_accept_ratio": median(ratios),
        "gateway_accepts_per_second": median(gateway_max),
        "direct_starts_per_second": median(direct_max),
        "gateway_p99_overhead_ms": median(overheads),
        "gateway_p99_ms": median(p99["gateway"]),
        "direct_p99_ms": median(p99["direct"]),
        "gateway_p50_ms": median(p50["gateway"]),
        "direct_p50_ms": median(p50["direct"]),
        "gateway_fixed_rate_per_second": target_rate,
        "gateway_p99_overhead_ms_at_own_70pct": low_p99["gateway"] - low_p99["direct"],
        "gateway_own_70pct_rate_per_second": own_rate,
        "gateway_p99_ms_at_own_70pct": low_p99["gateway"],
        "direct_p99_ms_at_own_70pct": low_p99["direct"],
        "gateway_concurrency": concurrency,
        "gateway_accept_ratio_rounds": ", ".join(f"{x:.2f}" for x in ratios),
        "gateway_p99_overhead_ms_rounds": ", ".join(f"{x:.0f}" for x in overheads),
        "gateway_rounds": rounds,
        "gateway_rate_rounds": rate_rounds,
        # CPU per request in the closed-loop phases: what the 2 cores are spent on.
        "cpu_ms_per_start_direct_conductor": cpu_ms("direct", "conductor"),
        "cpu_ms_per_start_direct_postgres": cpu_ms("direct", "postgres"),
        "cpu_ms_per_request_gateway_conductor": cpu_ms("gateway", "conductor"),
        "cpu_ms_per_request_gateway_postgres": cpu_ms("gateway", "postgres"),
        "cpu_ms_per_request_gateway_gateway": cpu_ms("gateway", "gateway"),
        # Issue 14.3: the gunicorn workers' CPU per accepted POST (goal <= 1.5 ms); its
        # baseline is Conductor's CPU per direct start, cpu_ms_per_start_direct_conductor.
        "gateway_cpu_ms_per_accept": cpu_ms("gateway", "gateway"),
        "gateway_cpu_ms_per_accept_rounds": ", ".join(
            f"{c['gateway']:.2f}" for c in cpu["gateway"]
        ),
        "cpu_ms_per_request_client": cpu_ms("gateway", "client"),
        "gateway_machine_busy": cpu_ms("gateway", "machine_busy"),
        "direct_machine_busy": cpu_ms("direct", "machine_busy"),
    }


def list_active(gateway_url: str, tok: str, pages: int = 5) -> None:
    """Read pages of active runs through the gateway (its memory with a full database)."""
    cursor = None
    for _ in range(pages):
        params = {"status": "SUBMITTED", "limit": 200, **({"cursor": cursor} if cursor else {})}
        resp = requests.get(
            f"{gateway_url}/api/v1/pipeline-runs",
            params=params,
            headers={"Authorization": f"Bearer {tok}"},
            timeout=30,
        )
        resp.raise_for_status()
        cursor = resp.json()["next_cursor"]
        if not cursor:
            return


def rss_mb(child: Child) -> dict:
    """Peak resident memory of the gunicorn master and each worker, and their sum."""
    master = child.proc.pid
    workers = children_of(master)
    per = [peak_rss_mb(pid) for pid in workers]
    return {
        "gateway_rss_mb": peak_rss_mb(master) + sum(per),
        "gateway_rss_master_mb": peak_rss_mb(master),
        "gateway_rss_workers_mb": per,
    }


def accept_cost_in_process(conductor: str, database_url: str, accepts: int = 200) -> dict:
    """Round trips to PostgreSQL and CPU per accepted POST, the gateway's app in this process.

    Counted on the client (bench.roundtrips: statements, BEGIN, COMMIT, ROLLBACK) through
    Flask's test client, so the figure is the submission path's own and not the load's;
    the CPU is this thread's, HTTP parsing by gunicorn excluded.
    """
    from batchcore import settings as settings_module
    from batchcore.db import Database
    from gateway import create_app

    from . import roundtrips

    connect = psycopg2.connect
    counter = roundtrips.install()
    tok = token()
    settings = settings_module.load(
        {
            "DATABASE_URL": database_url,
            "CONDUCTOR_SERVER_URL": conductor,
            "GATEWAY_API_TOKENS": f"bench:{tok}",
            "LOG_LEVEL": "WARNING",
        }
    )
    db = Database(database_url, maxconn=2)
    app = create_app({"SETTINGS": settings, "DATABASE": db})
    client = app.test_client()
    target = _gateway_target("", tok)
    headers = dict(target.headers)
    kept: list[str] = []

    def post() -> None:
        resp = client.post("/api/v1/pipeline-runs", data=target.make_body(), headers=headers)
        if resp.status_code != 202:
            raise RuntimeError(f"POST answered {resp.status_code}: {resp.get_data(True)[:300]}")
        kept.append(resp.get_json()["conductor_workflow_id"])

    for _ in range(10):  # warm: connections open, queries prepared by the server's cache
        post()
    counts_before = dict(counter.counts)
    cpu_before = time.thread_time()
    for _ in range(accepts):
        post()
    cpu = time.thread_time() - cpu_before
    counts = {k: counter.counts[k] - counts_before[k] for k in counts_before}
    terminate(conductor, kept)
    db.close()
    psycopg2.connect = connect  # the later phases connect as usual
    trips = sum(v for k, v in counts.items() if k != "connect")
    return {
        "gateway_db_round_trips_per_accept": trips / accepts,
        "gateway_db_statements_per_accept": counts["statement"] / accepts,
        "gateway_db_transactions_per_accept": counts["begin"] / accepts,
        "gateway_in_process_cpu_ms_per_accept": cpu / accepts * 1000,
        "gateway_in_process_accepts": accepts,
        # The same count at 1cbd6a7, before issue 14.3: BEGIN, the catalog, the run, its
        # event, COMMIT, the workflow id, then the run and its history read back.
        "gateway_db_round_trips_per_accept_before": 8,
    }
