"""Small helpers shared by the integration tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

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


ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_gateway(env: dict[str, str], log_path: Path) -> Iterator[tuple[str, int]]:
    """The real gunicorn gateway on a free port with `env` added: (base URL, port)."""
    port = free_port()
    full_env = {
        **os.environ,
        **env,
        "GATEWAY_BIND": f"127.0.0.1:{port}",
        "GATEWAY_WORKERS": "2",
        "GATEWAY_THREADS": "4",
    }
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    gunicorn = Path(sys.executable).with_name("gunicorn")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(gunicorn), "-c", "gateway/gunicorn.conf.py", "gateway.wsgi:app"],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        yield base, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
