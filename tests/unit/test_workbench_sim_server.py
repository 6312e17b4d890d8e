"""Tests of the simulator's configuration, its real two-port server and its entry point."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.unit.workbench_sim_support import AUTH, REPO_ROOT, Sim, job_body
from workbench_sim import ConfigError, SimConfig, SimServer, create_app

# --- configuration


def test_config_from_env_defaults_and_values(tmp_path: Path) -> None:
    config = SimConfig.from_env({"WORKBENCH_API_TOKEN": "t"})
    assert (config.host, config.port, config.admin_port) == ("127.0.0.1", 18090, 18091)
    assert (config.queue_seconds, config.run_seconds, config.job_log_path) == (0.5, 2.0, None)
    config = SimConfig.from_env(
        {
            "WORKBENCH_API_TOKEN": "t",
            "SIM_HOST": "0.0.0.0",
            "SIM_PORT": "0",
            "SIM_ADMIN_PORT": "9001",
            "SIM_QUEUE_SECONDS": "0",
            "SIM_RUN_SECONDS": "0.25",
            "SIM_JOB_LOG": str(tmp_path / "jobs.log"),
        }
    )
    assert (config.host, config.port, config.admin_port) == ("0.0.0.0", 0, 9001)
    assert (config.queue_seconds, config.run_seconds) == (0.0, 0.25)
    assert config.job_log_path == tmp_path / "jobs.log"
    assert "supersecret" not in repr(SimConfig(api_token="supersecret"))


@pytest.mark.parametrize(
    ("env", "mentions"),
    [
        ({}, "WORKBENCH_API_TOKEN"),
        ({"WORKBENCH_API_TOKEN": "  "}, "WORKBENCH_API_TOKEN"),
        ({"WORKBENCH_API_TOKEN": "t", "SIM_PORT": "http"}, "SIM_PORT"),
        ({"WORKBENCH_API_TOKEN": "t", "SIM_ADMIN_PORT": "70000"}, "SIM_ADMIN_PORT"),
        ({"WORKBENCH_API_TOKEN": "t", "SIM_RUN_SECONDS": "-1"}, "SIM_RUN_SECONDS"),
        ({"WORKBENCH_API_TOKEN": "t", "SIM_QUEUE_SECONDS": "nan"}, "SIM_QUEUE_SECONDS"),
        ({"WORKBENCH_API_TOKEN": "t", "SIM_PORT": "9000", "SIM_ADMIN_PORT": "9000"}, "differ"),
    ],
)
def test_config_rejects_bad_values(env: dict[str, str], mentions: str) -> None:
    with pytest.raises(ConfigError, match=mentions):
        SimConfig.from_env(env)


# --- the real server


@pytest.fixture
def live(tmp_path: Path):
    config = SimConfig(
        api_token=Sim.token,
        queue_seconds=0.05,
        run_seconds=0.1,
        job_log_path=tmp_path / "jobs.log",
    )
    server = SimServer(create_app(config), host="127.0.0.1", api_port=0, admin_port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _api_up(server: SimServer) -> bool:
    try:
        return requests.get(f"{server.api_url}/healthz", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def test_real_server_refuses_connections_and_reopens(live: SimServer) -> None:
    api, admin = live.api_url, live.admin_url
    assert requests.get(f"{api}/healthz", timeout=2).status_code == 200

    armed = requests.post(f"{admin}/_sim/faults", json={"refuse_connections": {"seconds": 60}})
    assert armed.status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{api}/healthz", timeout=2)
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{api}/jobs", json={}, headers=AUTH, timeout=2)
    # The admin port keeps answering, so the fault can be switched off again.
    shown = requests.get(f"{admin}/_sim/faults", timeout=2).json()["faults"]
    assert "refuse_connections" in shown

    assert requests.delete(f"{admin}/_sim/faults", timeout=2).status_code == 200
    # Reopened before the DELETE answered, on the same port.
    assert requests.get(f"{api}/healthz", timeout=2).status_code == 200
    assert live.api_url == api

    # Armed through the API port itself, and reopening on its own when the time is up.
    started = time.monotonic()
    requests.post(f"{api}/_sim/faults", json={"refuse_connections": {"seconds": 0.5}}, timeout=2)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{api}/healthz", timeout=2)
    assert _wait_until(lambda: _api_up(live))
    assert time.monotonic() - started >= 0.45


def test_real_server_keeps_trying_when_its_port_was_taken_meanwhile(live: SimServer) -> None:
    requests.post(f"{live.admin_url}/_sim/faults", json={"refuse_connections": {"seconds": 60}})
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", live.api_port))
        squatter.listen()
        # The fault is cleared even though the port cannot be reopened yet.
        assert requests.delete(f"{live.admin_url}/_sim/faults", timeout=2).status_code == 200
    assert _wait_until(lambda: _api_up(live))


def test_real_server_loses_the_submit_answer_then_retry_gets_the_job(
    live: SimServer, tmp_path: Path
) -> None:
    api, admin = live.api_url, live.admin_url
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data.txt").write_bytes(b"payload")
    body = {
        "pipeline_run_id": "run-lost",
        "pipeline": "demo",
        "input_path_prefix": (tmp_path / "in").as_uri(),
        "output_path_prefix": (tmp_path / "out").as_uri(),
        "parameters": {},
    }
    headers = {"Idempotency-Key": "run-lost", **AUTH}
    requests.post(f"{admin}/_sim/faults", json={"lose_submit_answer": {"count": 1}}, timeout=2)

    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        requests.post(f"{api}/jobs", json=body, headers=headers, timeout=5)

    jobs = requests.get(f"{admin}/_sim/jobs", params={"pipeline_run_id": "run-lost"}).json()
    assert jobs["count"] == 1
    retry = requests.post(f"{api}/jobs", json=body, headers=headers, timeout=5)
    assert retry.status_code == 200
    assert retry.json()["job_id"] == jobs["items"][0]["job_id"]
    log_lines = (tmp_path / "jobs.log").read_text().splitlines()
    assert [json.loads(line)["pipeline_run_id"] for line in log_lines] == ["run-lost"]

    # Nobody polls, yet the server's sweeper finishes the job and writes its output.
    assert _wait_until(lambda: (tmp_path / "out" / "_SUCCESS").exists())
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["files"][0]["sha256"] == hashlib.sha256(b"payload").hexdigest()
    status = requests.get(f"{api}/jobs/{retry.json()['job_id']}", headers=AUTH, timeout=2)
    assert status.json()["status"] == "SUCCEEDED"


def test_real_server_5xx_and_retry_after(live: SimServer) -> None:
    requests.post(
        f"{live.admin_url}/_sim/faults",
        json={"error_5xx": {"status": 503, "count": 1, "retry_after": 2}},
        timeout=2,
    )
    response = requests.get(f"{live.api_url}/jobs/wb-x", headers=AUTH, timeout=2)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    # The admin port serves the API too, and never with faults.
    requests.post(f"{live.admin_url}/_sim/faults", json={"error_5xx": {"rate": 1.0}}, timeout=2)
    assert requests.get(f"{live.admin_url}/jobs/wb-x", headers=AUTH, timeout=2).status_code == 404


# --- the entry point


def _sim_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIM_", "WORKBENCH_"))}
    return env | values


def test_entry_point_needs_a_token(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "workbench_sim"],
        env=_sim_env(SIM_PORT="0", SIM_ADMIN_PORT="0"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "WORKBENCH_API_TOKEN" in result.stderr


def test_entry_point_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    secret = "entry-point-secret-token"
    stderr_path = tmp_path / "stderr.log"
    env = _sim_env(
        WORKBENCH_API_TOKEN=secret,
        SIM_PORT="0",
        SIM_ADMIN_PORT="0",
        SIM_JOB_LOG=str(tmp_path / "jobs.log"),
    )
    ready = re.compile(r"api=(http://\S+) admin=(http://\S+)")
    with (
        stderr_path.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, "-m", "workbench_sim"], env=env, cwd=REPO_ROOT, stderr=stderr
        ) as proc,
    ):
        try:
            assert _wait_until(lambda: ready.search(stderr_path.read_text()), timeout=20)
            api, admin = ready.search(stderr_path.read_text()).groups()  # type: ignore[union-attr]
            headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": "run-1"}
            body = job_body("run-1")
            assert requests.post(f"{api}/jobs", json=body, headers=headers, timeout=5).ok
            assert requests.get(f"{admin}/_sim/jobs", timeout=5).json()["count"] == 1
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = stderr_path.read_text()
    assert '"POST /jobs" 201' in output
    assert secret not in output
    assert "Authorization" not in output
