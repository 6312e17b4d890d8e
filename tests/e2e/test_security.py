"""Security of the running gateway over HTTP: authentication on every /api/ route, body
limits and memory, SQL injection, and where the workers' Workbench calls can go.

Against the stack's real gunicorn gateway with its dev token. Nothing here restarts or
reconfigures a stack process, and the simulator's fault switches are left alone (they may
be in use by someone else): its job list is only read.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from batchcore.settings import Settings
from gateway import MAX_BODY_BYTES, create_app
from stack import supervisor
from tests.e2e.conftest import bad_authorizations, rows_marked, run_body
from tests.integration.helpers import Simulator, await_true

MIB = 1024 * 1024


# ------------------------------------------------------------------------------ helpers


def marked_body(marker: str, **overrides) -> dict:
    body = {
        "pipeline": "demo-batch",
        "mode": "BATCH",
        "input_path_prefix": f"s3://security-in/{marker}/",
        "output_path_prefix": f"s3://security-out/{marker}/",
    }
    body.update(overrides)
    return body


def api_routes() -> list[tuple[str, str]]:
    """(method, URL path) of every route the app registers under /api/, every method."""
    app = create_app(
        {
            "SETTINGS": Settings(
                database_url="postgresql://unused@127.0.0.1:9/unused",
                gateway_api_tokens=("route-listing-token-0123456789",),
            ),
            "CONDUCTOR": object(),  # never called: only the URL map is read
        }
    )
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = rule.rule.replace("<run_id>", str(uuid.uuid4()))
        assert "<" not in path, f"fill in the placeholder of {rule.rule}"
        found.extend((method, path) for method in sorted(rule.methods))
    return found


API_ROUTES = api_routes()


# -------------------------------------------------------------------- authentication


def test_every_api_route_refuses_every_bad_token_with_401(stack_env, pipelines_db):
    token = stack_env["GATEWAY_API_TOKEN"]
    base = stack_env["GATEWAY_URL"]
    assert {path.split("/")[3] for _, path in API_ROUTES} == {"pipeline-runs", "pipelines"}
    marker = f"auth-{uuid.uuid4().hex}"
    checked = 0
    for variant, headers in bad_authorizations(token).items():
        for method, path in API_ROUTES:
            response = requests.request(
                method,
                f"{base}{path}",
                headers={**headers, "Idempotency-Key": marker},
                json=marked_body(marker) if method == "POST" else None,
                timeout=15,
            )
            where = f"{method} {path} with {variant}"
            assert response.status_code == 401, f"{where}: {response.status_code}"
            assert response.headers["WWW-Authenticate"] == "Bearer", where
            if method != "HEAD":
                error = response.json()["error"]
                assert error["code"] == "unauthorized", where
                assert token not in response.text, where
            checked += 1
    assert checked >= 10 * len(API_ROUTES)
    assert rows_marked(pipelines_db, marker) == 0


def test_unknown_api_paths_need_a_token_before_they_are_a_404(stack_env):
    base = stack_env["GATEWAY_URL"]
    token = stack_env["GATEWAY_API_TOKEN"]
    for path in ("/api/v1/nothing", "/api/v2/pipeline-runs", "/api/", "/api/v1/pipelines/x"):
        assert requests.get(f"{base}{path}", timeout=10).status_code == 401, path
        authorized = requests.get(
            f"{base}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert authorized.status_code in (404, 405), path


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_scheme_name_is_case_insensitive_but_the_token_is_not(stack_env, scheme):
    token = stack_env["GATEWAY_API_TOKEN"]
    url = f"{stack_env['GATEWAY_URL']}/api/v1/pipelines"
    right = requests.get(url, headers={"Authorization": f"{scheme} {token}"}, timeout=10)
    assert right.status_code == 200, right.text
    wrong = requests.get(url, headers={"Authorization": f"{scheme} {token.swapcase()}"}, timeout=10)
    assert wrong.status_code == 401


# ------------------------------------------------------------------------ body limits


def raw_post(base: str, token: str, *, length: int, chunked: bool) -> tuple[int, dict, int]:
    """POST `length` bytes of JSON-ish body through a raw socket, either with a
    Content-Length or chunked (no length at all); (status, body, bytes sent).

    The gateway answers 413 as soon as it has seen too much and then closes the
    connection, so the client may not get to send everything: a broken pipe while
    sending is expected, and the answer is read afterwards.
    """
    host, port = base.removeprefix("http://").split(":")
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}"
    head = (
        f"POST /api/v1/pipeline-runs HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"{framing}\r\n\r\n"
    ).encode()
    piece = b"[" + b" " * (64 * 1024 - 1)
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        try:
            while sent < length:
                data = piece[: min(len(piece), length - sent)]
                sock.sendall(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                sent += len(data)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read()), sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_bodies_over_1_mib_get_413_and_at_1_mib_do_not(stack_env, chunked):
    base, token = stack_env["GATEWAY_URL"], stack_env["GATEWAY_API_TOKEN"]
    for length in (MAX_BODY_BYTES + 1, 5 * MIB):
        status, body, _ = raw_post(base, token, length=length, chunked=chunked)
        assert status == 413, (length, body)
        assert body["error"]["code"] == "payload_too_large"
    # Exactly the limit is read whole: '[' and spaces is unfinished JSON, so a 400.
    status, body, sent = raw_post(base, token, length=MAX_BODY_BYTES, chunked=chunked)
    assert (status, body["error"]["code"], sent) == (400, "invalid_json", MAX_BODY_BYTES)


def gateway_workers_rss_kib() -> dict[int, int]:
    """VmRSS (KiB) of each gunicorn worker of the stack's gateway, by pid."""
    out = supervisor.ctl("pid", "gateway", check=False).stdout or ""
    master = int(out.strip())
    assert master > 0, f"the gateway is not running: {out!r}"
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command may contain spaces and parentheses: fields follow the last ')'.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != master:
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue  # a process that ended meanwhile
        rss = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        found[int(stat.parent.name)] = int(rss.split()[1])
    assert found, f"no worker processes under gunicorn master {master}"
    return found


def test_oversized_bodies_leave_the_workers_memory_flat(stack_env):
    base, token = stack_env["GATEWAY_URL"], stack_env["GATEWAY_API_TOKEN"]
    # Warm up: each worker thread's first large read sizes its allocator arenas.
    for _ in range(6):
        raw_post(base, token, length=2 * MIB, chunked=True)
    before = gateway_workers_rss_kib()
    for round_ in range(30):
        status, _, _ = raw_post(base, token, length=5 * MIB, chunked=round_ % 3 != 0)
        assert status == 413
    after = gateway_workers_rss_kib()
    # Workers restarted meanwhile (max_requests, someone else's test) are not comparable.
    common = before.keys() & after.keys()
    assert common, "every gateway worker was replaced during the test; run it again"
    growth = {pid: (after[pid] - before[pid]) // 1024 for pid in common}
    # 150 MiB were offered; a worker that kept even a tenth of what it read would grow
    # by more than this.
    assert sum(growth.values()) < 16, f"RSS growth in MiB by worker: {growth}"


# ----------------------------------------------------------------------- SQL injection

INJECTIONS = [
    "'; DROP TABLE pipeline_runs;--",
    '" OR 1=1 --',
    "1'); DELETE FROM pipeline_run_events; --",
    "$$; DROP TABLE pipelines; $$",
    "'||pg_sleep(5)||'",
    "' UNION SELECT idempotency_key FROM pipeline_runs --",
    "Robert'); DROP TABLE students;--",
    "1; SELECT pg_read_file('/etc/passwd')",
]
TABLES = ("pipelines", "pipeline_runs", "pipeline_run_events", "schema_migrations")


def table_counts(conn) -> dict[str, int]:
    counts = {}
    with conn.cursor() as cur:
        for table in TABLES:
            cur.execute("SELECT to_regclass(%s)", (f"public.{table}",))
            assert cur.fetchone()[0] is not None, f"table {table} is gone"
            cur.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cur.fetchone()[0]
    return counts


@pytest.mark.parametrize("injection", INJECTIONS)
def test_sql_injection_in_every_field_is_stored_and_returned_as_plain_text(
    api, pipelines_db, injection
):
    before = table_counts(pipelines_db)
    marker = uuid.uuid4().hex
    parameters = {
        injection: injection,
        "nested": {"list": [injection, {injection: [injection]}]},
        "simulate": {"duration_seconds": 1},
    }
    body = {
        "pipeline": "demo-batch",
        "mode": "BATCH",
        "input_path_prefix": f"s3://sqli-in/{marker}/{injection}/",
        "output_path_prefix": f"s3://sqli-out/{marker}/{injection}/",
        "parameters": parameters,
    }
    key = f"{injection} {marker}"

    # The pipeline name is pattern-restricted: refused before any query.
    refused = api.post_run({**body, "pipeline": injection}, key=f"{key}-refused")
    assert refused.status_code == 422, refused.text
    assert {d["field"] for d in refused.json()["error"]["details"]} == {"pipeline"}

    created = api.post_run(body, key=key)
    assert created.status_code == 202, created.text
    run = created.json()
    for name in ("input_path_prefix", "output_path_prefix", "parameters"):
        assert run[name] == body[name], name
    assert run["history"][0]["details"]["idempotency_key"] == key
    assert api.get_run(run["id"])["parameters"] == parameters

    # The key finds the run again (a replay), and the row holds exactly what was sent.
    replay = api.post_run(body, key=key)
    assert (replay.status_code, replay.json()["id"]) == (200, run["id"])
    with pipelines_db.cursor() as cur:
        cur.execute(
            "SELECT input_path_prefix, output_path_prefix, parameters, idempotency_key"
            " FROM pipeline_runs WHERE id = %s",
            (run["id"],),
        )
        assert cur.fetchone() == (
            body["input_path_prefix"],
            body["output_path_prefix"],
            parameters,
            key,
        )

    # Query strings and the run id in the path: refused or not found, never run.
    base = f"{api.base}/api/v1/pipeline-runs"
    for params in ({"pipeline": injection}, {"status": injection}, {"cursor": injection}):
        listed = api.session.get(base, params=params, timeout=10)
        assert listed.status_code == 422, (params, listed.text)
    missing = api.session.get(f"{base}/{quote(injection, safe='')}", timeout=10)
    assert missing.status_code == 404
    if "/" in injection:  # %2F is a '/' to the router: no route has that many segments
        assert missing.json()["error"]["code"] == "not_found"
    else:
        assert missing.json()["error"]["code"] == "run_not_found"
        assert injection in missing.json()["error"]["message"]

    after = table_counts(pipelines_db)
    assert after["pipelines"] == before["pipelines"]
    assert after["schema_migrations"] == before["schema_migrations"]
    # Other runs may be written meanwhile; nothing was deleted.
    assert after["pipeline_runs"] >= before["pipeline_runs"] + 1
    assert after["pipeline_run_events"] >= before["pipeline_run_events"] + 1


# ------------------------------------------------------------- where the workers call


class RecordingHandler(BaseHTTPRequestHandler):
    """Records every request it gets, answers 200 {}."""

    def _record(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.server.seen.append((self.command, self.path, dict(self.headers)))
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = do_PUT = _record

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def bait_server():
    """A local HTTP server that no part of the service should ever call."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    server.seen = []
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_no_request_field_or_header_redirects_the_workbench_calls(
    api, stack_env, pipelines_db, bait_server
):
    bait = f"http://127.0.0.1:{bait_server.server_address[1]}"
    # Unknown top-level fields are refused outright.
    for field in ("workbench_url", "workbench_api_url", "callback_url", "base_url"):
        refused = api.post_run(run_body(**{field: bait}))
        assert refused.status_code == 422, field
    # Inside parameters they are the job's own business: passed on, never followed.
    parameters = {
        name: bait
        for name in ("workbench_url", "workbench_api_url", "WORKBENCH_API_URL", "callback_url")
    }
    headers = {
        "Host": bait.removeprefix("http://"),
        "X-Forwarded-Host": bait.removeprefix("http://"),
        "X-Forwarded-Proto": "http",
        "Forwarded": f"host={bait.removeprefix('http://')}",
    }
    response = api.session.post(
        f"{api.base}/api/v1/pipeline-runs",
        json=run_body(parameters=parameters),
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 202, response.text
    # The Location is a path on whatever host the client used, never the Host it sent.
    assert response.headers["Location"] == f"/api/v1/pipeline-runs/{response.json()['id']}"
    run_id = response.json()["id"]
    simulator = Simulator(stack_env["WORKBENCH_ADMIN_URL"])
    [job] = await_true(
        lambda: simulator.jobs(run_id), 90, f"the Workbench job of run {run_id}", every=0.5
    )
    assert job["parameters"] == parameters

    def polled():
        with pipelines_db.cursor() as cur:
            cur.execute("SELECT last_polled_at FROM pipeline_runs WHERE id = %s", (run_id,))
            return cur.fetchone()[0]

    # Submitted and polled by a sweep too, and nothing ever came to the bait.
    await_true(polled, 60, f"a poller sweep to check run {run_id}", every=0.2)
    assert bait_server.seen == []
