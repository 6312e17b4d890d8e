"""The Conductor REST client (gateway and workers), against requests-mock and a closed port.

The workflow start, which does not go through requests, is tested in test_conductor_start.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NameResolutionError

from batchcore.conductor import MAX_RESPONSE_CHARS, ConductorClient, WorkflowNotStarted
from batchcore.errors import ConductorUnavailable, WorkbenchError
from batchcore.workbench import WorkbenchClient

BASE = "http://conductor.test/api"


def closed_port_url() -> str:
    """A loopback API URL nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"


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


def test_check_health_uses_its_own_timeout(client, requests_mock):
    requests_mock.get("http://conductor.test/health", json={"healthy": True})
    client.check_health(timeout=0.5)
    assert requests_mock.last_request.timeout == 0.5
    requests_mock.get("http://conductor.test/health", text="UP")
    client.check_health()  # a 200 without the usual JSON body still means it is up


def test_healthy_is_check_health_as_a_bool(client, requests_mock):
    requests_mock.get("http://conductor.test/health", json={"healthy": True})
    assert client.healthy() is True
    assert requests_mock.last_request.timeout == 2.0
    requests_mock.get("http://conductor.test/health", json={"healthy": False})
    assert client.healthy() is False
    requests_mock.get("http://conductor.test/health", status_code=503)
    assert client.healthy() is False
    requests_mock.get("http://conductor.test/health", exc=requests.ConnectionError("down"))
    assert client.healthy() is False


def test_healthy_is_false_on_a_closed_port():
    assert ConductorClient(closed_port_url(), timeout=2).healthy() is False


def test_correlated_asks_for_open_workflows_without_tasks(client, requests_mock):
    answer = [{"workflowId": "a", "status": "RUNNING"}]
    requests_mock.get(
        f"{BASE}/workflow/batch_status_poller/correlated/batch-status-poller", json=answer
    )
    assert client.correlated("batch_status_poller", "batch-status-poller") == answer
    sent = requests_mock.last_request
    assert sent.method == "GET"
    assert sent.qs == {"includeclosed": ["false"], "includetasks": ["false"]}
    assert sent.timeout == 1.5


def test_correlated_can_include_closed_workflows_and_quotes_the_path(client, requests_mock):
    requests_mock.get(f"{BASE}/workflow/w/correlated/a%2Fb%20c", json=[])
    assert client.correlated("w", "a/b c", include_closed=True) == []
    sent = requests_mock.last_request
    assert sent.path == "/api/workflow/w/correlated/a%2fb%20c"
    assert sent.qs == {"includeclosed": ["true"], "includetasks": ["false"]}


def test_get_workflow_reads_one_execution(client, requests_mock):
    requests_mock.get(f"{BASE}/workflow/wf-1", json={"workflowId": "wf-1", "status": "RUNNING"})
    assert client.get_workflow("wf-1") == {"workflowId": "wf-1", "status": "RUNNING"}
    assert requests_mock.last_request.qs == {"includetasks": ["true"]}
    client.get_workflow("wf-1", include_tasks=False)
    assert requests_mock.last_request.qs == {"includetasks": ["false"]}
    assert requests_mock.last_request.timeout == 1.5


def test_get_workflow_not_found_is_conductor_unavailable_with_the_answer(client, requests_mock):
    requests_mock.get(
        f"{BASE}/workflow/nope", status_code=404, json={"message": "No such workflow found"}
    )
    with pytest.raises(ConductorUnavailable) as caught:
        client.get_workflow("nope")
    exc = caught.value
    assert not isinstance(exc, WorkflowNotStarted)
    assert exc.message == (
        f"Conductor at {BASE} refused to read a workflow: HTTP 404 (No such workflow found)"
    )
    assert exc.details == [
        {
            "conductor_url": BASE,
            "status_code": 404,
            "response": '{"message": "No such workflow found"}',
        }
    ]


def test_complete_task_posts_the_output_map_as_the_body(client, requests_mock):
    requests_mock.post(f"{BASE}/tasks/wf-1/wait_for_job/COMPLETED", text="task-id")
    output = {"status": "COMPLETED", "workbench_job_id": "job-9", "error_message": None}
    assert client.complete_task("wf-1", "wait_for_job", "COMPLETED", output) == "task-id"
    sent = requests_mock.last_request
    assert sent.method == "POST"
    assert sent.path == "/api/tasks/wf-1/wait_for_job/completed"
    assert sent.headers["Content-Type"] == "application/json"
    assert json.loads(sent.body) == output
    assert sent.timeout == 1.5


def test_complete_task_of_a_task_not_pending_returns_no_task_id(client, requests_mock):
    # Conductor 3.32 answers 200 with an empty body and completes nothing.
    requests_mock.post(f"{BASE}/tasks/wf-1/wait_for_job/COMPLETED", text="")
    assert client.complete_task("wf-1", "wait_for_job", "COMPLETED", {}) == ""


def test_complete_task_refused_names_the_task_and_keeps_a_bounded_answer(client, requests_mock):
    requests_mock.post(
        f"{BASE}/tasks/wf-1/wait_for_job/COMPLETED", status_code=409, text="y" * 5000
    )
    with pytest.raises(ConductorUnavailable) as caught:
        client.complete_task("wf-1", "wait_for_job", "COMPLETED", {})
    exc = caught.value
    assert exc.message.startswith(
        f"Conductor at {BASE} refused to complete task wait_for_job: HTTP 409 (yyy"
    )
    assert len(exc.details[0]["response"]) == MAX_RESPONSE_CHARS


def test_terminate_deletes_the_workflow_with_the_reason(client, requests_mock):
    requests_mock.delete(f"{BASE}/workflow/wf-1", status_code=200)
    assert client.terminate("wf-1", "no longer needed") is None
    sent = requests_mock.last_request
    assert sent.method == "DELETE"
    assert sent.qs == {"reason": ["no longer needed"]}
    assert sent.timeout == 1.5


def test_terminate_correlated_skips_entries_without_an_id(client, requests_mock):
    requests_mock.get(f"{BASE}/workflow/w/correlated/run-1", json=[{"status": "RUNNING"}])
    assert client.terminate_correlated("w", "run-1", "gave up") == []
    assert len(requests_mock.request_history) == 1


def test_terminate_correlated_fails_as_conductor_unavailable(client, requests_mock):
    requests_mock.get(f"{BASE}/workflow/w/correlated/run-1", status_code=500)
    with pytest.raises(ConductorUnavailable, match="HTTP 500"):
        client.terminate_correlated("w", "run-1", "gave up")


def test_calls_on_a_closed_port_name_the_url_the_cause_and_the_call():
    url = closed_port_url()
    conductor = ConductorClient(url, timeout=2)
    with pytest.raises(ConductorUnavailable) as caught:
        conductor.correlated("w", "run-1")
    exc = caught.value
    assert exc.message == f"Conductor at {url} unreachable: connection refused (find w workflows)"
    assert exc.details[0]["conductor_url"] == url
    assert exc.details[0]["exception"].startswith("ConnectionError")


@pytest.mark.parametrize(
    ("exc", "cause"),
    [
        (requests.ReadTimeout("slow"), "did not answer within 1.5 s (terminate a workflow)"),
        (
            requests.ConnectTimeout("syn"),
            "unreachable: no connection within 1.5 s (terminate a workflow)",
        ),
        (
            requests.ConnectionError("Connection reset by peer"),
            "unreachable: connection reset (terminate a workflow)",
        ),
        (
            requests.ConnectionError("Name or service not known"),
            "unreachable: its host name could not be resolved (DNS) (terminate a workflow)",
        ),
        (
            requests.exceptions.ChunkedEncodingError("cut"),
            "unreachable: the connection broke off in the middle of its answer (terminate",
        ),
        (requests.TooManyRedirects("loop"), "could not be called: TooManyRedirects"),
    ],
)
def test_transport_failures_are_conductor_unavailable(client, requests_mock, exc, cause):
    requests_mock.delete(f"{BASE}/workflow/wf-1", exc=exc)
    with pytest.raises(ConductorUnavailable) as caught:
        client.terminate("wf-1", "why")
    assert caught.value.message.startswith(f"Conductor at {BASE} {cause}")
    assert not isinstance(caught.value, WorkflowNotStarted)


def test_each_thread_gets_its_own_session_and_close_closes_them_all(client, requests_mock):
    requests_mock.get(f"{BASE}/workflow/wf-1", json={})
    sessions = []

    def call():
        client.get_workflow("wf-1")
        sessions.append(client._session())

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    call()
    assert len({id(s) for s in sessions}) == 4
    closed = []
    for session in sessions:
        session.close = lambda s=session: closed.append(s)
    client.close()
    assert len(closed) == 4
    assert client._session() not in sessions  # a fresh session after close


def test_a_dns_failure_is_worded_as_the_workbench_client_words_it(client, requests_mock):
    """One description of failed connections: the wrapped urllib3 error, not the text, decides."""
    reason = NameResolutionError("conductor.test", None, socket.gaierror(-2, "Name unknown"))
    failure = requests.ConnectionError(MaxRetryError(None, "/api/workflow", reason))
    requests_mock.post(f"{BASE}/workflow", exc=failure)
    requests_mock.get("http://workbench.test/jobs/j1", exc=failure)
    with pytest.raises(WorkflowNotStarted) as conductor_failed:
        client.start_workflow("w", 1, "run-1", {})
    with (
        WorkbenchClient("http://workbench.test", "token-0123456789abcdef") as workbench,
        pytest.raises(WorkbenchError) as workbench_failed,
    ):
        workbench.get_job("j1")
    phrase = "unreachable: its host name could not be resolved (DNS)"
    assert conductor_failed.value.message == f"Conductor at {BASE} {phrase}"
    assert workbench_failed.value.message == f"The Workbench API is {phrase}"


def test_decide_asks_conductor_to_evaluate_the_workflow_once(client, requests_mock):
    requests_mock.put(f"{BASE}/workflow/decide/wf%2F1", status_code=200, text="")
    assert client.decide("wf/1") is None
    assert requests_mock.last_request.method == "PUT"
    requests_mock.put(f"{BASE}/workflow/decide/wf-2", status_code=500, json={"message": "boom"})
    with pytest.raises(ConductorUnavailable, match="decide a workflow: HTTP 500"):
        client.decide("wf-2")


def test_a_failed_health_check_says_why_in_the_shared_wording():
    url = closed_port_url()
    with pytest.raises(ConductorUnavailable) as caught:
        ConductorClient(url).check_health(timeout=1)
    root = url.removesuffix("/api")
    assert (
        caught.value.message
        == f"Conductor at {root} unreachable: connection refused (health check)"
    )
