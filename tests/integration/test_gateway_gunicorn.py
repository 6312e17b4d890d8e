"""The gateway as deployed: gunicorn with gateway/gunicorn.conf.py, several workers."""

from __future__ import annotations

import http.client
import json
import re
import socket

import pytest
import requests

from tests.integration.helpers import running_gateway

TOKEN = "gunicorn-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ONE_MIB = 1024 * 1024


@pytest.fixture
def gateway(database_url, conductor_url, tmp_path):
    """A running gunicorn gateway on a free port: (base URL, path of its log)."""
    log_path = tmp_path / "gunicorn.log"
    env = {
        "DATABASE_URL": database_url,
        "CONDUCTOR_SERVER_URL": conductor_url,
        "GATEWAY_API_TOKENS": TOKEN,
        "LOG_LEVEL": "INFO",
    }
    with running_gateway(env, log_path) as (base, _port):
        yield base, log_path


def raw_request(port: int, head: str, chunks: list[bytes]) -> tuple[int, dict]:
    """Send a hand-made request (head, then body pieces) and read the one answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(head.encode("latin-1"))
        for chunk in chunks:
            sock.sendall(chunk)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def test_req_413_through_gunicorn_with_content_length(gateway):
    base, _ = gateway
    head = (
        "POST /api/v1/pipeline-runs HTTP/1.1\r\nHost: gateway\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {2 * ONE_MIB}\r\n\r\n"
    )
    # The length alone is refused: no body byte needs to be sent.
    status, payload = raw_request(port_of(base), head, [])
    assert status == 413
    assert payload["error"]["code"] == "payload_too_large"


def test_req_413_through_gunicorn_chunked_without_content_length(gateway):
    base, _ = gateway
    head = (
        "POST /api/v1/pipeline-runs HTTP/1.1\r\nHost: gateway\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b" " * 65536
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece)] * (ONE_MIB // len(piece) + 1)
    status, payload = raw_request(port_of(base), head, [*chunks, b"0\r\n\r\n"])
    assert status == 413
    assert payload["error"]["code"] == "payload_too_large"


def test_req_gunicorn_serves_the_api_with_auth_and_real_conductor(gateway, conductor_url):
    base, _ = gateway
    assert requests.get(f"{base}/api/v1/pipelines", timeout=10).status_code == 401
    assert requests.get(f"{base}/readyz", timeout=10).status_code == 200
    run = {
        "pipeline": "demo-batch",
        "mode": "BATCH",
        "input_path_prefix": "s3://bucket/in/",
        "output_path_prefix": "s3://bucket/out/",
    }
    response = requests.post(f"{base}/api/v1/pipeline-runs", json=run, headers=AUTH, timeout=30)
    assert response.status_code == 202, response.text
    workflow_id = response.json()["conductor_workflow_id"]
    try:
        assert response.headers["Location"].endswith(response.json()["id"])
        fetched = requests.get(f"{base}{response.headers['Location']}", headers=AUTH, timeout=10)
        assert fetched.json()["id"] == response.json()["id"]
    finally:
        requests.delete(
            f"{conductor_url}/workflow/{workflow_id}", params={"reason": "test"}, timeout=10
        )


def test_req_gunicorn_metrics_sum_all_workers_and_logs_carry_no_token(gateway):
    base, log_path = gateway
    hits = 30
    for _ in range(hits):
        # A fresh connection each time, so that both workers take some of them.
        requests.get(f"{base}/healthz", headers={"Connection": "close", **AUTH}, timeout=10)
    pattern = re.compile(
        r'^gateway_http_requests_total\{method="GET",route="/healthz",status="200"\} (\S+)$',
        re.MULTILINE,
    )
    for _ in range(4):
        text = requests.get(f"{base}/metrics", headers={"Connection": "close"}, timeout=10).text
        match = pattern.search(text)
        assert match, text[:2000]
        # Whichever worker answers the scrape reports every worker's requests.
        assert float(match.group(1)) >= hits
    assert "gateway_runs_created_total" in text

    log = log_path.read_text()
    assert "prometheus multiprocess directory" in log
    assert '"GET /healthz HTTP/1.1" 200' in log  # the access log is on
    assert TOKEN not in log
