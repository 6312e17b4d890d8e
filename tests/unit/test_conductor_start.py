"""The workflow start (the gateway's one Conductor call per POST), against a loopback server.

It goes over a kept-alive http.client connection per thread (batchcore.kept_alive), not
requests, unless a proxy is configured for the server.
"""

from __future__ import annotations

import gc
import json
import socket
import ssl
import subprocess
import threading
from collections import deque

import pytest
import requests_mock

from batchcore.conductor import MAX_RESPONSE_CHARS, ConductorClient, WorkflowNotStarted
from batchcore.errors import ConductorUnavailable

from .scripted_http import Answer, ScriptedServer


@pytest.fixture
def server():
    with ScriptedServer() as srv:
        yield srv


@pytest.fixture
def client(server):
    conductor = ConductorClient(server.url, timeout=1.5)
    yield conductor
    conductor.close()


def start(client: ConductorClient) -> str:
    return client.start_workflow("batch_pipeline_run", 1, "run-1", {"pipeline_run_id": "run-1"})


def test_a_start_posts_the_contract_body_and_returns_the_text_id(client, server):
    server.answers[0] = Answer(body="3f2a-wf-id")
    assert start(client) == "3f2a-wf-id"
    (seen,) = server.seen
    assert (seen.method, seen.path) == ("POST", "/api/workflow")
    assert seen.headers["Content-Type"] == "application/json"
    assert json.loads(seen.body) == {
        "name": "batch_pipeline_run",
        "version": 1,
        "correlationId": "run-1",
        "input": {"pipeline_run_id": "run-1"},
    }


def test_starts_one_after_another_reuse_one_connection_and_concurrent_ones_do_not_share(
    client, server
):
    start(client)
    start(client)
    assert server.seen[0].client_port == server.seen[1].client_port
    # Each answer waits until all three requests are in: they are in flight at once.
    server.answers[0] = Answer(together=threading.Barrier(3))
    threads = [threading.Thread(target=start, args=(client,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({seen.client_port for seen in server.seen[2:]}) == 3


def test_a_client_dropped_without_close_leaves_no_socket_open(server):
    dropped = ConductorClient(server.url, timeout=1.5)
    start(dropped)
    del dropped
    gc.collect()  # a socket left to the collector would raise ResourceWarning (an error here)
    assert server.closed.wait(5)


def test_a_connection_the_server_closed_while_idle_is_replaced_not_failed(client, server):
    server.answers = deque([Answer(close_after=True), Answer()])
    start(client)
    assert server.closed.wait(5)
    assert start(client) == "wf-1"
    assert server.seen[0].client_port != server.seen[1].client_port


def test_an_answer_saying_connection_close_closes_it(client, server):
    server.answers = deque([Answer(connection_close=True), Answer()])
    start(client)
    start(client)
    assert server.seen[0].client_port != server.seen[1].client_port


def test_an_http_error_keeps_status_conductors_message_and_a_bounded_response(client, server):
    body = json.dumps({"status": 404, "message": "No such workflow defined", "x": "x" * 5000})
    server.answers[0] = Answer(status=404, body=body, content_type="application/json")
    with pytest.raises(WorkflowNotStarted) as caught:
        start(client)
    exc = caught.value
    assert isinstance(exc, ConductorUnavailable)
    assert exc.status_code == 404 and len(exc.response) == MAX_RESPONSE_CHARS
    assert exc.message == (
        f"Conductor at {client.base_url} refused to start workflow batch_pipeline_run v1: "
        "HTTP 404 (No such workflow defined)"
    )
    assert not exc.maybe_started
    assert set(exc.error_details()) == {"conductor_url", "status_code", "response"}
    assert start_after_error_still_works(client, server)


def start_after_error_still_works(client: ConductorClient, server: ScriptedServer) -> bool:
    server.answers[0] = Answer(body="wf-2")
    return start(client) == "wf-2"


def test_an_answer_without_an_id_fails_and_may_have_started_it(client, server):
    server.answers[0] = Answer(body=" \n")
    with pytest.raises(WorkflowNotStarted, match="answered HTTP 200 without a workflow id") as c:
        start(client)
    assert c.value.maybe_started


def test_a_json_quoted_id_is_unquoted(client, server):
    server.answers[0] = Answer(body='"3f2a-wf-id"\n', content_type="application/json")
    assert start(client) == "3f2a-wf-id"


def test_no_answer_in_time_may_have_started_it(server):
    server.answers[0] = Answer(delay=1.0)
    slow = ConductorClient(server.url, timeout=0.3)
    with pytest.raises(WorkflowNotStarted) as caught:
        start(slow)
    assert caught.value.maybe_started
    assert caught.value.message == f"Conductor at {server.url} did not answer within 0.3 s"
    assert caught.value.exception.startswith("TimeoutError")


def test_a_refused_connection_names_the_url_and_the_cause():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
    with pytest.raises(WorkflowNotStarted) as caught:
        start(ConductorClient(url, timeout=2))
    exc = caught.value
    assert exc.message == f"Conductor at {url} unreachable: connection refused"
    assert exc.status_code is None and exc.exception.startswith("ConnectionRefusedError")
    assert not exc.maybe_started
    assert set(exc.error_details()) == {"conductor_url", "exception"}


def test_no_connection_in_time_did_not_start_it(monkeypatch, client):
    def no_syn_ack(*args, **kwargs):
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", no_syn_ack)
    with pytest.raises(WorkflowNotStarted) as caught:
        start(client)
    assert not caught.value.maybe_started
    assert caught.value.message == (
        f"Conductor at {client.base_url} unreachable: no connection within 1.5 s"
    )


def test_a_server_that_hangs_up_without_answering_is_unreachable():
    with socket.socket() as sock:  # a server that accepts, reads, and closes
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"

        def hang_up():
            conn, _ = sock.accept()
            conn.recv(65536)
            conn.close()

        thread = threading.Thread(target=hang_up)
        thread.start()
        with pytest.raises(WorkflowNotStarted) as caught:
            start(ConductorClient(url, timeout=2))
        thread.join()
    # a FIN gives "closed without an answer", a RST "connection reset", whichever comes first
    assert caught.value.message in (
        f"Conductor at {url} unreachable: the connection closed without an answer",
        f"Conductor at {url} unreachable: connection reset",
    )


def test_a_start_does_not_read_the_environment(monkeypatch, client, server):
    monkeypatch.setenv("HTTP_PROXY", "http://unreachable.invalid:1")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert start(client) == "wf-1"


def test_with_a_proxy_for_the_server_the_start_goes_through_requests_and_the_proxy(
    monkeypatch,
):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = ConductorClient("http://conductor.example:8080/api", timeout=1.5)
    with requests_mock.Mocker() as mocked:
        mocked.post("http://conductor.example:8080/api/workflow", text="wf-9")
        assert start(client) == "wf-9"
        assert mocked.last_request.proxies.get("http") == "http://proxy.example:3128"


def test_close_closes_every_threads_connection_and_the_next_start_reconnects(client, server):
    start(client)
    client.close()
    assert server.closed.wait(5)
    start(client)
    assert server.seen[0].client_port != server.seen[1].client_port


def test_an_unreadable_ca_bundle_fails_the_start_with_a_clear_cause(monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/corp.pem")
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(WorkflowNotStarted) as caught:
        start(ConductorClient("https://127.0.0.1:9/api", timeout=1))
    assert caught.value.message.endswith("could not be called: its CA bundle could not be read")


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for 127.0.0.1 (cert.pem, key.pem)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_an_https_server_is_verified_against_the_named_ca_bundle(monkeypatch, certificate):
    cert, key = certificate
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    with ScriptedServer(tls=tls) as server:
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        with pytest.raises(WorkflowNotStarted) as caught:
            start(ConductorClient(server.url, timeout=2))
        assert caught.value.message.endswith("unreachable: the TLS handshake failed")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        trusting = ConductorClient(server.url, timeout=2)
        assert start(trusting) == "wf-1"
        trusting.close()
