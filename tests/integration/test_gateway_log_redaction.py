"""No credential reaches the gateway's log, wherever a client puts it.

A gunicorn gateway of its own (gateway/gunicorn.conf.py, two workers) with known secrets,
logging to a file of its own: clients that send a token in the query string, as a Basic
user name, in the Referer or User-Agent, in the path or in a malformed request get their
answer, and the log shows those lines with the credential masked.
"""

from __future__ import annotations

import socket
from urllib.parse import quote

import pytest
import requests

from tests.integration.helpers import await_true, running_gateway

TOKEN = "log-redaction-token-0123456789abcdef"
ROTATED = "second+token/with=specials-0123456789"
WORKBENCH_TOKEN = "workbench-token-for-redaction-0123456"


@pytest.fixture
def gateway(database_url, conductor_url, tmp_path):
    """A running gunicorn gateway on a free port: (base URL, path of its log, port)."""
    log_path = tmp_path / "gateway.log"
    env = {
        "DATABASE_URL": database_url,
        "CONDUCTOR_SERVER_URL": conductor_url,
        "GATEWAY_API_TOKENS": f"{TOKEN},{ROTATED}",
        "WORKBENCH_API_TOKEN": WORKBENCH_TOKEN,
        "LOG_LEVEL": "DEBUG",
    }
    with running_gateway(env, log_path) as (base, port):
        yield base, log_path, port


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

    def every_answer_logged():
        # The access log is written after the answer: 7 refusals and 1 not-found per token.
        text = log_path.read_text(errors="replace")
        done = text.count('HTTP/1.1" 401 ') >= 14 and text.count('HTTP/1.1" 404 ') >= 2
        return text if done else None

    log = await_true(every_answer_logged, 15, "the access log lines of every request")
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
