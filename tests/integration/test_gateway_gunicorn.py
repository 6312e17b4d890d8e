"""The gateway as deployed: gunicorn with gateway/gunicorn.conf.py, several workers."""

from __future__ import annotations

import http.client
import json
import re
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

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


def test_req_5_5_413_through_gunicorn_with_content_length(gateway):
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


def test_req_5_5_413_through_gunicorn_chunked_without_content_length(gateway):
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


def test_gunicorn_serves_the_api_with_auth_and_real_conductor(gateway, conductor_url):
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


HEALTHZ_OK = {"method": "GET", "route": "/healthz", "status": "200"}
SCRAPE_OK = {"method": "GET", "route": "/metrics", "status": "200"}
BURST = 8


def served(samples, labels: dict) -> float:
    """The requests counted under `labels` among gateway_http_requests samples."""
    return sum(
        s.value for s in samples if s.name == "gateway_http_requests_total" and s.labels == labels
    )


def per_worker(metrics_dir: Path, labels: dict) -> dict[int, float]:
    """Each worker process's own count, read from its file in the multiprocess directory."""
    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        samples = [s for m in MultiProcessCollector.merge([str(path)]) for s in m.samples]
        counts[int(path.stem.removeprefix("counter_"))] = served(samples, labels)
    return counts


def healthz(base: str) -> None:
    """One GET /healthz on a connection of its own."""
    response = requests.get(f"{base}/healthz", headers={"Connection": "close", **AUTH}, timeout=10)
    assert response.status_code == 200


def scrape(base: str, labels: dict) -> float:
    """What one /metrics answer reports for `labels`, on a connection of its own."""
    text = requests.get(f"{base}/metrics", headers={"Connection": "close"}, timeout=10).text
    assert "gateway_runs_created_total" in text
    return served([s for f in text_string_to_metric_families(text) for s in f.samples], labels)


def test_gunicorn_metrics_sum_all_workers_and_logs_carry_no_token(gateway):
    base, log_path = gateway
    found = re.search(r"prometheus multiprocess directory: (\S+)", log_path.read_text())
    assert found, log_path.read_text()
    metrics_dir = Path(found.group(1))

    # Bursts of concurrent fresh connections (one at a time, one worker tends to take them
    # all) until two worker processes have each answered some.
    sent = 0
    with ThreadPoolExecutor(BURST) as pool:
        while sent < 20 or len([n for n in per_worker(metrics_dir, HEALTHZ_OK).values() if n]) < 2:
            assert sent < 40 * BURST, f"one worker answered all {sent} requests"
            list(pool.map(lambda _: healthz(base), range(BURST)))
            sent += BURST
        workers = per_worker(metrics_dir, HEALTHZ_OK)
        for pid in (pid for pid, n in workers.items() if n):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            assert "gunicorn" in cmdline

        # Scrapes until both workers have answered some: each reports every worker's requests.
        scrapes = 0
        while len([n for n in per_worker(metrics_dir, SCRAPE_OK).values() if n]) < 2:
            assert scrapes < 40 * BURST, f"one worker answered all {scrapes} scrapes"
            totals = list(pool.map(lambda _: scrape(base, HEALTHZ_OK), range(BURST)))
            scrapes += BURST
            assert set(totals) == {sum(workers.values())}, (totals, workers)
    assert sum(workers.values()) >= sent

    log = log_path.read_text()
    assert '"GET /healthz HTTP/1.1" 200' in log  # the access log is on
    assert TOKEN not in log
