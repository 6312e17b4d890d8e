"""`python -m bench --only burst`: 1,000 runs posted at once until all are SUBMITTED, against
1,000 two-task no-op workflows started at once until all complete, polled with the submission
service's worker settings; with each side's CPU and database time per run."""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from .common import MachineCpu, admin_connect, log, median, tree_cpu_seconds
from .gateway import _supervised_pid
from .latency import NOOP2
from .loadgen import percentile
from .submission import (
    _ended_at,
    _post_run,
    _run_body,
    _start_workflow,
    _submitted_at,
    start_noop_worker,
    worker_settings,
)

CPU_GROUPS = ("conductor", "postgres", "gateway", "submit-workers", "workbench", "poller")


def run(env: dict[str, str], log_dir: Path, runs: int, threads: int, rounds: int) -> dict:
    """Time for `runs` runs posted at once to be all SUBMITTED against `runs` two-task no-op
    workflows started at once to complete; rounds alternate (AB, BA, ...), medians kept."""
    pids = {name: _supervised_pid(name) for name in CPU_GROUPS}
    worker = start_noop_worker(env, log_dir)
    pids["noop-worker"] = worker.proc.pid
    phases: dict[str, list[dict]] = {"runs": [], "noop2": []}
    try:
        for i in range(rounds):
            order = ("runs", "noop2") if i % 2 == 0 else ("noop2", "runs")
            for side in order:
                phases[side].append(_undisturbed_phase(env, side, runs, threads, pids))
                time.sleep(5)  # the runs' jobs end, the poller settles
    finally:
        worker.stop()
    med = {s: {k: median([p[k] for p in phases[s]]) for k in phases[s][0]} for s in phases}
    result = {
        "burst_submit_ratio": med["runs"]["all_s"] / med["noop2"]["all_s"],
        "burst_submitted_per_s": runs / med["runs"]["all_s"],
        "burst_runs": runs,
        "burst_client_threads": threads,
        "burst_rounds": rounds,
        "burst_submit_all_s": med["runs"]["all_s"],
        "burst_submit_rounds_s": [p["all_s"] for p in phases["runs"]],
        "burst_accept_s": med["runs"]["sent_s"],
        "burst_submit_p50_s": med["runs"]["p50_s"],
        "burst_submit_p95_s": med["runs"]["p95_s"],
        "burst_noop2_all_s": med["noop2"]["all_s"],
        "burst_noop2_rounds_s": [p["all_s"] for p in phases["noop2"]],
        "burst_noop2_started_s": med["noop2"]["sent_s"],
        "burst_noop2_per_s": runs / med["noop2"]["all_s"],
        "burst_noop2_p95_s": med["noop2"]["p95_s"],
        **{f"submit_worker_{k[14:].lower()}": int(v) for k, v in worker_settings().items()},
    }
    for side in phases:
        for key, value in med[side].items():
            if key.startswith(("cpu_ms_", "db_")) or key == "machine_busy":
                result[f"burst_{side}_{key}"] = round(value, 2)
    return result


def _undisturbed_phase(env: dict, side: str, count: int, threads: int, pids: dict) -> dict:
    """A phase during which Conductor kept running: one it restarted in (the stack's
    conductor-watch does, on a queue it finds stuck) is measured again, at most twice."""
    for _attempt in range(3):
        try:
            phase = _burst_phase(env, side, count, threads, pids)
        except requests.ConnectionError as exc:
            phase = None
            log(f"  the {side} phase lost its connection: {exc}")
        now = _supervised_pid("conductor")
        if phase is not None and now == pids["conductor"]:
            return phase
        log(f"  Conductor restarted during the {side} phase (pid {pids['conductor']} -> {now})")
        pids["conductor"] = now
        time.sleep(20)
    raise SystemExit("Conductor restarted during three bursts in a row; see make status")


def _database_activity(env: dict[str, str]) -> dict[tuple[str, str], float]:
    """Per database: milliseconds spent running statements, and transactions committed."""
    conn = admin_connect(env)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT datname, active_time, xact_commit FROM pg_stat_database"
                " WHERE datname IN ('conductor', 'pipelines')"
            )
            rows = cur.fetchall()
    finally:
        conn.close()
    out = {}
    for name, active_ms, commits in rows:
        out[(name, "active_ms")] = float(active_ms)
        out[(name, "commits")] = float(commits)
    return out


def _burst_phase(env: dict, side: str, count: int, threads: int, pids: dict) -> dict:
    conductor = env["CONDUCTOR_SERVER_URL"]
    tag = f"bench-burst-{uuid.uuid4().hex[:12]}"
    rng = random.Random(11)
    bodies = [_run_body(rng) for _ in range(count)]
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session

    def post(i: int) -> tuple[str, float]:
        sent = time.time()
        if side == "noop2":
            return _start_workflow(session(), conductor, NOOP2, tag), sent
        return _post_run(session(), env, bodies[i]), sent

    db_before = _database_activity(env)
    cpu_before = {k: tree_cpu_seconds(p) for k, p in pids.items() if p}
    with MachineCpu() as machine:
        started = time.time()
        with ThreadPoolExecutor(threads) as pool:
            launched = list(pool.map(post, range(count)))
        sent_s = time.time() - started
        ids = [i for i, _ in launched]
        if side == "noop2":
            ends = _ended_at(conductor, NOOP2, tag, count, 600)
        else:
            ends = _submitted_at(env["DATABASE_URL"], ids, 600)
    cpu_after = {k: tree_cpu_seconds(p) for k, p in pids.items() if p}
    db_after = _database_activity(env)
    waits = [ends[i] - sent for i, sent in launched]
    all_s = max(ends.values()) - started
    out = {
        "all_s": all_s,
        "sent_s": sent_s,
        "p50_s": percentile(waits, 50),
        "p95_s": percentile(waits, 95),
        "machine_busy": machine.busy,
    }
    for k in cpu_after:
        out[f"cpu_ms_{k.replace('-', '_')}"] = (cpu_after[k] - cpu_before[k]) / count * 1000
    for (db, what), value in db_after.items():
        out[f"db_{db}_{what}"] = (value - db_before.get((db, what), 0)) / count
    log(
        f"  {side}: {count} in {all_s:.1f}s (sent in {sent_s:.1f}s, p95 {out['p95_s']:.1f}s), "
        f"machine {machine.busy:.0%} busy; CPU ms each: "
        + ", ".join(f"{k[7:]} {v:.1f}" for k, v in out.items() if k.startswith("cpu_ms_"))
    )
    return out
