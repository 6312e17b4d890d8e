"""A Workbench simulator of the benchmark's own (own ports, own faults, quiet log)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

from .common import PY, Child, free_port, start_child, token, wait_http

# The job mix of a sweep: most runs do not change between two polls.
QUEUED_SHARE, RUNNING_SHARE = 0.8, 0.1  # the rest have SUCCEEDED
FOREVER = 86_400


@dataclass
class Simulator:
    child: Child
    api_url: str
    admin_url: str
    token: str

    def faults(self, **faults) -> None:
        requests.post(f"{self.admin_url}/_sim/faults", json=faults, timeout=5).raise_for_status()

    def clear_faults(self) -> None:
        requests.delete(f"{self.admin_url}/_sim/faults", timeout=5).raise_for_status()

    def stats(self) -> dict:
        return requests.get(f"{self.admin_url}/_sim/stats", timeout=5).json()

    def stop(self) -> None:
        self.child.stop()


def start(log_dir: Path) -> Simulator:
    """`python -m workbench_sim` on free ports, logging warnings only (no line per request)."""
    api, admin, tok = free_port(), free_port(), token()
    child = start_child(
        "workbench-sim",
        [PY, "-m", "workbench_sim"],
        {
            "WORKBENCH_API_TOKEN": tok,
            "SIM_PORT": str(api),
            "SIM_ADMIN_PORT": str(admin),
            "LOG_LEVEL": "WARNING",
        },
        log_dir,
    )
    sim = Simulator(child, f"http://127.0.0.1:{api}", f"http://127.0.0.1:{admin}", tok)
    wait_http(f"{sim.admin_url}/healthz", 30, "the benchmark's simulator")
    return sim


def simulate_for(index: int, count: int) -> dict:
    """parameters.simulate of job `index`: QUEUED for a day, RUNNING for a day, or done."""
    if index < count * QUEUED_SHARE:
        return {"queue_seconds": FOREVER}
    if index < count * (QUEUED_SHARE + RUNNING_SHARE):
        return {"queue_seconds": 0, "duration_seconds": FOREVER}
    return {"queue_seconds": 0, "duration_seconds": 0}


def create_jobs(sim: Simulator, count: int, workers: int = 16) -> list[tuple[str, str]]:
    """`count` jobs through the admin port (never faulted); [(run_id, job_id)] in order."""
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=workers))
    headers = {"Authorization": f"Bearer {sim.token}"}

    def one(index: int) -> tuple[str, str]:
        run_id = str(uuid.uuid4())
        body = {
            "pipeline_run_id": run_id,
            "pipeline": "demo-batch",
            "input_path_prefix": f"s3://bench/in/{index}/",
            "output_path_prefix": f"s3://bench/out/{index}/",
            "parameters": {"simulate": simulate_for(index, count)},
        }
        resp = session.post(
            f"{sim.admin_url}/jobs",
            json=body,
            headers={**headers, "Idempotency-Key": run_id},
            timeout=30,
        )
        resp.raise_for_status()
        return run_id, resp.json()["job_id"]

    with ThreadPoolExecutor(workers) as pool:
        jobs = list(pool.map(one, range(count)))
    session.close()
    return jobs
