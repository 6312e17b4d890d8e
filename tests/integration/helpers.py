"""Small helpers shared by the integration tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import requests

from batchcore import store


def make_run(database, parameters: dict | None = None, **extra) -> dict:
    """A PENDING run of the demo pipeline with unique prefixes."""
    with database.transaction() as cur:
        run, _ = store.create_run(
            cur,
            store.NewRun(
                "demo-batch",
                "BATCH",
                f"s3://in/{uuid.uuid4().hex}",
                f"s3://out/{uuid.uuid4().hex}",
                parameters or {},
                **extra,
            ),
        )
    return run


def history(database, run_id) -> list[dict]:
    """The run's audit trail, oldest first."""
    with database.transaction() as cur:
        return store.get_history(cur, run_id)


def fetch_run(database, run_id) -> dict:
    """The run row as stored."""
    with database.transaction() as cur:
        return store.get_run(cur, run_id)


def await_true(check: Callable[[], object], timeout: float, what: str, every: float = 0.1):
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


class Simulator:
    """The stack's Workbench simulator, through its admin port."""

    def __init__(self, admin_url: str):
        self.admin = admin_url.rstrip("/")

    def faults(self, **faults) -> None:
        requests.post(f"{self.admin}/_sim/faults", json=faults, timeout=5).raise_for_status()

    def clear(self) -> None:
        requests.delete(f"{self.admin}/_sim/faults", timeout=5).raise_for_status()

    def jobs(self, run_id) -> list[dict]:
        resp = requests.get(
            f"{self.admin}/_sim/jobs", params={"pipeline_run_id": str(run_id)}, timeout=5
        )
        resp.raise_for_status()
        return resp.json()["items"]
