"""The gateway's HTTP edge without a database: auth, body limits, error shape, metrics."""

from __future__ import annotations

import io
import json
import uuid
from contextlib import contextmanager

import psycopg2
import pytest
from prometheus_client import REGISTRY
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from batchcore.errors import DatabaseUnavailable
from batchcore.settings import Settings
from gateway import MAX_BODY_BYTES, create_app
from tests.gateway_helpers import FakeConductor, api_routes, bad_authorizations

TOKEN = "unit-test-token-0123456789abcdef"
OTHER_TOKEN = "second-token-for-rotation-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
VALID_BODY = {
    "pipeline": "demo-batch",
    "mode": "BATCH",
    "input_path_prefix": "s3://bucket/in/",
    "output_path_prefix": "s3://bucket/out/",
}


class NoDatabase:
    """A database that fails the test when touched: proves a request never reached it."""

    def transaction(self):
        raise AssertionError("the database must not be touched by this request")

    autocommit = transaction

    def ping(self):
        raise AssertionError("the database must not be touched by this request")


class RaisingDatabase:
    """A database whose every transaction raises the given exception."""

    def __init__(self, exc: BaseException):
        self.exc = exc

    @contextmanager
    def transaction(self):
        raise self.exc
        yield  # pragma: no cover - makes this a generator

    autocommit = transaction

    def ping(self):
        raise self.exc


def make_app(database=None, conductor=None, **settings):
    values = {
        "database_url": "postgresql://unused@127.0.0.1:9/unused",
        "gateway_api_tokens": (TOKEN, OTHER_TOKEN),
        **settings,
    }
    return create_app(
        {
            "SETTINGS": Settings(**values),
            "DATABASE": database or NoDatabase(),
            "CONDUCTOR": conductor or FakeConductor(),
            "TESTING": True,
        }
    )


@pytest.fixture
def client():
    return make_app().test_client()


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    assert "Traceback" not in response.get_data(as_text=True)
    return body["error"]


# ---------------------------------------------------------------------------------- auth

BAD_AUTHORIZATION = bad_authorizations(TOKEN)


@pytest.mark.parametrize("variant", sorted(BAD_AUTHORIZATION))
def test_auth_every_api_route_refuses_a_bad_token_with_401(variant):
    app = make_app()
    client = app.test_client()
    routes = api_routes(app)
    assert {method for method, _ in routes} == {"GET", "POST"}
    header = BAD_AUTHORIZATION[variant]
    headers = {} if header is None else {"Authorization": header}
    for method, url in routes:
        response = client.open(url, method=method, headers=headers, json=VALID_BODY)
        assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_auth_unknown_api_paths_also_need_a_token(client):
    assert_error(client.get("/api/v1/nothing-here"), 401, "unauthorized")
    assert_error(client.get("/api/v1/nothing-here", headers=AUTH), 404, "not_found")


def test_auth_every_configured_token_is_accepted_and_the_scheme_is_case_insensitive():
    app = make_app(conductor=FakeConductor())
    client = app.test_client()
    for header in (f"Bearer {TOKEN}", f"Bearer {OTHER_TOKEN}", f"bearer {TOKEN}"):
        # An unknown query parameter is refused before the database is asked.
        response = client.get("/api/v1/pipelines?x=1", headers={"Authorization": header})
        assert response.status_code == 422


def test_auth_compares_against_every_token_without_early_exit(monkeypatch):
    from gateway import auth

    calls = []
    real = auth.hmac.compare_digest

    def counting(a, b):
        calls.append(b)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    assert auth.token_matches(TOKEN, [TOKEN.encode(), OTHER_TOKEN.encode(), b"x" * 20])
    assert len(calls) == 3
    calls.clear()
    assert not auth.token_matches("nope", [TOKEN.encode(), OTHER_TOKEN.encode()])
    assert len(calls) == 2


@pytest.mark.parametrize("path", ["/healthz", "/metrics", "/openapi.json"])
def test_auth_operational_routes_need_no_token(client, path):
    assert client.get(path).status_code == 200


def test_auth_is_checked_before_the_body_is_read(client):
    # An oversized body without a token is a 401, not a 413: the body is never read.
    response = client.post("/api/v1/pipeline-runs", data=b"x" * (MAX_BODY_BYTES + 10))
    assert_error(response, 401, "unauthorized")


# ------------------------------------------------------------------------ request bodies


def test_req_5_5_413_body_over_1_mib_with_content_length(client):
    body = b"{" + b" " * MAX_BODY_BYTES + b"}"
    response = client.post("/api/v1/pipeline-runs", data=body, headers=AUTH)
    error = assert_error(response, 413, "payload_too_large")
    assert error["message"] == "Request bodies are limited to 1 MiB"


def chunked_post(app, body: bytes):
    """POST a body the way gunicorn passes on a chunked one: no length, a terminated stream."""
    environ = EnvironBuilder(
        path="/api/v1/pipeline-runs",
        method="POST",
        headers={**AUTH, "Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        input_stream=io.BytesIO(body),
    ).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    response = Response.from_app(app, environ, buffered=True)
    return response.status_code, json.loads(response.get_data())


def test_req_5_5_413_chunked_body_over_1_mib_without_content_length():
    # Valid JSON for its first MiB: a body cut at the limit must not be taken as the body.
    body = json.dumps(VALID_BODY).encode() + b" " * MAX_BODY_BYTES + b"}"
    status, payload = chunked_post(make_app(), body)
    assert status == 413
    assert payload["error"]["code"] == "payload_too_large"


def test_chunked_body_within_the_limit_is_read_whole():
    body = json.dumps({**VALID_BODY, "mode": "STREAM"}).encode()
    body = body[:-1] + b" " * (MAX_BODY_BYTES - len(body)) + b"}"
    assert len(body) == MAX_BODY_BYTES
    status, payload = chunked_post(make_app(), body)
    assert status == 422
    assert [d["field"] for d in payload["error"]["details"]] == ["mode"]


@pytest.mark.parametrize(
    "body",
    [b"", b"   ", b"{", b'{"pipeline": }', b"\xff\xfe{}", b"\xef\xbb\xbf{}", b"[" * 100_000],
    ids=["empty", "blank", "truncated", "syntax", "not-utf8", "bom", "deep-nesting"],
)
def test_req_5_5_400_unreadable_json(client, body):
    response = client.post(
        "/api/v1/pipeline-runs", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert_error(response, 400, "invalid_json")


def test_json_is_read_whatever_the_content_type(client):
    # A valid body sent as text/plain is judged on its fields: here the bad mode.
    body = json.dumps({**VALID_BODY, "mode": "STREAM"})
    response = client.post(
        "/api/v1/pipeline-runs", data=body, headers={**AUTH, "Content-Type": "text/plain"}
    )
    error = assert_error(response, 422, "validation_failed")
    assert [d["field"] for d in error["details"]] == ["mode"]


def test_req_5_5_422_names_every_bad_field_header_and_query_parameter(client):
    body = {
        "pipeline": "Not Valid!",
        "mode": "STREAM",
        "input_path_prefix": "ftp://host/in",
        "output_path_prefix": "s3://bucket/../x",
        "parameters": [],
        "surprise": 1,
    }
    response = client.post(
        "/api/v1/pipeline-runs?wait=31&color=red",
        json=body,
        headers={**AUTH, "Idempotency-Key": "\x7fbad"},
    )
    error = assert_error(response, 422, "validation_failed")
    fields = {detail["field"] for detail in error["details"]}
    assert fields == {
        "pipeline",
        "mode",
        "input_path_prefix",
        "output_path_prefix",
        "parameters",
        "surprise",
        "wait",
        "color",
        "Idempotency-Key",
    }
    for detail in error["details"]:
        assert {"field", "rule", "message"} <= set(detail)


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "ünïcode"])
def test_req_5_5_422_bad_idempotency_key(client, key):
    response = client.post(
        "/api/v1/pipeline-runs", json=VALID_BODY, headers={**AUTH, "Idempotency-Key": key}
    )
    error = assert_error(response, 422, "validation_failed")
    assert [d["field"] for d in error["details"]] == ["Idempotency-Key"]


def test_req_5_5_422_wait_given_twice(client):
    response = client.post("/api/v1/pipeline-runs?wait=1&wait=2", json=VALID_BODY, headers=AUTH)
    error = assert_error(response, 422, "validation_failed")
    assert error["details"][0]["rule"] == "repeated"


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/pipeline-runs?status=DONE",
        "/api/v1/pipeline-runs?limit=0",
        "/api/v1/pipeline-runs?foo=bar",
        "/api/v1/pipelines?foo=bar",
        f"/api/v1/pipeline-runs/{uuid.uuid4()}?foo=bar",
    ],
)
def test_req_5_5_422_bad_query_parameters(client, url):
    assert_error(client.get(url, headers=AUTH), 422, "validation_failed")


# ------------------------------------------------------------------------ error handling


def test_errors_unknown_route_and_wrong_method(client):
    assert_error(client.get("/nowhere"), 404, "not_found")
    response = client.delete("/api/v1/pipelines", headers=AUTH)
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize(
    "exc",
    [
        psycopg2.OperationalError("server closed the connection unexpectedly"),
        psycopg2.InterfaceError("connection already closed"),
        DatabaseUnavailable("The database cannot be reached: refused"),
    ],
    ids=["operational-error", "interface-error", "database-unavailable"],
)
def test_errors_database_failures_are_503_never_500(exc):
    client = make_app(database=RaisingDatabase(exc)).test_client()
    for url in (
        "/api/v1/pipelines",
        "/api/v1/pipeline-runs",
        f"/api/v1/pipeline-runs/{uuid.uuid4()}",
    ):
        response = client.get(url, headers=AUTH)
        error = assert_error(response, 503, "database_unavailable")
        assert error["message"] == "The database is unavailable; try again shortly"
        assert response.headers["Retry-After"]
    response = client.post("/api/v1/pipeline-runs", json=VALID_BODY, headers=AUTH)
    assert_error(response, 503, "database_unavailable")


def test_errors_unexpected_exception_is_500_without_traceback(caplog):
    client = make_app(database=RaisingDatabase(KeyError("secret internals"))).test_client()
    response = client.get("/api/v1/pipelines", headers=AUTH)
    error = assert_error(response, 500, "internal_error")
    assert "secret internals" not in response.get_data(as_text=True)
    assert error["details"] == []
    # ... but the server log has it.
    assert any("secret internals" in (r.exc_text or "") for r in caplog.records)


def test_errors_never_log_the_token(caplog):
    caplog.set_level("DEBUG")
    client = make_app(database=RaisingDatabase(KeyError("boom"))).test_client()
    client.get("/api/v1/pipelines", headers=AUTH)
    client.get("/api/v1/pipelines", headers={"Authorization": "Bearer wrong-token-xyz"})
    assert TOKEN not in caplog.text
    assert "wrong-token-xyz" not in caplog.text


# ------------------------------------------------------------------- health and metrics


def test_healthz_always_ok():
    client = make_app(database=RaisingDatabase(DatabaseUnavailable("down"))).test_client()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_names_the_failed_dependency():
    client = make_app(
        database=RaisingDatabase(DatabaseUnavailable("down")),
        conductor=FakeConductor(healthy=True),
    ).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"] == {"database": "unavailable", "conductor": "ok"}
    assert body["error"]["code"] == "not_ready"
    assert "database" in body["error"]["message"]


def test_readyz_conductor_down_is_503():
    class PingableDatabase(NoDatabase):
        def ping(self):
            return None

    client = make_app(
        database=PingableDatabase(), conductor=FakeConductor(healthy=False)
    ).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"] == {"database": "ok", "conductor": "unavailable"}


def test_readyz_answers_within_its_timeout_when_a_check_hangs():
    import threading

    from gateway import services

    release, pinged = threading.Event(), threading.Event()

    class HangingDatabase(NoDatabase):
        def ping(self):
            release.wait(10)
            pinged.set()

    db = HangingDatabase()
    try:
        checks = services.check_readiness(db, FakeConductor(), timeout=0.3)
        # It answered while the ping still hangs (released only below), not after it.
        assert not pinged.is_set()
        assert checks == {"database": "timeout", "conductor": "ok"}
    finally:
        release.set()


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_requests_by_url_rule_and_runs_by_outcome(client):
    run_route = "/api/v1/pipeline-runs/<run_id>"
    before = sample("gateway_http_requests_total", method="GET", route=run_route, status="401")
    invalid_before = sample("gateway_runs_created_total", outcome="invalid")
    client.get(f"/api/v1/pipeline-runs/{uuid.uuid4()}")
    client.post("/api/v1/pipeline-runs", json={}, headers=AUTH)
    assert (
        sample("gateway_http_requests_total", method="GET", route=run_route, status="401")
        == before + 1
    )
    assert sample("gateway_runs_created_total", outcome="invalid") == invalid_before + 1
    assert sample("gateway_http_request_duration_seconds_count", method="GET", route=run_route) >= 1
    text = client.get("/metrics").get_data(as_text=True)
    for name in (
        "gateway_http_requests_total",
        "gateway_http_request_duration_seconds_bucket",
        "gateway_runs_created_total",
    ):
        assert name in text
    assert 'outcome="accepted"' in text


def test_metrics_unmatched_paths_share_one_series(client):
    before = sample("gateway_http_requests_total", method="GET", route="<unmatched>", status="404")
    client.get(f"/no/such/{uuid.uuid4()}")
    client.get(f"/no/such/{uuid.uuid4()}")
    after = sample("gateway_http_requests_total", method="GET", route="<unmatched>", status="404")
    assert after == before + 2
