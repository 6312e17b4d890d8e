"""The gateway's Conductor REST client, against requests-mock and a closed port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import requests

from batchcore.errors import ConductorUnavailable
from gateway.conductor_client import MAX_RESPONSE_CHARS, ConductorClient, WorkflowNotStarted

BASE = "http://conductor.test/api"


@pytest.fixture
def client():
    return ConductorClient(BASE, timeout=1.5)


def test_gateway_does_not_import_the_conductor_sdk():
    # The SDK switches multiprocessing to spawn on import, which gunicorn must not inherit.
    code = (
        "import sys, multiprocessing, gateway.wsgi\n"
        "assert not [m for m in sys.modules if m.startswith('conductor')], 'SDK imported'\n"
        "print(multiprocessing.get_start_method())\n"
    )
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://unused@127.0.0.1:9/unused",
        "GATEWAY_API_TOKENS": "a-token-of-sixteen-chars-or-more",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "fork"


def test_start_workflow_posts_the_contract_body_and_returns_the_text_id(client, requests_mock):
    requests_mock.post(
        f"{BASE}/workflow", text="3f2a-wf-id", headers={"Content-Type": "text/plain"}
    )
    workflow_id = client.start_workflow(
        "batch_pipeline_run", 1, "run-1", {"pipeline_run_id": "run-1"}
    )
    assert workflow_id == "3f2a-wf-id"
    sent = requests_mock.last_request
    assert sent.timeout == 1.5
    assert json.loads(sent.body) == {
        "name": "batch_pipeline_run",
        "version": 1,
        "correlationId": "run-1",
        "input": {"pipeline_run_id": "run-1"},
    }


def test_start_workflow_http_error_keeps_status_and_a_bounded_response(client, requests_mock):
    body = {"status": 404, "message": "No such workflow defined", "filler": "x" * 5000}
    requests_mock.post(f"{BASE}/workflow", status_code=404, json=body)
    with pytest.raises(WorkflowNotStarted) as caught:
        client.start_workflow("nope", 1, "run-1", {})
    exc = caught.value
    assert isinstance(exc, ConductorUnavailable)
    assert exc.status_code == 404
    assert len(exc.response) == MAX_RESPONSE_CHARS
    assert "HTTP 404" in exc.message and "No such workflow defined" in exc.message
    assert exc.message.startswith(f"Conductor at {BASE} ")
    assert not exc.maybe_started
    details = exc.error_details()
    assert set(details) == {"conductor_url", "status_code", "response"}


def test_start_workflow_connection_refused_names_url_and_cause():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    with pytest.raises(WorkflowNotStarted) as caught:
        ConductorClient(url, timeout=2).start_workflow("w", 1, "run-1", {})
    exc = caught.value
    assert exc.message == f"Conductor at {url} unreachable: connection refused"
    assert exc.status_code is None and exc.exception.startswith("ConnectionError")
    assert not exc.maybe_started
    assert set(exc.error_details()) == {"conductor_url", "exception"}


def test_start_workflow_read_timeout_may_have_started_it(client, requests_mock):
    requests_mock.post(f"{BASE}/workflow", exc=requests.ReadTimeout("slow"))
    with pytest.raises(WorkflowNotStarted) as caught:
        client.start_workflow("w", 1, "run-1", {})
    assert caught.value.maybe_started
    assert "did not answer within 1.5 s" in caught.value.message


def test_start_workflow_without_an_id_in_the_answer_fails(client, requests_mock):
    requests_mock.post(f"{BASE}/workflow", text="")
    with pytest.raises(WorkflowNotStarted, match="without a workflow id"):
        client.start_workflow("w", 1, "run-1", {})


def test_terminate_correlated_terminates_each_running_workflow(client, requests_mock):
    requests_mock.get(
        f"{BASE}/workflow/w/correlated/run-1",
        json=[{"workflowId": "a"}, {"workflowId": "b"}],
    )
    requests_mock.delete(f"{BASE}/workflow/a", status_code=200)
    requests_mock.delete(f"{BASE}/workflow/b", status_code=200)
    assert client.terminate_correlated("w", "run-1", "gave up") == ["a", "b"]
    assert requests_mock.request_history[0].qs["includeclosed"] == ["false"]
    assert requests_mock.last_request.qs["reason"] == ["gave up"]


def test_check_health_reads_the_server_root(client, requests_mock):
    requests_mock.get("http://conductor.test/health", json={"healthy": True})
    client.check_health()
    requests_mock.get("http://conductor.test/health", json={"healthy": False})
    with pytest.raises(ConductorUnavailable, match="unhealthy"):
        client.check_health()
    requests_mock.get("http://conductor.test/health", status_code=500)
    with pytest.raises(ConductorUnavailable, match="HTTP 500"):
        client.check_health()
    requests_mock.get("http://conductor.test/health", exc=requests.ConnectionError("down"))
    with pytest.raises(ConductorUnavailable, match="unreachable"):
        client.check_health()
