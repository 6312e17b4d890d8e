"""Edges of the gateway as deployed (gunicorn, gthread): connections after a 413, and
?wait= requests that must not take every thread."""

from __future__ import annotations

import http.client
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.integration.helpers import await_true, running_gateway

TOKEN = "edges-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ONE_MIB = 1024 * 1024
# running_gateway's gunicorn: 2 workers x 4 threads.
THREADS = 2 * 4


@pytest.fixture
def gateway(database_url, conductor_url, tmp_path):
    """A running gunicorn gateway on a free port: (base URL, port)."""
    env = {
        "DATABASE_URL": database_url,
        "CONDUCTOR_SERVER_URL": conductor_url,
        "GATEWAY_API_TOKENS": TOKEN,
        "LOG_LEVEL": "INFO",
    }
    with running_gateway(env, tmp_path / "gunicorn.log") as (base, port):
        yield base, port


def test_a_413_closes_the_connection_so_a_kept_alive_client_reconnects(gateway):
    _, port = gateway
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        # Too large, and refused before the body is read (no token): neither is read.
        for status, body, headers in [
            (413, b"[" + b" " * (2 * ONE_MIB), AUTH),
            (413, b"[" + b" " * (2 * ONE_MIB), AUTH),
            (401, b"[" + b" " * (ONE_MIB // 2), {}),
        ]:
            conn.request("POST", "/api/v1/pipeline-runs", body=body, headers=headers)
            refused = conn.getresponse()
            refused.read()
            assert refused.status == status
            # The body was not read: the connection cannot carry another request.
            assert refused.getheader("Connection") == "close"
            # http.client reopens a connection the server said it closes; on one that was
            # announced kept alive it sends into the closed socket instead.
            conn.request("GET", "/api/v1/pipelines", headers=AUTH)
            listed = conn.getresponse()
            listed.read()
            assert listed.status == 200
    finally:
        conn.close()


def test_a_small_body_keeps_the_connection_alive(gateway):
    _, port = gateway
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("POST", "/api/v1/pipeline-runs", body=b"{", headers=AUTH)
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 400
        assert answer.getheader("Connection") == "keep-alive"
    finally:
        conn.close()


def post_waiting(base: str, seconds: float) -> tuple[int, float, dict]:
    """POST a run with ?wait=`seconds` on a connection of its own: (status, elapsed, body)."""
    run = {
        "pipeline": "demo-batch",
        "mode": "BATCH",
        "input_path_prefix": f"s3://edges/in/{time.monotonic_ns()}/",
        "output_path_prefix": f"s3://edges/out/{time.monotonic_ns()}/",
    }
    started = time.monotonic()
    response = requests.post(
        f"{base}/api/v1/pipeline-runs",
        params={"wait": seconds},
        json=run,
        headers={**AUTH, "Connection": "close"},
        timeout=60,
    )
    return response.status_code, time.monotonic() - started, response.json()


def stored_runs(database) -> list[dict]:
    with database.autocommit() as cur:
        cur.execute("SELECT id, status, conductor_workflow_id FROM pipeline_runs")
        return cur.fetchall()


@pytest.fixture
def terminate_workflows(database, conductor_url):
    """Terminate the workflows this test's runs started (no worker can act on them)."""
    yield
    for run in stored_runs(database):
        if run["conductor_workflow_id"]:
            requests.delete(
                f"{conductor_url}/workflow/{run['conductor_workflow_id']}",
                params={"reason": "test"},
                timeout=10,
            )


def test_waiting_requests_leave_threads_for_health_and_ordinary_requests(
    gateway, database, terminate_workflows
):
    """Runs of this test's database are never taken by the stack's workers (they read
    another database), so each of these runs stays PENDING and its ?wait= lasts."""
    base, _ = gateway
    wait = 8.0
    posts_sent = 4 * THREADS
    with ThreadPoolExecutor(posts_sent) as pool:
        posts = [pool.submit(post_waiting, base, wait) for _ in range(posts_sent)]
        await_true(
            lambda: len(stored_runs(database)) == posts_sent,
            wait / 2,
            "every POST to store its run",
        )
        started = time.monotonic()
        ready = requests.get(f"{base}/readyz", headers={"Connection": "close"}, timeout=30)
        listed = requests.get(
            f"{base}/api/v1/pipelines", headers={**AUTH, "Connection": "close"}, timeout=30
        )
        answered_in = time.monotonic() - started
        results = [post.result() for post in posts]
    assert ready.status_code == 200 and listed.status_code == 200
    assert answered_in < wait / 2, f"/readyz waited {answered_in:.1f}s behind ?wait= requests"
    # Every POST got its run; those past the bound at once, still PENDING.
    assert {status for status, _, _ in results} == {202}
    assert {body["status"] for _, _, body in results} == {"PENDING"}
    quick = [elapsed for _, elapsed, _ in results if elapsed < wait / 2]
    waited = [elapsed for _, elapsed, _ in results if elapsed >= wait]
    assert quick and waited, sorted(elapsed for _, elapsed, _ in results)
