"""The poller's benchmarks: one sweep against the bare loop, its round trips, two pollers."""

from __future__ import annotations

import json
import math
import os
import subprocess
from dataclasses import dataclass

import psycopg2
import psycopg2.extras

from .common import PY, ROOT, MachineCpu, cpu_seconds, log, median
from .sim import Simulator

SEED = """
INSERT INTO pipeline_runs (id, pipeline, mode, status, input_path_prefix, output_path_prefix,
                           request_fingerprint, workbench_job_id, submitted_at, next_poll_at)
SELECT v.id::uuid, 'demo-batch', 'BATCH', 'SUBMITTED', 's3://bench/in/' || v.n || '/',
       's3://bench/out/' || v.n || '/', 'bench', v.job, now(),
       now() - interval '1 second' - v.n * interval '1 microsecond'
FROM (VALUES %s) AS v(n, id, job)
"""

# The schema refuses TRUNCATE of the runs and their trail; the bench lifts that on its own
# scratch database for the reset only (one statement string: one transaction).
RESET = """
ALTER TABLE pipeline_runs DISABLE TRIGGER pipeline_runs_no_truncate;
ALTER TABLE pipeline_run_events DISABLE TRIGGER pipeline_run_events_no_truncate;
TRUNCATE pipeline_run_events, pipeline_run_polls, pipeline_runs;
ALTER TABLE pipeline_runs ENABLE TRIGGER pipeline_runs_no_truncate;
ALTER TABLE pipeline_run_events ENABLE TRIGGER pipeline_run_events_no_truncate;
"""


@dataclass
class Seed:
    """The runs a sweep polls: (run id, job id) pairs whose jobs exist in the simulator."""

    database_url: str
    jobs: list[tuple[str, str]]

    def reset(self) -> None:
        """Every run SUBMITTED and due again, no events: each round starts the same."""
        conn = psycopg2.connect(self.database_url)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(RESET)
                psycopg2.extras.execute_values(
                    cur,
                    SEED,
                    [(n, run, job) for n, (run, job) in enumerate(self.jobs)],
                    page_size=1000,
                )
                cur.execute("VACUUM ANALYZE pipeline_runs")
                cur.execute("VACUUM ANALYZE pipeline_run_events")
        finally:
            conn.close()


def _env(seed: Seed, sim: Simulator, conductor_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": seed.database_url,
        "WORKBENCH_API_URL": sim.api_url,
        "WORKBENCH_API_TOKEN": sim.token,
        "CONDUCTOR_SERVER_URL": conductor_url,
        "LOG_LEVEL": "WARNING",
        # Each run is polled once per sweep: none falls due again while a slow sweep runs.
        "POLL_INTERVAL_SECONDS": "3600",
    }


def run_pollers(mode: str, processes: int, env: dict[str, str]) -> list[dict]:
    """Start `processes` poller processes, let them get ready, start them at once, collect."""
    procs = [
        subprocess.Popen(
            [PY, "-m", "bench.sweeper", mode],
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for p in procs:
            line = p.stdout.readline().strip()
            if line != "ready":
                raise SystemExit(f"bench.sweeper {mode} did not get ready (said {line!r})")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            out = p.stdout.readline()
            if not out:
                raise SystemExit(f"bench.sweeper {mode} ended without a result")
            results.append(json.loads(out))
        return results
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(30)


def sweep_vs_bare(
    seed: Seed, sim: Simulator, conductor_url: str, rounds: int, batch_size: int
) -> dict:
    """Alternate bare and sweep runs over the same reset seed; medians and their ratio."""
    env = {**_env(seed, sim, conductor_url), "POLL_BATCH_SIZE": str(batch_size)}
    runs: dict[str, list[dict]] = {"bare": [], "sweep": []}
    for r in range(rounds):
        order = ("bare", "sweep") if r % 2 == 0 else ("sweep", "bare")
        for mode in order:
            seed.reset()
            [res] = run_pollers(mode, 1, env)
            if res["checked"] != len(seed.jobs):
                raise SystemExit(f"{mode} checked {res['checked']} of {len(seed.jobs)} runs")
            runs[mode].append(res)
            log(
                f"  round {r + 1} {mode:5}: {res['seconds']:.2f}s, {res['changed']} changed, "
                f"{res['round_trips']} round trips, cpu {res['cpu_seconds']:.1f}s"
            )
    sweep_s = median([x["seconds"] for x in runs["sweep"]])
    bare_s = median([x["seconds"] for x in runs["bare"]])
    trips = max(x["round_trips"] for x in runs["sweep"])
    n = len(seed.jobs)
    return {
        "sweep_vs_bare_ratio": sweep_s / bare_s,
        "sweep_seconds": sweep_s,
        "bare_seconds": bare_s,
        "sweep_runs_per_second": n / sweep_s,
        "sweep_db_round_trips": trips,
        "sweep_db_round_trips_goal": 2 * math.ceil(n / batch_size) + 5,
        "sweep_db_round_trip_kinds": runs["sweep"][0]["round_trip_kinds"],
        "bare_db_round_trips": runs["bare"][0]["round_trips"],
        "sweep_cpu_seconds": median([x["cpu_seconds"] for x in runs["sweep"]]),
        "bare_cpu_seconds": median([x["cpu_seconds"] for x in runs["bare"]]),
        "sweep_runs": n,
        "sweep_batch_size": batch_size,
        "sweep_changed": runs["sweep"][0]["changed"],
        "sweep_rounds": rounds,
    }


def scaling(
    seed: Seed,
    sim: Simulator,
    conductor_url: str,
    rounds: int,
    delay: float,
    name: str = "poller_scaling_2_vs_1",
    prefix: str = "poller_scaling",
) -> dict:
    """Sweep throughput of two poller processes over one, status calls answered after `delay`.

    Also what each run costs in CPU (the pollers' and the simulator's) and how busy the whole
    machine was: on 2 cores the pair of pollers can only go faster if there is CPU to spare.
    """
    env = _env(seed, sim, conductor_url)
    sim.faults(slow={"seconds": delay, "rate": 1.0, "only": "status"})
    throughput: dict[int, list[float]] = {1: [], 2: []}
    busy: dict[int, list[float]] = {1: [], 2: []}
    poller_cpu: list[float] = []
    sim_cpu: list[float] = []
    peak_rss = 0.0
    try:
        for r in range(rounds):
            for n in (1, 2) if r % 2 == 0 else (2, 1):
                seed.reset()
                sim_cpu0 = cpu_seconds(sim.child.proc.pid)
                with MachineCpu() as machine:
                    results = run_pollers("sweep", n, env)
                wall = max(x["ended"] for x in results) - min(x["started"] for x in results)
                checked = sum(x["checked"] for x in results)
                if checked != len(seed.jobs):
                    raise SystemExit(f"{n} poller(s) checked {checked} of {len(seed.jobs)}")
                throughput[n].append(checked / wall)
                busy[n].append(machine.busy)
                sim_cpu.append((cpu_seconds(sim.child.proc.pid) - sim_cpu0) / checked)
                poller_cpu.append(sum(x["cpu_seconds"] for x in results) / checked)
                peak_rss = max([peak_rss, *(x["peak_rss_mb"] for x in results)])
                log(
                    f"  round {r + 1} {n} poller(s): {checked / wall:.0f} runs/s "
                    f"({wall:.2f}s), machine {machine.busy:.0%} busy, CPU per run: pollers "
                    f"{poller_cpu[-1] * 1000:.2f} ms, simulator {sim_cpu[-1] * 1000:.2f} ms, "
                    f"split {[x['checked'] for x in results]}"
                )
    finally:
        sim.clear_faults()
    one, two = median(throughput[1]), median(throughput[2])
    return {
        name: two / one,
        f"{prefix}_1_runs_per_second": one,
        f"{prefix}_2_runs_per_second": two,
        f"{prefix}_status_delay_ms": delay * 1000,
        f"{prefix}_runs": len(seed.jobs),
        f"{prefix}_machine_busy_1": median(busy[1]),
        f"{prefix}_machine_busy_2": median(busy[2]),
        f"{prefix}_poller_cpu_ms_per_run": median(poller_cpu) * 1000,
        f"{prefix}_simulator_cpu_ms_per_call": median(sim_cpu) * 1000,
        f"{prefix}_peak_rss_mb": peak_rss,
    }
