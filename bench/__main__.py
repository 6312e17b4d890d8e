"""`python -m bench [--quick]`: every benchmark of the service, each against a baseline
measured in the same run, then a table on stdout and bench/results/latest.json.

Needs the running stack (`make up`; STACK_DIR and the STACK_*_PORT variables pick which).
It uses the stack's PostgreSQL, Conductor, gateway, workers and poller as they are, and
starts for itself, on free ports: a Workbench simulator (for the sweeps), a gateway on a
database of its own (`pipelines_bench`, dropped at the end) and a no-op task worker.
BENCH_QUICK=1 (or --quick) makes a short run with fewer runs and shorter phases.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from . import (
    burst,
    common,
    conductor_pollers,
    gateway,
    latency,
    loadgen,
    notifications,
    report,
    scale,
    submission,
    sweeps,
)
from . import sim as simulator
from .common import RESULTS_DIR, log


@dataclass(frozen=True)
class Plan:
    mode: str
    sweep_runs: int
    sweep_rounds: int
    scaling_rounds: int
    gateway_seconds: float
    gateway_rate_seconds: float
    gateway_rounds: int
    gateway_rate_rounds: int
    latency_samples: int
    slow_scaling_runs: int


FULL = Plan("full", 10_000, 3, 2, 8, 10, 4, 2, 60, 2_000)
QUICK = Plan("quick", 2_000, 1, 1, 4, 6, 2, 1, 15, 1_000)
CONCURRENCY = 32  # the gateway's 2 workers x 16 threads
BATCH_SIZE = 200  # POLL_BATCH_SIZE's default
STATUS_DELAY = 0.020
PARTS = (
    "sweep",
    "scaling",
    "poller_scaling",
    "gateway",
    "latency",
    "submit_latency",
    "burst",
    "notifications",
    "scale",
)
BURST_RUNS, BURST_THREADS = 1_000, 16


def _git_commit() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=common.ROOT, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=common.ROOT,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run (also BENCH_QUICK=1)")
    parser.add_argument("--out", default=str(RESULTS_DIR / "latest.json"))
    parser.add_argument(
        "--only",
        default=",".join(PARTS),
        help=f"comma-separated parts to run, of {', '.join(PARTS)} (default: all)",
    )
    args = parser.parse_args(argv)
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    if parts - set(PARTS):
        parser.error(f"unknown part(s): {', '.join(sorted(parts - set(PARTS)))}")
    plan = QUICK if args.quick or os.environ.get("BENCH_QUICK") not in (None, "", "0") else FULL

    env = common.stack_env()
    conductor = env["CONDUCTOR_SERVER_URL"]
    started = time.monotonic()
    log_dir = common.config.STACK_DIR / "bench"
    results: dict = {
        "mode": plan.mode,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "machine": f"{platform.machine()} {platform.system()} {platform.release()}",
        "python_version": platform.python_version(),
        "conductor_version": common.conductor_version(conductor),
        "postgresql_version": common.postgres_version(env),
        "load_generator": loadgen.NAME,
        "concurrency": CONCURRENCY,
        "git_commit": _git_commit(),
    }
    log(f"{plan.mode} run on {results['cores']} cores; logs of started processes in {log_dir}")

    database_url = common.create_bench_database(env)
    sim = simulator.start(log_dir)
    gw = None
    try:
        if parts & {"sweep", "scaling", "poller_scaling", "gateway"}:  # gateway lists these
            log(f"creating {plan.sweep_runs} Workbench jobs and their SUBMITTED runs")
            seed = sweeps.Seed(database_url, simulator.create_jobs(sim, plan.sweep_runs))
            seed.reset()

        if "sweep" in parts:
            log(f"sweep vs bare loop, {plan.sweep_rounds} round(s), batch {BATCH_SIZE}")
            results |= sweeps.sweep_vs_bare(seed, sim, conductor, plan.sweep_rounds, BATCH_SIZE)

        if "scaling" in parts:
            log(f"one poller process vs two, status calls slowed by {STATUS_DELAY * 1000:.0f} ms")
            results |= sweeps.scaling(seed, sim, conductor, plan.scaling_rounds, STATUS_DELAY)
            results["poller_rss_mb"] = results["poller_scaling_peak_rss_mb"]
            # The same with slower answers, where two pollers are not short of CPU.
            subset = sweeps.Seed(database_url, seed.jobs[: plan.slow_scaling_runs])
            log(f"again on {len(subset.jobs)} runs, status calls slowed by 100 ms")
            results |= sweeps.scaling(
                subset, sim, conductor, 1, 0.100, "poller_scaling_2_vs_1_at_100ms", "poller_100ms"
            )
            seed.reset()

        if "poller_scaling" in parts:
            log("poller services fed by Conductor, two vs one, status calls slowed by 100 ms")
            results |= conductor_pollers.scaling(
                seed, sim, conductor, 2 * plan.scaling_rounds + 1, 0.100, log_dir
            )
            log("the same runs swept by direct sweep() calls in one and two processes")
            results |= sweeps.scaling(
                seed,
                sim,
                conductor,
                1,
                0.100,
                "poller_scaling_direct_2_vs_1_at_100ms",
                "poller_direct_100ms",
            )
            seed.reset()

        if "gateway" in parts:
            log("gateway vs Conductor's REST API")
            gateway.register(conductor, database_url)
            gw, gw_url, gw_token = gateway.start_gateway(env, database_url, log_dir)
            results |= gateway.run(
                conductor,
                gw_url,
                gw_token,
                gw.proc.pid,
                concurrency=CONCURRENCY,
                seconds=plan.gateway_seconds,
                rate_seconds=plan.gateway_rate_seconds,
                rounds=plan.gateway_rounds,
                rate_rounds=plan.gateway_rate_rounds,
            )
            gateway.list_active(gw_url, gw_token)
            results |= gateway.rss_mb(gw)
            results |= gateway.accept_cost_in_process(conductor, database_url)
            gw.stop()
            gw = None

        if "latency" in parts:
            log("latencies through the stack: POST to SUBMITTED, job end to terminal run")
            results |= latency.run(env, log_dir, plan.latency_samples, gap=0.4)

        if "submit_latency" in parts:
            log("submission latency: POST to SUBMITTED vs two-task and one-task no-op workflows")
            results |= submission.submit_latency(env, log_dir, plan.latency_samples, gap=0.4)

        if "burst" in parts:
            log(f"bursts: {BURST_RUNS} runs posted at once vs {BURST_RUNS} two-task no-ops")
            rounds = 1 if plan.mode == "quick" else 2
            results |= burst.run(env, log_dir, BURST_RUNS, BURST_THREADS, rounds)

        if "notifications" in parts:
            log("notifications: from a status change to its webhook on a loopback receiver")
            results |= notifications.run(env, plan.latency_samples // 3, gap=0.3)
        if "scale" in parts:
            log("the database at millions of runs vs at 10,000")
            results |= scale.run(env, sim, database_url, quick=plan.mode == "quick")
    finally:
        if gw is not None:
            gw.stop()
        sim.stop()
        common.drop_bench_database(env)

    results["duration_s"] = round(time.monotonic() - started, 1)
    path = report.write(results, Path(args.out), partial=parts != set(PARTS))
    print(report.table(results))
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
