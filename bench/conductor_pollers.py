"""Poller services fed by Conductor: runs polled per second by two against one (issue 14.1).

Each round starts one or two `python -m conductor_workers poller` processes over the
benchmark's scratch database and simulator, then a private copy of the batch_status_poller
loop (its own name and correlation id) whose poll_status tasks go to a Conductor task domain
of the round's own; the services poll only that domain (CONDUCTOR_WORKER_DOMAIN). The stack's
poller polls no domain, so it never takes the benchmark's sweeps, nor they its: the stack's
loop and database are left alone.

The figure is the runs polled in the WINDOW_SECONDS after the loop's start over the time from
the start to the last of those polls (a batch's runs are written at once, so counting them at
the window's end would round the rate to a batch): the services' sweeping rate, Conductor's
dispatch of the sweeps included. The window ends
before any sweep runs out of due runs or reaches its 40 s budget: past the budget a sweep
leaves the runs it claimed but could not ask in time to their lease (60 s), a tail that would
measure the lease, not the polling.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import psycopg2
import requests

from .common import PY, ROOT, Child, MachineCpu, free_port, log, median, start_child, wait_http
from .sim import Simulator
from .sweeps import Seed

LOOP_DEF = ROOT / "workflow_defs" / "workflows" / "batch_status_poller.json"
LOOP_NAME = "bench_status_poller"
PARALLELISM = 2
# A sweep at a time per service (poll_status's thread_count): one slot per service per round.
LOOP_INTERVAL_SECONDS = 1
WINDOW_SECONDS = 20
# The reconciler would start workflows for the scratch database's runs: none can start.
NO_WORKFLOW = "bench_no_such_workflow"
POLLING = "Conductor Worker[name=poll_status"


def _register(conductor_url: str) -> None:
    body = json.loads(LOOP_DEF.read_text())
    body["name"] = LOOP_NAME
    body["description"] = "The benchmark's private copy of batch_status_poller"
    requests.put(f"{conductor_url}/metadata/workflow", json=[body], timeout=30).raise_for_status()


def _sql(database_url: str, statement: str, params: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def _start_services(
    count: int, domain: str, database_url: str, sim: Simulator, conductor_url: str, logs: Path
) -> list[Child]:
    services, binds = [], []
    for i in range(count):
        bind = f"127.0.0.1:{free_port()}"
        env = {
            "DATABASE_URL": database_url,
            "CONDUCTOR_SERVER_URL": conductor_url,
            "WORKBENCH_API_URL": sim.api_url,
            "WORKBENCH_API_TOKEN": sim.token,
            "WORKER_HEALTH_BIND": bind,
            "LOG_LEVEL": "WARNING",
            # Each run is polled once per round: none falls due again while a round runs.
            "POLL_INTERVAL_SECONDS": "3600",
            "POLL_PARALLELISM": str(PARALLELISM),
            "RECONCILE_INTERVAL_SECONDS": "86400",
            "CONDUCTOR_WORKER_DOMAIN": domain,
            "conductor_worker_poll_status_worker_id": f"bench-poller-{i}",
            "CONDUCTOR_DATABASE_URL": "",
            "WEBHOOK_SECRET": "",
            "PROMETHEUS_MULTIPROC_DIR": "",
        }
        args = [PY, "-m", "conductor_workers", "poller"]
        services.append(start_child(f"bench-poller-{i}", args, env, logs))
        binds.append(bind)
    for service, bind in zip(services, binds, strict=True):
        wait_http(f"http://{bind}/readyz", 60, f"{service.name} (log: {service.log_path})")
        # Ready answers before the SDK's worker processes poll: a round starts once each
        # service's poll_status runner said it is active, or a late one would look slow.
        deadline = time.monotonic() + 60
        while POLLING not in service.log_path.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise SystemExit(f"{service.name} never polled poll_status: {service.tail()}")
            time.sleep(0.1)
    return services


def _start_loop(conductor_url: str, domain: str) -> str:
    resp = requests.post(
        f"{conductor_url}/workflow",
        json={
            "name": LOOP_NAME,
            "version": 1,
            "correlationId": f"{LOOP_NAME}-{domain}",
            "input": {
                "poll_interval_seconds": LOOP_INTERVAL_SECONDS,
                "poll_parallelism": PARALLELISM,
            },
            "taskToDomain": {"poll_status": domain},
        },
        timeout=30,
    )
    resp.raise_for_status()
    return resp.text


def _sweepers(conductor_url: str, loop_id: str) -> list[str]:
    """The service (worker id) sweeping each slot of the first iteration, by slot."""
    resp = requests.get(
        f"{conductor_url}/workflow/{loop_id}", params={"includeTasks": "true"}, timeout=30
    )
    resp.raise_for_status()
    sweeps = [
        t for t in resp.json()["tasks"] if t["taskType"] == "poll_status" and t["iteration"] == 1
    ]
    sweeps.sort(key=lambda t: t["referenceTaskName"])
    return [t.get("workerId") or "waiting" for t in sweeps]


def one_round(
    count: int, seed: Seed, sim: Simulator, conductor_url: str, logs: Path
) -> dict[str, object]:
    """Seed, start `count` services and the loop; the runs polled per second in the window."""
    seed.reset()
    total = len(seed.jobs)
    domain = f"bench{uuid.uuid4().hex[:8]}"
    services = _start_services(count, domain, seed.database_url, sim, conductor_url, logs)
    loop_id = None
    try:
        with MachineCpu() as machine:
            (started,) = _sql(seed.database_url, "SELECT clock_timestamp()")[0]
            loop_id = _start_loop(conductor_url, domain)
            time.sleep(WINDOW_SECONDS + 1)
        sweepers = _sweepers(conductor_url, loop_id)
        [(polled, last)] = _sql(
            seed.database_url,
            "SELECT count(*), max(last_polled_at) FROM pipeline_runs"
            " WHERE last_polled_at <= %s + %s * interval '1 second'",
            (started, WINDOW_SECONDS),
        )
    finally:
        if loop_id:
            requests.delete(
                f"{conductor_url}/workflow/{loop_id}",
                params={"reason": "benchmark round over"},
                timeout=30,
            )
        for service in services:
            service.stop()
    if polled >= total:
        raise SystemExit(f"every run was polled within the {WINDOW_SECONDS} s window: seed more")
    seconds = (last - started).total_seconds()
    return {"runs_per_second": polled / seconds, "busy": machine.busy, "split": sweepers}


def scaling(
    seed: Seed, sim: Simulator, conductor_url: str, rounds: int, delay: float, logs: Path
) -> dict:
    """Alternated rounds of one and two poller services, status answers after `delay`."""
    _register(conductor_url)
    [(pipelines,)] = _sql(
        seed.database_url, "SELECT json_object_agg(name, workflow_name) FROM pipelines"
    )
    _sql(seed.database_url, "UPDATE pipelines SET workflow_name = %s", (NO_WORKFLOW,))
    sim.faults(slow={"seconds": delay, "rate": 1.0, "only": "status"})
    rates: dict[int, list[float]] = {1: [], 2: []}
    busy: dict[int, list[float]] = {1: [], 2: []}
    splits: dict[int, list] = {1: [], 2: []}
    try:
        for r in range(rounds):
            for count in (1, 2) if r % 2 == 0 else (2, 1):
                result = one_round(count, seed, sim, conductor_url, logs)
                rates[count].append(result["runs_per_second"])
                busy[count].append(result["busy"])
                splits[count].append(result["split"])
                log(
                    f"  round {r + 1} {count} service(s): {result['runs_per_second']:.0f} runs/s, "
                    f"machine {result['busy']:.0%} busy, slots swept by {result['split']}"
                )
    finally:
        sim.clear_faults()
        for name, workflow_name in (pipelines or {}).items():
            _sql(
                seed.database_url,
                "UPDATE pipelines SET workflow_name = %s WHERE name = %s",
                (workflow_name, name),
            )
    one, two = median(rates[1]), median(rates[2])
    prefix = "poller_scaling_conductor"
    return {
        f"{prefix}_2_vs_1": two / one,
        f"{prefix}_1_runs_per_second": one,
        f"{prefix}_2_runs_per_second": two,
        f"{prefix}_1_rounds_runs_per_second": [round(x, 1) for x in rates[1]],
        f"{prefix}_2_rounds_runs_per_second": [round(x, 1) for x in rates[2]],
        f"{prefix}_sweepers_1": splits[1][0],
        f"{prefix}_sweepers_2": splits[2][0],
        f"{prefix}_window_seconds": WINDOW_SECONDS,
        f"{prefix}_parallelism": PARALLELISM,
        f"{prefix}_status_delay_ms": delay * 1000,
        f"{prefix}_runs": len(seed.jobs),
        f"{prefix}_rounds": rounds,
        f"{prefix}_machine_busy_1": median(busy[1]),
        f"{prefix}_machine_busy_2": median(busy[2]),
    }
