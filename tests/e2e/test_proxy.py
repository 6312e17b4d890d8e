"""Issue 12.13: the buffering proxy (nginx) in front of the gateway, through GATEWAY_URL.

Half-open clients no longer hold the gateway's threads; what the proxy answers by itself keeps
the API's error shape; its log and the gateway's see each client, and no query string.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from stack import proxy
from tests.e2e.conftest import run_body
from tests.integration.helpers import await_true, free_port

HALF_OPEN = 120
MIB = 1024 * 1024


def assert_error_shape(resp: requests.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code and body["error"]["message"]


def still_open(sock: socket.socket) -> bool:
    """True while the peer has neither closed nor answered the connection."""
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


@pytest.fixture
def half_open(stack_env):
    """HALF_OPEN connections to GATEWAY_URL that sent part of their headers and stopped."""
    address = urlsplit(stack_env["GATEWAY_URL"])
    sockets = []
    try:
        for _ in range(HALF_OPEN):
            sock = socket.create_connection((address.hostname, address.port), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            sock.setblocking(False)  # still_open() looks without waiting
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def test_issue_12_13_half_open_clients_leave_health_and_posts_answering(api, half_open):
    # Without the proxy, gunicorn gave each of these a thread until its headers came: nothing
    # answered, /healthz included, until they closed. Each request here must succeed in 1 s.
    health = requests.get(f"{api.base}/healthz", timeout=1)
    assert health.status_code == 200, health.text
    posted = api.session.post(f"{api.base}/api/v1/pipeline-runs", json=run_body(), timeout=1)
    assert posted.status_code == 202, posted.text
    assert all(still_open(sock) for sock in half_open), "the slow clients were still there"
    # The proxy drops them after its header timeout, without a word to the gateway.
    await_true(
        lambda: not any(still_open(sock) for sock in half_open),
        proxy.CLIENT_TIMEOUT_SECONDS + 20,
        "the proxy to close the half-open connections",
        every=0.5,
    )


def test_issue_12_13_a_body_over_1_mib_gets_the_proxy_413_in_the_api_shape(api):
    with requests.Session() as session:
        session.headers.update(api.session.headers)
        too_large = session.post(
            f"{api.base}/api/v1/pipeline-runs",
            data=b" " * (MIB + 1),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert_error_shape(too_large, 413, "payload_too_large")
        assert too_large.headers["Connection"] == "close"
        # A kept-alive client reconnects after the close and goes on.
        after = session.get(f"{api.base}/healthz", timeout=10)
        assert after.status_code == 200


@contextlib.contextmanager
def second_proxy(directory: Path, upstream_port: int):
    """A proxy of the stack's own configuration on a free port, to `upstream_port`."""
    port = free_port()
    conf = proxy.write_config_to(directory, port, upstream_port)
    log = (directory / "nginx.log").open("w")
    process = subprocess.Popen(proxy.server_command(conf), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def listening() -> bool:
        assert process.poll() is None, (directory / "nginx.log").read_text()
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return True
        return False

    try:
        await_true(listening, 20, "the second proxy to listen")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def test_issue_12_13_a_gateway_that_is_down_gets_the_proxy_502_in_the_api_shape(tmp_path):
    with second_proxy(tmp_path, free_port()) as base:  # nothing listens upstream
        for method, path in (
            ("GET", "/healthz"),
            ("POST", "/api/v1/pipeline-runs"),
            ("TRACE", "/"),
        ):
            resp = requests.request(method, f"{base}{path}", json={}, timeout=10)
            assert_error_shape(resp, 502, "bad_gateway")
            assert resp.headers["Retry-After"] == str(proxy.RETRY_AFTER_SECONDS)


def test_issue_12_13_trace_which_nginx_refuses_itself_gets_the_gateways_answer(api):
    # nginx's own 405 is an HTML page without Allow; the gateway's names the route's methods.
    resp = requests.request("TRACE", f"{api.base}/healthz", timeout=10)
    assert_error_shape(resp, 405, "method_not_allowed")
    assert resp.headers["Allow"] == "GET, HEAD, OPTIONS"


def await_log_line(path: Path, needle: str) -> str:
    def line() -> str | None:
        text = path.read_text(errors="replace") if path.exists() else ""
        return next((ln for ln in text.splitlines() if needle in ln), None)

    return await_true(line, 20, f"a line with {needle} in {path.name}", every=0.2)


def test_issue_12_13_logs_name_the_client_and_no_query_string(api, stack_env):
    marker = f"proxy-log-{uuid.uuid4().hex}"
    secret = f"secret-{uuid.uuid4().hex}"
    resp = requests.get(
        f"{api.base}/api/v1/pipeline-runs/{marker}",
        params={"access_token": secret},
        headers={"Cookie": f"session={secret}", "X-Forwarded-For": "203.0.113.9"},
        timeout=10,
    )
    assert resp.status_code == 401, resp.text
    logs = Path(stack_env["STACK_DIR"]) / "logs"
    proxy_line = await_log_line(logs / "proxy.log", marker)
    gateway_line = await_log_line(logs / "gateway.log", marker)
    for line in (proxy_line, gateway_line):
        assert secret not in line, line
        # The proxy replaces what the client claimed with the address it saw.
        assert "203.0.113.9" not in line and "127.0.0.1" in line, line
