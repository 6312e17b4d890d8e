"""The gateway's HTTP API over a real PostgreSQL database and the real Conductor server."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import pytest
import requests
from prometheus_client import REGISTRY

from batchcore.conductor import WorkflowNotStarted
from batchcore.db import Database
from batchcore.runs import rows
from batchcore.runs.model import Transition
from batchcore.settings import Settings
from gateway import create_app, openapi
from tests.gateway_helpers import (
    FakeConductor,
    api_routes,
    assert_documented,
    bad_authorizations,
)

TOKEN = "integration-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BAD_AUTHORIZATION = bad_authorizations(TOKEN)
WORKFLOW = "batch_pipeline_run"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def body(**changes) -> dict:
    run = {
        "pipeline": "demo-batch",
        "mode": "BATCH",
        "input_path_prefix": f"s3://bucket/in/{uuid.uuid4().hex}/",
        "output_path_prefix": f"s3://bucket/out/{uuid.uuid4().hex}/",
        "parameters": {"threads": 4},
    }
    run.update(changes)
    return run


def count(database: Database, table: str) -> int:
    with database.transaction() as cur:
        cur.execute(f"SELECT count(*) AS n FROM {table}")  # table names are the tests' own
        return cur.fetchone()["n"]


def run_row(database: Database, run_id: str) -> dict:
    with database.transaction() as cur:
        run = rows.get_run(cur, run_id)
        return {**run, "history": rows.get_history(cur, run["id"])}


@pytest.fixture
def make_client(database, database_url, conductor_url):
    """A test client of a gateway over this test's database; Conductor is real by default."""

    def make(conductor=None, database_override=None, **settings):
        values = {
            "database_url": database_url,
            "gateway_api_tokens": (TOKEN,),
            "conductor_server_url": conductor_url,
            "conductor_timeout": 5.0,
            **settings,
        }
        app = create_app(
            {
                "SETTINGS": Settings(**values),
                "DATABASE": database_override or database,
                "CONDUCTOR": conductor,
                "TESTING": True,
            }
        )
        return app.test_client()

    return make


@pytest.fixture
def client(make_client, terminate_workflows):
    return make_client()


@pytest.fixture
def terminate_workflows(database, conductor_url):
    """Terminate every workflow this test's runs started, so no worker acts on them."""
    yield
    with database.transaction() as cur:
        cur.execute(
            "SELECT conductor_workflow_id FROM pipeline_runs"
            " WHERE conductor_workflow_id IS NOT NULL"
        )
        workflow_ids = [row["conductor_workflow_id"] for row in cur.fetchall()]
    for workflow_id in workflow_ids:
        # A workflow the submission workers already failed answers 4xx here; that is fine.
        requests.delete(
            f"{conductor_url}/workflow/{workflow_id}", params={"reason": "test"}, timeout=10
        )


def conductor_workflow(conductor_url: str, workflow_id: str) -> dict:
    resp = requests.get(
        f"{conductor_url}/workflow/{workflow_id}", params={"includeTasks": "false"}, timeout=10
    )
    resp.raise_for_status()
    return resp.json()


def correlated(conductor_url: str, run_id: str) -> list[dict]:
    resp = requests.get(
        f"{conductor_url}/workflow/{WORKFLOW}/correlated/{run_id}",
        params={"includeClosed": "true", "includeTasks": "false"},
        timeout=10,
    )
    resp.raise_for_status()
    return resp.json()


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    payload = response.get_json()
    assert set(payload) == {"error"} and set(payload["error"]) == {"code", "message", "details"}
    assert payload["error"]["code"] == code
    assert "Traceback" not in response.get_data(as_text=True)
    return payload["error"]


# -------------------------------------------------------------------------------- submit


def test_req_2_1_post_creates_pending_run_with_event_and_real_workflow(
    client, database, conductor_url
):
    request_body = body()
    response = client.post("/api/v1/pipeline-runs", json=request_body, headers=AUTH)
    assert response.status_code == 202, response.get_data(as_text=True)
    run = response.get_json()
    assert response.headers["Location"] == f"/api/v1/pipeline-runs/{run['id']}"
    assert "Idempotent-Replayed" not in response.headers
    assert run["status"] == "PENDING"
    assert run["pipeline"] == "demo-batch" and run["mode"] == "BATCH"
    assert run["parameters"] == {"threads": 4}
    assert run["error_message"] is None and run["workbench_job_id"] is None
    assert run["created_at"].endswith("+00:00")
    assert [(e["status"], e["previous_status"], e["source"]) for e in run["history"]] == [
        ("PENDING", None, "gateway")
    ]
    assert_documented(openapi.document(), "/api/v1/pipeline-runs", "POST", response)

    workflow_id = run["conductor_workflow_id"]
    assert workflow_id
    workflow = conductor_workflow(conductor_url, workflow_id)
    assert workflow["correlationId"] == run["id"]
    assert workflow["workflowName"] == WORKFLOW and workflow["workflowVersion"] == 1
    assert workflow["input"] == {
        "pipeline_run_id": run["id"],
        "input_path_prefix": request_body["input_path_prefix"],
        "output_path_prefix": request_body["output_path_prefix"],
    }

    stored = run_row(database, run["id"])
    assert stored["status"] == "PENDING" and stored["conductor_workflow_id"] == workflow_id
    assert count(database, "pipeline_runs") == 1
    assert count(database, "pipeline_run_events") == 1

    fetched = client.get(response.headers["Location"], headers=AUTH)
    assert fetched.status_code == 200
    assert fetched.get_json() == run
    assert_documented(openapi.document(), "/api/v1/pipeline-runs/{run_id}", "GET", fetched)


def test_req_2_2_idempotent_replay_returns_the_same_run_and_starts_one_workflow(
    client, database, conductor_url
):
    request_body = body()
    headers = {**AUTH, "Idempotency-Key": "order-42 retry-safe"}
    first = client.post("/api/v1/pipeline-runs", json=request_body, headers=headers)
    second = client.post("/api/v1/pipeline-runs", json=request_body, headers=headers)
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Location"] == first.headers["Location"]
    run_id = first.get_json()["id"]
    assert second.get_json()["id"] == run_id
    assert second.get_json()["conductor_workflow_id"] == first.get_json()["conductor_workflow_id"]
    assert count(database, "pipeline_runs") == 1
    assert len(correlated(conductor_url, run_id)) == 1
    assert_documented(openapi.document(), "/api/v1/pipeline-runs", "POST", second)

    events = count(database, "pipeline_run_events")
    changed = client.post("/api/v1/pipeline-runs", json=body(), headers=headers)
    error = assert_error(changed, 409, "conflict")
    assert error["details"][0]["field"] == "Idempotency-Key"
    assert count(database, "pipeline_runs") == 1
    assert count(database, "pipeline_run_events") == events
    assert len(correlated(conductor_url, run_id)) == 1


def test_req_2_5_conductor_unreachable_stores_the_run_failed_and_answers_503(make_client, database):
    url = f"http://127.0.0.1:{closed_port()}/api"
    client = make_client(conductor_server_url=url)
    response = client.post("/api/v1/pipeline-runs", json=body(), headers=AUTH)
    error = assert_error(response, 503, "conductor_unavailable")
    run_id = error["details"][0]["run_id"]
    assert run_id in error["message"]
    assert response.headers["Location"] == f"/api/v1/pipeline-runs/{run_id}"
    # Conductor's address is for the log, not for clients.
    assert url.split("//")[1].split("/")[0] not in response.get_data(as_text=True)

    stored = run_row(database, run_id)
    assert stored["status"] == "FAILED"
    assert stored["error_message"] == "Conductor could not be reached; the run was not started"
    assert stored["error_details"] == {"code": "conductor_unavailable"}
    assert stored["completed_at"] is not None
    assert stored["conductor_workflow_id"] is None
    assert [(e["status"], e["source"]) for e in stored["history"]] == [
        ("PENDING", "gateway"),
        ("FAILED", "gateway"),
    ]
    assert stored["history"][1]["message"] == "Conductor could not start the workflow"

    shown = client.get(f"/api/v1/pipeline-runs/{run_id}", headers=AUTH).get_json()
    assert shown["status"] == "FAILED" and shown["error_message"] == stored["error_message"]


def test_req_2_5_conductor_refusing_the_workflow_is_503_with_its_answer_stored(client, database):
    with database.transaction() as cur:
        cur.execute(
            "INSERT INTO pipelines (name, mode, workflow_name, workflow_version)"
            " VALUES ('ghost', 'BATCH', 'no_such_workflow_registered', 1)"
        )
    response = client.post("/api/v1/pipeline-runs", json=body(pipeline="ghost"), headers=AUTH)
    error = assert_error(response, 503, "conductor_unavailable")
    stored = run_row(database, error["details"][0]["run_id"])
    assert stored["status"] == "FAILED"
    status_code = stored["error_details"]["status_code"]
    assert status_code >= 400
    assert stored["error_details"] == {"code": "conductor_unavailable", "status_code": status_code}
    assert stored["error_message"] == (
        f"Conductor refused to start the workflow (HTTP {status_code}); the run was not started"
    )
    # Conductor's own answer is for the log only.
    assert "no_such_workflow_registered" not in response.get_data(as_text=True)


class TimingOutConductor(FakeConductor):
    """Conductor that may have started the workflow but did not answer in time."""

    def __init__(self, before_timeout=None):
        super().__init__()
        self.before_timeout = before_timeout
        self.terminated: list[tuple] = []

    def start_workflow(self, name, version, correlation_id, inputs):
        if self.before_timeout:
            self.before_timeout(correlation_id)
        raise WorkflowNotStarted(
            self.base_url, "did not answer within 5 s", exception="ReadTimeout", maybe_started=True
        )

    def terminate_correlated(self, name, correlation_id, reason):
        self.terminated.append((name, correlation_id))
        return ["stray-1"]


def test_req_2_5_conductor_timeout_fails_the_run_and_terminates_stray_workflows(
    make_client, database
):
    conductor = TimingOutConductor()
    client = make_client(conductor=conductor)
    response = client.post("/api/v1/pipeline-runs", json=body(), headers=AUTH)
    error = assert_error(response, 503, "conductor_unavailable")
    run_id = error["details"][0]["run_id"]
    stored = run_row(database, run_id)
    assert stored["status"] == "FAILED"
    assert stored["error_message"] == "Conductor did not answer in time; the run was not started"
    assert conductor.terminated == [(WORKFLOW, run_id)]


def test_req_2_2_a_start_that_timed_out_but_happened_is_not_failed(make_client, database):
    def workflow_moves_run_on(run_id):
        with database.transaction() as cur:
            rows.transition(
                cur,
                run_id,
                Transition(
                    status="SUBMITTED", source="test", message="ok", workbench_job_id="job-x"
                ),
            )

    conductor = TimingOutConductor(before_timeout=workflow_moves_run_on)
    client = make_client(conductor=conductor)
    response = client.post("/api/v1/pipeline-runs", json=body(), headers=AUTH)
    assert response.status_code == 202
    assert response.get_json()["status"] == "SUBMITTED"
    assert conductor.terminated == []


def test_req_5_2_database_unreachable_is_503_json_without_traceback(make_client, database):
    dead = Database(
        f"postgresql://pipelines:x@127.0.0.1:{closed_port()}/pipelines",
        maxconn=2,
        connect_timeout=0.5,
    )
    client = make_client(conductor=FakeConductor(), database_override=dead)
    requests_to_make = [
        ("POST", "/api/v1/pipeline-runs", {"json": body()}),
        ("GET", f"/api/v1/pipeline-runs/{uuid.uuid4()}", {}),
        ("GET", "/api/v1/pipeline-runs", {}),
        ("GET", "/api/v1/pipelines", {}),
    ]
    for method, url, kwargs in requests_to_make:
        response = client.open(url, method=method, headers=AUTH, **kwargs)
        error = assert_error(response, 503, "database_unavailable")
        assert error["message"] == "The database is unavailable; try again shortly"
        assert "127.0.0.1" not in response.get_data(as_text=True)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["database"] in ("unavailable", "timeout")
    assert count(database, "pipeline_runs") == 0


BAD_BODIES = {
    "missing fields": ({}, {"pipeline", "mode", "input_path_prefix", "output_path_prefix"}),
    "wrong types": (
        {"pipeline": 1, "mode": None, "input_path_prefix": [], "output_path_prefix": {}},
        {"pipeline", "mode", "input_path_prefix", "output_path_prefix"},
    ),
    "traversal and scheme": (
        body(input_path_prefix="s3://b/a/%2e%2e/x", output_path_prefix="http://h/out"),
        {"input_path_prefix", "output_path_prefix"},
    ),
    "nested prefixes": (
        body(input_path_prefix="s3://b/data/", output_path_prefix="s3://b/data/out/"),
        {"output_path_prefix"},
    ),
    "too long": (body(input_path_prefix="s3://b/" + "x" * 1100), {"input_path_prefix"}),
    "bad parameters": (body(parameters="x"), {"parameters"}),
    "unknown field": (body(owner="me"), {"owner"}),
    "bad mode": (body(mode="STREAMING"), {"mode"}),
    "not an object": ([1, 2], {"body"}),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_req_5_5_bad_input_is_422_naming_each_field_and_writes_nothing(client, database, case):
    bad, fields = BAD_BODIES[case]
    response = client.post("/api/v1/pipeline-runs", json=bad, headers=AUTH)
    error = assert_error(response, 422, "validation_failed")
    assert {detail["field"] for detail in error["details"]} == fields
    assert count(database, "pipeline_runs") == 0
    assert count(database, "pipeline_run_events") == 0


def test_req_5_5_bad_query_and_header_are_422_and_write_nothing(client, database):
    response = client.post(
        "/api/v1/pipeline-runs?wait=99&debug=1",
        json=body(),
        headers={**AUTH, "Idempotency-Key": "x" * 300},
    )
    error = assert_error(response, 422, "validation_failed")
    assert {d["field"] for d in error["details"]} == {"wait", "debug", "Idempotency-Key"}
    assert count(database, "pipeline_runs") == 0


def test_req_5_5_unknown_pipeline_is_404_and_writes_nothing(client, database):
    response = client.post("/api/v1/pipeline-runs", json=body(pipeline="nope"), headers=AUTH)
    error = assert_error(response, 404, "pipeline_not_found")
    assert "'nope'" in error["message"]
    assert count(database, "pipeline_runs") == 0


def test_req_5_5_disabled_pipeline_is_422_and_writes_nothing(client, database):
    with database.transaction() as cur:
        cur.execute("UPDATE pipelines SET enabled = false WHERE name = 'demo-batch'")
    response = client.post("/api/v1/pipeline-runs", json=body(), headers=AUTH)
    error = assert_error(response, 422, "validation_failed")
    assert error["details"][0]["field"] == "pipeline"
    assert error["details"][0]["rule"] == "disabled"
    assert count(database, "pipeline_runs") == 0


def test_req_2_4_wait_returns_when_the_run_leaves_pending(make_client, database):
    class AdvancingConductor(FakeConductor):
        """Starts a 'workflow' that moves the run to SUBMITTED a little later."""

        def start_workflow(self, name, version, correlation_id, inputs):
            def advance():
                time.sleep(0.4)
                with database.transaction() as cur:
                    rows.transition(
                        cur,
                        correlation_id,
                        Transition(
                            status="SUBMITTED",
                            source="test",
                            message="Workbench accepted",
                            workbench_job_id=f"job-{correlation_id}",
                        ),
                    )

            threading.Thread(target=advance, daemon=True).start()
            return super().start_workflow(name, version, correlation_id, inputs)

    client = make_client(conductor=AdvancingConductor())
    started = time.monotonic()
    response = client.post("/api/v1/pipeline-runs?wait=10", json=body(), headers=AUTH)
    elapsed = time.monotonic() - started
    assert response.status_code == 202
    run = response.get_json()
    assert run["status"] == "SUBMITTED"
    assert run["workbench_job_id"] == f"job-{run['id']}"
    assert [e["status"] for e in run["history"]] == ["PENDING", "SUBMITTED"]
    # It waited for the change (made 0.4 s in), not for the whole ?wait=10.
    assert 0.4 <= elapsed < 10


def test_req_2_4_wait_gives_up_after_the_requested_seconds(client):
    started = time.monotonic()
    response = client.post("/api/v1/pipeline-runs?wait=0.6", json=body(), headers=AUTH)
    elapsed = time.monotonic() - started
    assert response.status_code == 202
    # The run's workflow looks for it in the stack's own database, so it stays PENDING here.
    assert response.get_json()["status"] == "PENDING"
    # It waited the 0.6 s asked for, and gave up long before the 30 s maximum.
    assert 0.6 <= elapsed < 15


# ----------------------------------------------------------------------------- reading


def test_req_4_3_unknown_and_malformed_run_ids_are_404_naming_the_id(client):
    for run_id in (str(uuid.uuid4()), "not-a-uuid", "1%27%20OR%201=1"):
        response = client.get(f"/api/v1/pipeline-runs/{run_id}", headers=AUTH)
        error = assert_error(response, 404, "run_not_found")
        assert run_id.replace("%27", "'").replace("%20", " ") in error["message"]


def test_req_7_5_list_filters_and_pages_newest_first_without_duplicates(make_client, database):
    with database.transaction() as cur:
        cur.execute(
            "INSERT INTO pipelines (name, mode, workflow_name, workflow_version)"
            " VALUES ('other-batch', 'BATCH', 'batch_pipeline_run', 1)"
        )
    ok = make_client(conductor=FakeConductor())
    failing = make_client(conductor_server_url=f"http://127.0.0.1:{closed_port()}/api")
    created = []
    for index in range(7):
        target = failing if index in (1, 4) else ok
        pipeline = "other-batch" if index in (2, 4, 5) else "demo-batch"
        response = target.post("/api/v1/pipeline-runs", json=body(pipeline=pipeline), headers=AUTH)
        assert response.status_code in (202, 503)
        created.append(run_row_id(response))

    seen, url, pages = [], "/api/v1/pipeline-runs?limit=3", 0
    while url:
        response = ok.get(url, headers=AUTH)
        assert response.status_code == 200
        assert_documented(openapi.document(), "/api/v1/pipeline-runs", "GET", response)
        page = response.get_json()
        assert all("history" not in item for item in page["items"])
        seen.extend(item["id"] for item in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        url = f"/api/v1/pipeline-runs?limit=3&cursor={cursor}" if cursor else None
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert seen == list(reversed(created))

    def ids(query: str) -> list[str]:
        response = ok.get(f"/api/v1/pipeline-runs?{query}", headers=AUTH)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [item["id"] for item in response.get_json()["items"]]

    assert ids("status=FAILED") == [created[4], created[1]]
    assert ids("status=PENDING,FAILED") == list(reversed(created))
    assert ids("pipeline=other-batch") == [created[5], created[4], created[2]]
    assert ids("pipeline=other-batch&status=PENDING") == [created[5], created[2]]
    assert ids("pipeline=no-such") == []

    first = ok.get("/api/v1/pipeline-runs?status=PENDING&limit=2", headers=AUTH).get_json()
    rest = ids(f"status=PENDING&limit=10&cursor={first['next_cursor']}")
    assert [item["id"] for item in first["items"]] + rest == [created[i] for i in (6, 5, 3, 2, 0)]

    error = assert_error(
        ok.get("/api/v1/pipeline-runs?cursor=not-a-cursor", headers=AUTH), 422, "validation_failed"
    )
    assert error["details"][0]["field"] == "cursor"


def run_row_id(response) -> str:
    payload = response.get_json()
    if response.status_code == 202:
        return payload["id"]
    return payload["error"]["details"][0]["run_id"]


def test_req_4_2_pipelines_lists_the_catalog(client):
    response = client.get("/api/v1/pipelines", headers=AUTH)
    assert response.status_code == 200
    assert response.get_json()["items"] == [
        {
            "name": "demo-batch",
            "mode": "BATCH",
            # as seeded by sql/migrations/0002, written out rather than read back
            "description": "Demo batch pipeline: the Workbench writes a manifest (sizes, sha256)"
            " of the input files",
            "enabled": True,
            "workflow_name": "batch_pipeline_run",
            "workflow_version": 1,
            "max_runtime_seconds": None,  # its runs' deadline: RUN_DEADLINE_SECONDS
        }
    ]
    assert_documented(openapi.document(), "/api/v1/pipelines", "GET", response)


# ------------------------------------------------------------------------ auth and ops


@pytest.mark.parametrize("variant", sorted(BAD_AUTHORIZATION))
def test_every_api_route_answers_401_to_a_bad_token(make_client, database, variant):
    client = make_client(conductor=FakeConductor())
    header = BAD_AUTHORIZATION[variant]
    headers = {} if header is None else {"Authorization": header}
    routes = api_routes(client.application)
    # The four of the first stage and the workflow behind a run, at least.
    assert len(routes) >= 5
    for method, url in routes:
        response = client.open(url, method=method, headers=headers, json=body())
        assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert count(database, "pipeline_runs") == 0


def test_req_6_5_readyz_is_200_with_database_and_conductor_up(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {
        "status": "ready",
        "checks": {"database": "ok", "conductor": "ok"},
    }


def test_req_6_5_readyz_is_503_when_conductor_is_down(make_client):
    client = make_client(conductor_server_url=f"http://127.0.0.1:{closed_port()}/api")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"] == {"database": "ok", "conductor": "unavailable"}


def test_req_6_5_metrics_count_accepted_runs(make_client):
    client = make_client(conductor=FakeConductor())
    before = REGISTRY.get_sample_value("gateway_runs_created_total", {"outcome": "accepted"})
    assert client.post("/api/v1/pipeline-runs", json=body(), headers=AUTH).status_code == 202
    after = REGISTRY.get_sample_value("gateway_runs_created_total", {"outcome": "accepted"})
    assert after == before + 1
    text = client.get("/metrics").get_data(as_text=True)
    assert (
        'gateway_http_requests_total{method="POST",route="/api/v1/pipeline-runs",status="202"}'
        in text
    )
    assert "gateway_http_request_duration_seconds_bucket" in text


def test_openapi_lists_every_route(client):
    doc = client.get("/openapi.json").get_json()
    for rule in client.application.url_map.iter_rules():
        if rule.rule.startswith("/ui/"):
            continue  # the run browser's HTML pages are not part of the JSON API
        path = rule.rule.replace("<run_id>", "{run_id}")
        assert path in doc["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in doc["paths"][path], (method, path)
