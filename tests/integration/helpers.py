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
from urllib.parse import quote, urlsplit

import requests

from batchcore.runs import model, rows


def make_run(database, parameters: dict | None = None, **extra) -> dict:
    """A PENDING run of the demo pipeline with unique prefixes."""
    with database.transaction() as cur:
        run, _ = rows.create_run(
            cur,
            model.NewRun(
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
        return rows.get_history(cur, run_id)


def fetch_run(database, run_id) -> dict:
    """The run row as stored."""
    with database.transaction() as cur:
        return rows.get_run(cur, run_id)


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

    def faults(
        self,
        *,
        run_ids=None,
        job_ids=None,
        input_path_prefixes=None,
        **faults: dict | None,
    ) -> None:
        """Arm `faults`, aimed at these runs, jobs or input prefixes only when any is given.

        The stack's own poller and workers share the simulator: a fault with a count that is
        not aimed at the test's runs can be used up by someone else's calls.
        """
        aim = {
            name: [str(value) for value in values]
            for name, values in (
                ("run_ids", run_ids),
                ("job_ids", job_ids),
                ("input_path_prefixes", input_path_prefixes),
            )
            if values is not None
        }
        spec = {kind: None if f is None else {**f, **aim} for kind, f in faults.items()}
        response = requests.post(f"{self.admin}/_sim/faults", json=spec, timeout=5)
        assert response.status_code == 200, response.text

    def clear(self) -> None:
        requests.delete(f"{self.admin}/_sim/faults", timeout=5).raise_for_status()

    def armed(self) -> dict:
        """The faults still armed, with the counts they have left."""
        resp = requests.get(f"{self.admin}/_sim/faults", timeout=5)
        resp.raise_for_status()
        return resp.json()["faults"]

    def jobs(self, run_id) -> list[dict]:
        resp = requests.get(
            f"{self.admin}/_sim/jobs", params={"pipeline_run_id": str(run_id)}, timeout=5
        )
        resp.raise_for_status()
        return resp.json()["items"]


def secret_needles(secrets: dict[str, str], tokens: tuple[str, ...] = ()) -> dict[bytes, str]:
    """The byte strings that must never be in a log, each with a name that does not reveal it:
    every secret as given and percent-encoded, and for the names in `tokens` the near-misses
    that tests send as wrong tokens (a logged near-miss gives away all but a character)."""
    found: dict[bytes, str] = {}
    for name, value in secrets.items():
        found[value.encode()] = name
        found[quote(value, safe="").encode()] = f"{name} (percent-encoded)"
    for name in tokens:
        token = secrets[name]
        for variant, value in (
            ("truncated", token[:-1]),
            ("swapped case", token.swapcase()),
            ("upper case", token.upper()),
            ("lower case", token.lower()),
        ):
            if value != token:
                found[value.encode()] = f"{name} ({variant})"
    # Shorter strings would match ordinary text by chance.
    return {needle: name for needle, name in found.items() if len(needle) >= 12}


def secret_hits(files: list[Path], needles: dict[bytes, str]) -> list[str]:
    """'file:line: secret name' for every needle found in the files."""
    hits = []
    for path in files:
        data = path.read_bytes()
        for needle, name in needles.items():
            at = data.find(needle)
            while at >= 0:
                line = data.count(b"\n", 0, at) + 1
                hits.append(f"{path}:{line}: {name}")
                at = data.find(needle, at + 1)
    return hits


def env_secrets(env: dict[str, str]) -> dict[str, str]:
    """The secrets among a service's environment variables: tokens, keys, passwords."""
    found = {}
    for name in ("WORKBENCH_API_TOKEN", "GATEWAY_SECRET_KEY", "WEBHOOK_SECRET"):
        if env.get(name):
            found[name] = env[name]
    for i, entry in enumerate(filter(None, env.get("GATEWAY_API_TOKENS", "").split(","))):
        found[f"GATEWAY_API_TOKENS[{i}]"] = entry.rpartition(":")[2].strip()
    for name, value in env.items():
        if name.endswith("DATABASE_URL") and urlsplit(value).password:
            found[f"password of {name}"] = urlsplit(value).password
    return found


ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_gateway(env: dict[str, str], log_path: Path) -> Iterator[tuple[str, int]]:
    """The real gunicorn gateway on a free port with `env` added: (base URL, port).

    When it has stopped, its log must hold none of the secrets `env` gave it.
    """
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
    hits = secret_hits([log_path], secret_needles(env_secrets(env)))
    assert not hits, "secrets in the gateway's log:\n" + "\n".join(hits[:20])
