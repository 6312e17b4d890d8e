"""The Workbench API client: request shape, answers, error classification."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

from batchcore.errors import WorkbenchError
from batchcore.runs import lifecycle
from batchcore.workbench import DEFAULT_POOL_MAXSIZE, JobStatus, SubmittedJob, WorkbenchClient

BASE = "http://workbench.test:8090"
TOKEN = "wb-s3cr3t-token-0123456789abcdef"
RUN_ID = "3f2c1a9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"
JOBS = f"{BASE}/jobs"


@pytest.fixture
def client():
    c = WorkbenchClient(BASE, TOKEN)
    yield c
    c.close()


def submit(client: WorkbenchClient, **overrides) -> SubmittedJob:
    args = {
        "run_id": RUN_ID,
        "pipeline": "demo-manifest",
        "input_path_prefix": "s3://in/data/",
        "output_path_prefix": "s3://out/results/",
        "parameters": {"threads": 4, "tags": ["a", "b"]},
    }
    args.update(overrides)
    return client.submit_job(**args)


def assert_no_token(err: WorkbenchError) -> None:
    """The token appears nowhere a user or a log could see it; details are JSON for storage."""
    dumped = json.dumps(err.details)
    for text in (str(err), err.message, repr(err), dumped, repr(err.details)):
        assert TOKEN not in text
    assert "Authorization" not in dumped and "Bearer" not in dumped
    assert isinstance(err.details, list) and len(err.details) == 1
    assert isinstance(err.details[0], dict)


def assert_no_address(err: WorkbenchError) -> None:
    """The message reaches API clients: it names no address of the Workbench (issue 12.11)."""
    assert "workbench.test" not in err.message and "127.0.0.1" not in err.message


def raised(call) -> WorkbenchError:
    with pytest.raises(WorkbenchError) as info:
        call()
    assert_no_token(info.value)
    assert_no_address(info.value)
    return info.value


# --------------------------------------------------------------------------- construction


def test_repr_has_no_token_and_names_the_url(client):
    text = repr(client)
    assert TOKEN not in text
    assert BASE in text
    assert TOKEN not in str(vars(client).get("_auth"))


def test_session_is_pooled_without_retries(client):
    adapter = client._session.get_adapter(BASE)
    assert adapter._pool_maxsize == DEFAULT_POOL_MAXSIZE
    assert adapter.max_retries.total == 0
    assert not adapter.max_retries.read
    assert client._session.get_adapter("https://x.test")._pool_maxsize == DEFAULT_POOL_MAXSIZE
    with WorkbenchClient(BASE, TOKEN, pool_maxsize=4) as small:
        assert small._session.get_adapter(BASE)._pool_maxsize == 4


def test_trailing_slash_in_base_url_is_dropped(requests_mock):
    requests_mock.post(JOBS, status_code=201, json={"job_id": "j1", "status": "QUEUED"})
    with WorkbenchClient(BASE + "/", TOKEN) as c:
        submit(c)
    assert requests_mock.last_request.url == JOBS


def test_a_given_session_is_used_and_left_open(requests_mock):
    requests_mock.get(f"{JOBS}/j1", json={"job_id": "j1", "status": "RUNNING"})
    session = requests.Session()
    closed = []
    session.close = lambda: closed.append(True)  # type: ignore[method-assign]
    c = WorkbenchClient(BASE, TOKEN, session=session)
    assert c.get_job("j1").run_status == lifecycle.RUNNING
    c.close()
    assert closed == []


@pytest.mark.parametrize(
    "url", ["", "workbench.test:8090", "ftp://workbench.test", "http://", "http://h.test/?a=1"]
)
def test_bad_base_url_is_refused(url):
    with pytest.raises(ValueError, match="base URL"):
        WorkbenchClient(url, TOKEN)


def test_credentials_in_base_url_are_refused_without_echoing_them():
    with pytest.raises(ValueError) as info:
        WorkbenchClient("http://user:hunter2@workbench.test", TOKEN)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("token", ["", "   ", f"{TOKEN}\n", f"{TOKEN}\r\nX-Evil: 1"])
def test_bad_token_is_refused_without_echoing_it(token):
    with pytest.raises(ValueError) as info:
        WorkbenchClient(BASE, token)
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize("kwargs", [{"connect_timeout": 0}, {"read_timeout": -1.0}])
def test_bad_timeouts_are_refused(kwargs):
    with pytest.raises(ValueError, match="timeout"):
        WorkbenchClient(BASE, TOKEN, **kwargs)


# --------------------------------------------------------------------------- submit_job


@pytest.mark.parametrize(("code", "created"), [(201, True), (200, False)])
def test_submit_returns_the_job_and_whether_it_was_created(client, requests_mock, code, created):
    requests_mock.post(JOBS, status_code=code, json={"job_id": "wb-42", "status": "QUEUED"})
    job = submit(client)
    assert job == SubmittedJob(job_id="wb-42", status="QUEUED", created=created)


def test_submit_sends_headers_and_the_contract_body(client, requests_mock):
    requests_mock.post(JOBS, status_code=201, json={"job_id": "wb-42", "status": "QUEUED"})
    submit(client)
    assert requests_mock.call_count == 1
    sent = requests_mock.last_request
    assert sent.method == "POST"
    assert sent.url == JOBS
    assert sent.headers["Idempotency-Key"] == RUN_ID
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers["User-Agent"].startswith("batch-pipeline-runs/")
    assert sent.json() == {
        "pipeline_run_id": RUN_ID,
        "pipeline": "demo-manifest",
        "input_path_prefix": "s3://in/data/",
        "output_path_prefix": "s3://out/results/",
        "parameters": {"threads": 4, "tags": ["a", "b"]},
    }
    assert sent.timeout == (3.05, 10.0)


def test_every_request_refuses_redirects(client, requests_mock, monkeypatch):
    requests_mock.post(JOBS, status_code=201, json={"job_id": "wb-1", "status": "QUEUED"})
    requests_mock.get(f"{JOBS}/wb-1", json={"job_id": "wb-1", "status": "RUNNING"})
    seen = []
    real = client._session.request

    def spy(method, url, **kwargs):
        seen.append((method, kwargs["allow_redirects"], kwargs["timeout"]))
        return real(method, url, **kwargs)

    monkeypatch.setattr(client._session, "request", spy)
    submit(client)
    client.get_job("wb-1")
    assert seen == [("POST", False, (3.05, 10.0)), ("GET", False, (3.05, 10.0))]


def test_submit_with_no_parameters_sends_an_empty_object(client, requests_mock):
    requests_mock.post(JOBS, status_code=201, json={"job_id": "wb-1", "status": "QUEUED"})
    submit(client, parameters=None)
    assert requests_mock.last_request.json()["parameters"] == {}


def test_submit_refuses_parameters_that_are_not_json(client, requests_mock):
    with pytest.raises(ValueError, match="JSON"):
        submit(client, parameters={"x": float("nan")})
    with pytest.raises(ValueError, match="JSON"):
        submit(client, parameters={"x": object()})
    assert requests_mock.call_count == 0


def test_submit_twice_reuses_the_idempotency_key(client, requests_mock):
    requests_mock.post(
        JOBS,
        [
            {"status_code": 201, "json": {"job_id": "wb-7", "status": "QUEUED"}},
            {"status_code": 200, "json": {"job_id": "wb-7", "status": "RUNNING"}},
        ],
    )
    first, second = submit(client), submit(client)
    assert (first.job_id, first.created) == ("wb-7", True)
    assert (second.job_id, second.created, second.status) == ("wb-7", False, "RUNNING")
    keys = [r.headers["Idempotency-Key"] for r in requests_mock.request_history]
    assert keys == [RUN_ID, RUN_ID]


# --------------------------------------------------------------------------- get_job


@pytest.mark.parametrize(
    ("workbench", "run"),
    [
        ("QUEUED", lifecycle.SUBMITTED),
        ("RUNNING", lifecycle.RUNNING),
        ("SUCCEEDED", lifecycle.COMPLETED),
        ("FAILED", lifecycle.FAILED),
        ("CANCELLED", lifecycle.FAILED),
    ],
)
def test_get_job_maps_every_contract_status(client, requests_mock, workbench, run):
    requests_mock.get(f"{JOBS}/wb-42", json={"job_id": "wb-42", "status": workbench})
    job = client.get_job("wb-42")
    assert job.workbench_status == workbench
    assert job.run_status == run == lifecycle.run_status_for(workbench)
    assert job.terminal is lifecycle.is_terminal(run)
    sent = requests_mock.last_request
    assert sent.method == "GET"
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "Idempotency-Key" not in sent.headers


def test_get_job_parses_timestamps_and_error_message(client, requests_mock):
    requests_mock.get(
        f"{JOBS}/wb-42",
        json={
            "job_id": "wb-42",
            "status": "FAILED",
            "error_message": "input prefix is empty",
            "started_at": "2024-05-01T12:00:00Z",
            "finished_at": "2024-05-01T14:30:15.250+02:00",
        },
    )
    job = client.get_job("wb-42")
    assert job == JobStatus(
        job_id="wb-42",
        workbench_status="FAILED",
        run_status=lifecycle.FAILED,
        error_message="input prefix is empty",
        started_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        finished_at=datetime(2024, 5, 1, 14, 30, 15, 250000, tzinfo=timezone(timedelta(hours=2))),
    )
    assert job.started_at.tzinfo is not None and job.finished_at.tzinfo is not None
    assert job.finished_at - job.started_at == timedelta(minutes=30, seconds=15.25)


def test_get_job_optional_fields_absent_or_null(client, requests_mock):
    requests_mock.get(
        f"{JOBS}/wb-42",
        json={"job_id": "wb-42", "status": "QUEUED", "started_at": None, "error_message": None},
    )
    job = client.get_job("wb-42")
    assert (job.error_message, job.started_at, job.finished_at) == (None, None, None)
    assert job.terminal is False


def test_get_job_naive_timestamp_is_taken_as_utc(client, requests_mock):
    requests_mock.get(
        f"{JOBS}/wb-42",
        json={"job_id": "wb-42", "status": "RUNNING", "started_at": "2024-05-01T12:00:00"},
    )
    assert client.get_job("wb-42").started_at == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_get_job_quotes_the_id_in_the_path(client, requests_mock):
    odd = "a/b c?d"
    requests_mock.get(f"{JOBS}/a%2Fb%20c%3Fd", json={"job_id": odd, "status": "RUNNING"})
    assert client.get_job(odd).job_id == odd
    assert requests_mock.last_request.path == "/jobs/a%2fb%20c%3fd"
    assert requests_mock.last_request.query == ""


@pytest.mark.parametrize("job_id", ["", None])
def test_get_job_needs_an_id(client, job_id):
    with pytest.raises(ValueError):
        client.get_job(job_id)


# --------------------------------------------------------------------------- transport errors


def test_connect_timeout_is_transient_and_names_the_url_in_details_only(client, requests_mock):
    requests_mock.post(JOBS, exc=requests.exceptions.ConnectTimeout)
    err = raised(lambda: submit(client))
    assert (err.transient, err.kind, err.status_code) == (True, "timeout", None)
    assert err.message.startswith("The Workbench API did not answer within 3.05 s")
    assert err.details[0]["url"] == JOBS
    assert err.details[0]["exception"] == "ConnectTimeout"
    assert err.details[0]["method"] == "POST" and err.details[0]["path"] == "/jobs"


def test_read_timeout_is_transient_and_names_the_url_in_details_only(client, requests_mock):
    requests_mock.get(f"{JOBS}/wb-1", exc=requests.exceptions.ReadTimeout)
    err = raised(lambda: client.get_job("wb-1"))
    assert (err.transient, err.kind) == (True, "timeout")
    assert err.message == "The Workbench API did not answer within 10.0 s"
    assert err.details[0]["url"] == f"{JOBS}/wb-1"
    assert err.details[0]["exception"] == "ReadTimeout"


def test_plain_connection_error_is_transient(client, requests_mock):
    requests_mock.post(JOBS, exc=requests.exceptions.ConnectionError)
    err = raised(lambda: submit(client))
    assert (err.transient, err.kind) == (True, "connection")
    assert err.message.startswith("The Workbench API is unreachable")
    assert err.details[0]["exception"] == "ConnectionError"


def _wrapped(reason: Exception) -> requests.exceptions.ConnectionError:
    """A ConnectionError shaped the way requests/urllib3 raise it."""
    return requests.exceptions.ConnectionError(MaxRetryError(None, "/jobs", reason))


def test_connection_refused_is_named(client, requests_mock):
    reason = NewConnectionError(None, "Failed to establish a new connection")
    reason.__cause__ = ConnectionRefusedError(111, "Connection refused")
    requests_mock.post(JOBS, exc=_wrapped(reason))
    err = raised(lambda: submit(client))
    assert err.message == "The Workbench API is unreachable: connection refused"
    assert (err.transient, err.kind) == (True, "connection")


def test_dns_failure_is_named(client, requests_mock):
    reason = NameResolutionError("workbench.test", None, socket.gaierror(-2, "Name unknown"))
    requests_mock.get(f"{JOBS}/wb-1", exc=_wrapped(reason))
    err = raised(lambda: client.get_job("wb-1"))
    assert "unreachable" in err.message and "DNS" in err.message
    assert (err.transient, err.kind) == (True, "connection")


def test_chunked_encoding_error_is_transient(client, requests_mock):
    requests_mock.get(f"{JOBS}/wb-1", exc=requests.exceptions.ChunkedEncodingError)
    err = raised(lambda: client.get_job("wb-1"))
    assert (err.transient, err.kind) == (True, "connection")


def test_really_refused_connection(monkeypatch):
    """A real socket: nothing listens on the port, so the OS refuses at once."""
    for name in (
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    with WorkbenchClient(base, TOKEN, connect_timeout=2.0, read_timeout=2.0) as c:
        err = raised(lambda: c.get_job("wb-1"))
    assert err.message == "The Workbench API is unreachable: connection refused"
    assert err.details[0]["url"] == f"{base}/jobs/wb-1"
    assert (err.transient, err.kind) == (True, "connection")


# --------------------------------------------------------------------------- HTTP errors


@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_server_errors_are_transient(client, requests_mock, code):
    requests_mock.post(JOBS, status_code=code, text="<html>upstream sad</html>")
    err = raised(lambda: submit(client))
    assert (err.transient, err.kind, err.status_code, err.retry_after) == (
        True,
        "server_error",
        code,
        None,
    )
    assert err.message == f"The Workbench API failed with HTTP {code}: <html>upstream sad</html>"
    assert err.details[0]["status_code"] == code
    assert err.details[0]["body_excerpt"] == "<html>upstream sad</html>"


def test_server_error_excerpt_is_short(client, requests_mock):
    requests_mock.get(f"{JOBS}/wb-1", status_code=500, text="x" * 5000 + "\n\x00tail")
    err = raised(lambda: client.get_job("wb-1"))
    assert len(err.details[0]["body_excerpt"]) <= 200
    assert len(err.message) < 400


def test_server_error_uses_the_json_message(client, requests_mock):
    requests_mock.post(JOBS, status_code=500, json={"error": "database is down"})
    err = raised(lambda: submit(client))
    assert err.message.endswith("failed with HTTP 500: database is down")


def test_503_keeps_retry_after(client, requests_mock):
    requests_mock.get(f"{JOBS}/wb-1", status_code=503, headers={"Retry-After": "7"})
    err = raised(lambda: client.get_job("wb-1"))
    assert (err.transient, err.kind, err.retry_after) == (True, "server_error", 7.0)


def test_429_with_retry_after_seconds(client, requests_mock):
    requests_mock.post(JOBS, status_code=429, headers={"Retry-After": "12"}, text="slow down")
    err = raised(lambda: submit(client))
    assert (err.transient, err.kind, err.status_code, err.retry_after) == (
        True,
        "rate_limited",
        429,
        12.0,
    )
    assert "HTTP 429" in err.message and "12 s" in err.message


def test_429_with_retry_after_http_date(client, requests_mock):
    when = datetime.now(UTC) + timedelta(seconds=120)
    requests_mock.get(
        f"{JOBS}/wb-1", status_code=429, headers={"Retry-After": format_datetime(when, True)}
    )
    err = raised(lambda: client.get_job("wb-1"))
    assert err.kind == "rate_limited"
    assert 100 <= err.retry_after <= 121


@pytest.mark.parametrize("header", [None, "soon", ""])
def test_429_without_usable_retry_after(client, requests_mock, header):
    headers = {"Retry-After": header} if header is not None else {}
    requests_mock.get(f"{JOBS}/wb-1", status_code=429, headers=headers)
    err = raised(lambda: client.get_job("wb-1"))
    assert (err.transient, err.kind, err.retry_after) == (True, "rate_limited", None)


@pytest.mark.parametrize("code", [400, 401, 403, 409, 422])
@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"error": "pipeline demo is unknown"}, "pipeline demo is unknown"),
        ({"message": "pipeline demo is unknown"}, "pipeline demo is unknown"),
        ({"error": {"code": "bad", "message": "pipeline demo is unknown"}}, "pipeline demo is"),
        ("plain text: pipeline demo is unknown", "plain text: pipeline demo is unknown"),
    ],
)
def test_client_errors_are_permanent_with_the_body_message(client, requests_mock, code, body, said):
    if isinstance(body, dict):
        requests_mock.post(JOBS, status_code=code, json=body)
    else:
        requests_mock.post(JOBS, status_code=code, text=body)
    err = raised(lambda: submit(client))
    kind = "unauthorized" if code in (401, 403) else "rejected"
    assert (err.transient, err.kind, err.status_code) == (False, kind, code)
    assert err.message.startswith(f"The Workbench API rejected the job (HTTP {code}): {said}")
    assert requests_mock.call_count == 1


@pytest.mark.parametrize("code", [401, 403])
def test_auth_errors_point_at_the_token_setting(client, requests_mock, code):
    requests_mock.post(JOBS, status_code=code, json={"error": "bad token"})
    assert "WORKBENCH_API_TOKEN" in raised(lambda: submit(client)).message


def test_an_echoed_token_is_redacted(client, requests_mock):
    requests_mock.post(JOBS, status_code=401, json={"error": f"token {TOKEN} is revoked"})
    err = raised(lambda: submit(client))  # raised() asserts the token is absent
    assert "[redacted] is revoked" in err.message


def test_issue_12_11_the_workbench_own_address_in_an_answer_stays_out_of_the_message(
    client, requests_mock
):
    page = "upstream http://workbench.test:8090/jobs timed out; see HTTP://WORKBENCH.TEST:8090/x"
    requests_mock.post(JOBS, status_code=502, text=page)
    err = raised(lambda: submit(client))  # raised() asserts no address is in the message
    assert err.message == (
        "The Workbench API failed with HTTP 502: upstream [the Workbench API] timed out; "
        "see [the Workbench API]"
    )
    assert err.details[0]["body_excerpt"].startswith("upstream http://workbench.test:8090/jobs")


def test_issue_12_11_the_client_own_paths_in_a_rejection_stay_in_the_message(client, requests_mock):
    said = "input s3://bucket/in/ is empty; other host http://docs.test/help"
    requests_mock.post(JOBS, status_code=422, json={"error": said})
    err = raised(lambda: submit(client))
    assert err.message == f"The Workbench API rejected the job (HTTP 422): {said}"


def test_404_on_get_job_is_not_found(client, requests_mock):
    requests_mock.get(f"{JOBS}/wb-9", status_code=404, json={"error": "no such job"})
    err = raised(lambda: client.get_job("wb-9"))
    assert (err.transient, err.kind, err.status_code) == (False, "not_found", 404)
    assert err.message == "The Workbench API has no job wb-9 (HTTP 404)"
    assert err.details[0]["url"] == f"{JOBS}/wb-9"


def test_404_on_submit_is_rejected_and_points_at_the_url(client, requests_mock):
    requests_mock.post(JOBS, status_code=404, text="Not Found")
    err = raised(lambda: submit(client))
    assert (err.transient, err.kind) == (False, "rejected")
    assert "WORKBENCH_API_URL" in err.message


def test_other_4xx_on_get_job_is_rejected(client, requests_mock):
    requests_mock.get(f"{JOBS}/wb-9", status_code=400, json={"error": "bad job id"})
    err = raised(lambda: client.get_job("wb-9"))
    assert (err.transient, err.kind) == (False, "rejected")
    assert "status request for job wb-9 (HTTP 400): bad job id" in err.message


@pytest.mark.parametrize("code", [301, 302, 307, 308])
def test_redirect_is_not_followed_and_is_permanent(client, requests_mock, code):
    elsewhere = "http://elsewhere.test/collect"
    requests_mock.post(JOBS, status_code=code, headers={"Location": elsewhere})
    requests_mock.register_uri("POST", elsewhere, status_code=201, json={})
    requests_mock.register_uri("GET", elsewhere, status_code=201, json={})
    err = raised(lambda: submit(client))
    assert len(requests_mock.request_history) == 1
    assert requests_mock.request_history[0].url == JOBS
    assert (err.transient, err.kind, err.status_code) == (False, "redirect", code)
    assert f"The Workbench API answered POST /jobs with a redirect (HTTP {code})" in err.message
    assert "not followed" in err.message and "elsewhere.test" not in err.message
    assert err.details[0]["location"] == elsewhere and err.details[0]["url"] == JOBS


def test_redirect_without_location(client, requests_mock):
    requests_mock.get(f"{JOBS}/wb-1", status_code=302)
    err = raised(lambda: client.get_job("wb-1"))
    assert err.kind == "redirect" and err.details[0]["location"] == "(no Location header)"


# --------------------------------------------------------------------------- malformed answers


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"text": "<html>ok</html>"}, "not JSON"),
        ({"text": ""}, "not JSON"),
        ({"json": ["wb-1", "QUEUED"]}, "not a JSON object"),
        ({"json": {"status": "QUEUED"}}, "job_id"),
        ({"json": {"job_id": "", "status": "QUEUED"}}, "job_id"),
        ({"json": {"job_id": 12, "status": "QUEUED"}}, "job_id"),
        ({"json": {"job_id": "wb-1"}}, "status"),
    ],
)
def test_malformed_submit_answers_are_permanent(client, requests_mock, kwargs, problem):
    requests_mock.post(JOBS, status_code=201, **kwargs)
    err = raised(lambda: submit(client))
    assert (err.transient, err.kind, err.status_code) == (False, "malformed", 201)
    assert (
        problem in err.message and "The Workbench API sent an answer to POST /jobs" in err.message
    )
    assert err.details[0]["url"] == JOBS


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"job_id": "wb-2", "status": "RUNNING"}, "instead of"),
        ({"job_id": "wb-1", "status": "FAILED", "error_message": {"x": 1}}, "error_message"),
    ],
)
def test_malformed_status_answers_are_permanent(client, requests_mock, body, problem):
    requests_mock.get(f"{JOBS}/wb-1", json=body)
    err = raised(lambda: client.get_job("wb-1"))
    assert (err.transient, err.kind) == (False, "malformed")
    assert problem in err.message


def test_content_decoding_error_is_malformed(client, requests_mock):
    requests_mock.get(f"{JOBS}/wb-1", exc=requests.exceptions.ContentDecodingError)
    err = raised(lambda: client.get_job("wb-1"))
    assert (err.transient, err.kind) == (False, "malformed")
