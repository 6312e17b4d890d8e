"""What every chaos scenario needs: the stack's processes, steady load, faults, verification."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field

import psycopg2
import requests

from batchcore.runs.workflow import BATCH_WORKFLOW
from stack import conductor_watch, config, supervisor

TERMINAL = ("COMPLETED", "FAILED")
SIM_TO_RUN = {"SUCCEEDED": "COMPLETED", "FAILED": "FAILED", "CANCELLED": "FAILED"}


def run_body(simulate: dict, **extra: object) -> dict:
    """A demo-batch run with prefixes of its own and the simulator's instructions."""
    tag = uuid.uuid4().hex
    return {
        "pipeline": "demo-batch",
        "mode": "BATCH",
        "input_path_prefix": f"s3://chaos-in/{tag}",
        "output_path_prefix": f"s3://chaos-out/{tag}",
        "parameters": {"simulate": simulate},
        **extra,
    }


class Stack:
    """The running local stack: its endpoints, processes and simulator."""

    def __init__(self):
        self.env = config.read_stack_env()
        if not self.env:
            raise SystemExit(f"no {config.STACK_DIR / 'stack.env'}: run `make up` first")
        self.gateway = self.env["GATEWAY_URL"]
        self.conductor = self.env["CONDUCTOR_SERVER_URL"]
        self.admin = self.env["WORKBENCH_ADMIN_URL"]
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.env['GATEWAY_API_TOKEN']}"

    def pid(self, name: str) -> int:
        out = supervisor.ctl("pid", name, check=False).stdout.strip()
        return int(out) if out.isdigit() else 0

    def kill(self, name: str) -> None:
        """SIGKILL a program and everything it spawned; supervisord restarts it."""
        pid = self.pid(name)
        if pid:
            os.killpg(pid, signal.SIGKILL)

    def kill_gateway_worker(self) -> bool:
        """SIGKILL one gunicorn worker; the gunicorn master starts a new one."""
        master = self.pid("gateway")
        children = _children(master)
        if not children:
            return False
        os.kill(children[0], signal.SIGKILL)
        return True

    def await_ready(self, name: str, url: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{name} did not come back within {timeout}s")

    def faults(self, **faults) -> None:
        requests.post(f"{self.admin}/_sim/faults", json=faults, timeout=5).raise_for_status()

    def clear_faults(self) -> None:
        requests.delete(f"{self.admin}/_sim/faults", timeout=5).raise_for_status()

    def sim_faults_injected(self) -> int:
        """How many faults the simulator has fired since it started."""
        stats = requests.get(f"{self.admin}/_sim/stats", timeout=10).json()
        return sum(stats["faults_injected"].values())

    def sim_jobs(self) -> dict[str, list[dict]]:
        items = requests.get(f"{self.admin}/_sim/jobs", timeout=30).json()["items"]
        by_run = collections.defaultdict(list)
        for job in items:
            by_run[job["pipeline_run_id"]].append(job)
        return by_run

    def open_workflows(self, run_ids: list[str]) -> set[str]:
        """The runs among `run_ids` that still have a batch_pipeline_run workflow open in
        Conductor (correlation id = run id; a consistent read, not the search index)."""
        open_runs: set[str] = set()
        for start in range(0, len(run_ids), 200):
            resp = requests.post(
                f"{self.conductor}/workflow/{BATCH_WORKFLOW}/correlated",
                params={"includeClosed": "false", "includeTasks": "false"},
                json=run_ids[start : start + 200],
                timeout=30,
            )
            resp.raise_for_status()
            open_runs.update(run_id for run_id, found in resp.json().items() if found)
        return open_runs

    def conductor_restarts(self) -> int:
        """How many times the stack's conductor-watch has restarted Conductor so far."""
        return int(conductor_watch.read_state().get("restarts", 0))

    def conductor_ready(self, timeout: float = 240) -> None:
        self.await_ready("conductor", self.conductor.removesuffix("/api") + "/health", timeout)

    def runs_repaired_by_reconciler(self, run_ids: list[str]) -> int:
        """Runs among `run_ids` with an audit event of the reconciler (a repair)."""
        if not run_ids:
            return 0
        return self.sql(
            "SELECT count(DISTINCT run_id) FROM pipeline_run_events "
            "WHERE run_id = ANY(%s::uuid[]) AND source = 'reconciler'",
            (run_ids,),
        )[0][0]

    def sql(self, query: str, params=None, url_key: str = "DATABASE_URL"):
        with psycopg2.connect(self.env[url_key], connect_timeout=5) as conn, conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else None


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@dataclass
class Load:
    """Submits runs at a steady rate from a few threads; remembers what was accepted."""

    stack: Stack
    rate_per_second: float
    simulate: dict = field(default_factory=lambda: {"duration_seconds": 2})
    accepted: list[str] = field(default_factory=list)
    answers: collections.Counter = field(default_factory=collections.Counter)
    slowest_answer_s: float = 0.0

    def run(self, seconds: float, threads: int = 4) -> None:
        """Submit for `seconds`, blocking."""
        interval = threads / self.rate_per_second
        deadline = time.monotonic() + seconds
        lock = threading.Lock()

        def submitter(offset: float):
            next_at = time.monotonic() + offset
            while next_at < deadline:
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at += interval
                self._one(lock)

        workers = [
            threading.Thread(target=submitter, args=(i * interval / threads,))
            for i in range(threads)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    def _one(self, lock: threading.Lock) -> None:
        body = run_body(self.simulate)
        started = time.monotonic()
        try:
            resp = self.stack.session.post(
                f"{self.stack.gateway}/api/v1/pipeline-runs", json=body, timeout=40
            )
            key = resp.status_code
        except requests.RequestException as exc:
            resp, key = None, type(exc).__name__
        with lock:
            self.answers[str(key)] += 1
            self.slowest_answer_s = max(self.slowest_answer_s, time.monotonic() - started)
            if resp is not None and 200 <= resp.status_code < 300:
                self.accepted.append(resp.json()["id"])


def verify(stack: Stack, run_ids: list[str], timeout: float) -> dict:
    """Wait until every accepted run is terminal and its workflow has ended (or time is up),
    then check it against the simulator's record: its outcome, and exactly one job per run;
    and against Conductor: no workflow of an ended run left running."""
    deadline = time.monotonic() + timeout
    statuses: dict[str, tuple] = {}
    left_running: set[str] = set()
    while True:
        rows = (
            stack.sql(
                "SELECT id::text, status, workbench_job_id FROM pipeline_runs "
                "WHERE id = ANY(%s::uuid[])",
                (run_ids,),
            )
            if run_ids
            else []
        )
        statuses = {r[0]: (r[1], r[2]) for r in rows}
        open_runs = [i for i in run_ids if statuses.get(i, ("?",))[0] not in TERMINAL]
        timed_out = time.monotonic() > deadline
        if not open_runs or timed_out:
            ended = [i for i in run_ids if statuses.get(i, ("?",))[0] in TERMINAL]
            left_running = stack.open_workflows(ended)
            if not left_running or timed_out:
                break
        time.sleep(1)
    jobs = stack.sim_jobs()
    duplicates = mismatched = 0
    for run_id in run_ids:
        status, job_id = statuses.get(run_id, ("MISSING", None))
        run_jobs = jobs.get(run_id, [])
        duplicates += len(run_jobs) > 1
        if status not in TERMINAL:
            continue
        truth = SIM_TO_RUN.get(run_jobs[0]["status"], "OPEN") if run_jobs else "FAILED"
        if status != truth or (run_jobs and job_id != run_jobs[0]["job_id"]):
            mismatched += 1
    terminal = sum(1 for i in run_ids if statuses.get(i, ("?",))[0] in TERMINAL)
    return {
        "runs_accepted": len(run_ids),
        "runs_terminal": terminal,
        "runs_lost": len(run_ids) - terminal + mismatched,
        "runs_mismatched": mismatched,
        "duplicate_workbench_jobs": duplicates,
        "workflows_left_running": len(left_running),
        "runs_completed": sum(1 for s, _ in statuses.values() if s == "COMPLETED"),
        "runs_failed": sum(1 for s, _ in statuses.values() if s == "FAILED"),
    }
