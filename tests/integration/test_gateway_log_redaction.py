"""No credential reaches the gateway's log, wherever a client puts it.

A gunicorn gateway of its own (gateway/gunicorn.conf.py, two workers) with known secrets,
logging to a file of its own: clients that send a token in the query string, as a Basic
user name, in the Referer or User-Agent, in the path or in a malformed request get their
answer, and the log shows those lines with the credential masked.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "log-redaction-token-0123456789abcdef"
ROTATED = "second+token/with=specials-0123456789"
WORKBENCH_TOKEN = "workbench-token-for-redaction-0123456"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gateway(database_url, conductor_url, tmp_path):
    """A running gunicorn gateway on a free port: (base URL, path of its log)."""
    port = free_port()
    log_path = tmp_path / "gateway.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CONDUCTOR_SERVER_URL": conductor_url,
        "GATEWAY_API_TOKENS": f"{TOKEN},{ROTATED}",
        "WORKBENCH_API_TOKEN": WORKBENCH_TOKEN,
        "GATEWAY_BIND": f"127.0.0.1:{port}",
        "GATEWAY_WORKERS": "2",
        "GATEWAY_THREADS": "4",
        "LOG_LEVEL": "DEBUG",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    gunicorn = Path(sys.executable).with_name("gunicorn")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(gunicorn), "-c", "gateway/gunicorn.conf.py", "gateway.wsgi:app"],
            cwd=ROOT,
            env=env,
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
        yield base, log_path, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def send_raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(200)


def test_credentials_sent_anywhere_are_masked_in_every_log_line(gateway):
    base, log_path, port = gateway
    pipelines = f"{base}/api/v1/pipelines"
    for token in (TOKEN, ROTATED):
        # A token in the query string is no credential, and is not logged.
        for name in ("access_token", "token", "api_key", "apiKey", "auth"):
            response = requests.get(pipelines, params={name: token, "limit": "5"}, timeout=10)
            assert response.status_code == 401, name
        # curl -u TOKEN: sends the token as a Basic user name, which gunicorn would log.
        assert requests.get(pipelines, auth=(token, ""), timeout=10).status_code == 401
        assert requests.get(pipelines, auth=("user", token), timeout=10).status_code == 401
        # Headers the access log shows, and the path.
        authorized = {"Authorization": f"Bearer {token}"}
        response = requests.get(
            f"{base}/api/v1/pipeline-runs/{quote(token, safe='')}",
            headers={
                **authorized,
                "Referer": f"https://app.example/?session={token}",
                "User-Agent": f"client/1.0 ({token}; {WORKBENCH_TOKEN})",
            },
            timeout=10,
        )
        assert response.status_code == 404
        # Malformed requests, which gunicorn's error log quotes.
        for raw in (
            f"GET /?access_token={token}\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
            f"{token} / HTTP/1.1\r\nHost: x\r\n\r\n",
            f"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {token}\r\n\r\n",
        ):
            assert send_raw(port, raw.encode()).startswith(b"HTTP/1.1 ")
    time.sleep(0.5)  # the access log is written after the answer

    log = log_path.read_text(errors="replace")
    for secret in (TOKEN, ROTATED, quote(ROTATED, safe=""), WORKBENCH_TOKEN):
        assert secret not in log, f"a secret ({secret[:6]}...) is in the log"
    # The lines are there, masked: a request is still traceable in the log.
    assert 'GET /api/v1/pipelines?access_token=[redacted]&limit=5 HTTP/1.1" 401' in log
    assert 'GET /api/v1/pipeline-runs/[redacted] HTTP/1.1" 404' in log
    assert '"https://app.example/?session=[redacted]"' in log
    assert "Invalid HTTP method: '[redacted]'" in log
    # No Basic-auth user name is shown in the access log's third field.
    assert all(
        line.split(" ")[2] == "-" for line in log.splitlines() if line.startswith("127.0.0.1 ")
    )
