"""Where the Workbench token can go: only to WORKBENCH_API_URL, never along a redirect.

Real HTTP servers on loopback (each in its own thread): the configured Workbench answers
redirects to a second server, which must never be contacted, let alone see the token.
"""

from __future__ import annotations

import ast
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from batchcore.errors import WorkbenchError
from batchcore.workbench import WorkbenchClient

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "workbench-secret-token-0123456789"


class Recorder(BaseHTTPRequestHandler):
    """Records (method, path, headers); answers what the server's `answer` says."""

    protocol_version = "HTTP/1.1"

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.command, self.path, dict(self.headers), body))
        status, headers, payload = self.server.answer(self)
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, *args):
        pass


def serve(answer):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.seen = []
    server.answer = answer
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.02},
        name="loopback-http",
        daemon=True,
    )
    thread.start()
    return server, thread


@pytest.fixture
def elsewhere():
    """The server a redirect points to: it would accept anything."""

    def accept(handler):
        if handler.command == "POST":
            return 201, {}, {"job_id": "stolen", "status": "QUEUED"}
        return 200, {}, {"job_id": handler.path.rsplit("/", 1)[-1], "status": "RUNNING"}

    server, thread = serve(accept)
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def redirecting(elsewhere):
    """The configured Workbench, answering every call with the status in `.status`."""
    target = f"http://127.0.0.1:{elsewhere.server_address[1]}"

    def redirect(handler):
        return handler.server.status, {"Location": target + handler.path}, {}

    server, thread = serve(redirect)
    server.status = 302
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def base_of(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed_so_the_token_goes_nowhere_else(redirecting, elsewhere, status):
    redirecting.status = status
    client = WorkbenchClient(base_of(redirecting), TOKEN, connect_timeout=2, read_timeout=5)
    try:
        with pytest.raises(WorkbenchError) as submitted:
            client.submit_job("run-1", "demo-batch", "s3://b/in", "s3://b/out", {})
        with pytest.raises(WorkbenchError) as polled:
            client.get_job("job-1")
    finally:
        client.close()
    for raised in (submitted.value, polled.value):
        assert raised.kind == "redirect"
        assert not raised.transient
        assert TOKEN not in raised.message
        assert TOKEN not in repr(raised.details)
    # The configured Workbench got both calls, with the token ...
    assert [(method, path) for method, path, _, _ in redirecting.seen] == [
        ("POST", "/jobs"),
        ("GET", "/jobs/job-1"),
    ]
    assert all(h["Authorization"] == f"Bearer {TOKEN}" for _, _, h, _ in redirecting.seen)
    # ... and the server it pointed to was never contacted at all.
    assert elsewhere.seen == []


@pytest.mark.parametrize(
    "job_id",
    [
        "{elsewhere}/jobs/x",
        "//127.0.0.1:{port}/jobs/x",
        "@127.0.0.1:{port}",
        "../../../jobs",
        "x?redirect={elsewhere}",
        "x#{elsewhere}",
    ],
)
def test_a_job_id_cannot_point_the_status_call_elsewhere(elsewhere, job_id):
    """The job id comes from the Workbench's answer; it stays one path segment."""
    job_id = job_id.format(elsewhere=base_of(elsewhere), port=elsewhere.server_address[1])

    def not_found(handler):
        return 404, {}, {"error": "no such job"}

    workbench, thread = serve(not_found)
    client = WorkbenchClient(base_of(workbench), TOKEN, connect_timeout=2, read_timeout=5)
    try:
        with pytest.raises(WorkbenchError) as raised:
            client.get_job(job_id)
    finally:
        client.close()
        workbench.shutdown()
        workbench.server_close()
        thread.join(timeout=5)
    assert raised.value.kind == "not_found"
    [(method, path, _, _)] = workbench.seen
    assert method == "GET"
    assert path.startswith("/jobs/") and path.count("/") == 2, path
    assert elsewhere.seen == []


def workbench_client_constructions() -> list[tuple[str, str]]:
    """(file, first argument) of every WorkbenchClient(...) in the service's code."""
    found = []
    for package in ("batchcore", "conductor_workers", "gateway", "scripts"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", getattr(node.func, "attr", None))
                    == "WorkbenchClient"
                ):
                    first = node.args[0] if node.args else node.keywords[0].value
                    found.append((str(path.relative_to(ROOT)), ast.unparse(first)))
    return found


def test_the_workbench_url_comes_only_from_the_settings():
    # One place builds the client, from the validated settings (the environment).
    assert workbench_client_constructions() == [
        ("conductor_workers/resources.py", "cfg.workbench_api_url")
    ]


def test_the_workers_client_uses_workbench_api_url_from_the_environment(monkeypatch):
    from conductor_workers import resources

    monkeypatch.setenv("DATABASE_URL", "postgresql://u@127.0.0.1:9/db")
    monkeypatch.setenv("CONDUCTOR_SERVER_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("WORKBENCH_API_URL", "http://workbench.example:8443/base/")
    monkeypatch.setenv("WORKBENCH_API_TOKEN", TOKEN)
    resources.settings.cache_clear()
    resources.workbench.cache_clear()
    try:
        client = resources.workbench()
        assert client.base_url == "http://workbench.example:8443/base"
        assert TOKEN not in repr(client)
    finally:
        resources.settings.cache_clear()
        resources.workbench.cache_clear()
