"""The OpenAPI document: it covers every route, resolves, and matches what is answered."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from batchcore.errors import (
    ConductorUnavailable,
    Conflict,
    DatabaseUnavailable,
    RunNotTerminal,
    RunTerminal,
)
from batchcore.runs.model import HISTORY_FIELDS, PUBLIC_FIELDS
from gateway import openapi, services
from gateway.rendering import render_run
from gateway.services import PipelineNotFound, RunNotFound
from tests.gateway_helpers import assert_documented, resolve, schema_errors
from tests.unit.test_gateway_http import AUTH, MAX_BODY_BYTES, VALID_BODY, make_app


def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


def test_openapi_documents_every_route_and_method_and_nothing_else():
    app = make_app()
    doc = app.test_client().get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/ui/"):
            continue  # the run browser's HTML pages are not part of the JSON API
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((openapi_path(rule.rule), method.lower()))
    documented = {
        (path, method)
        for path, operations in doc["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert served == documented


def test_openapi_refs_resolve_and_api_routes_are_secured():
    doc = openapi.document()
    refs = re.findall(r"'\$ref': '([^']+)'", repr(doc))
    assert refs
    for ref in refs:
        resolve(doc, ref)
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            secured = operation.get("security") == [{"bearerAuth": []}]
            assert secured == path.startswith("/api/"), path
            if secured:
                assert "401" in operation["responses"]
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_openapi_request_body_rules_match_the_validation_module():
    schema = openapi.document()["components"]["schemas"]["RunRequest"]
    props = schema["properties"]
    assert props["input_path_prefix"]["maxLength"] == 1024
    assert props["output_path_prefix"]["maxLength"] == 1024
    assert props["pipeline"]["maxLength"] == 100
    assert props["mode"]["enum"] == ["BATCH"]
    assert schema["additionalProperties"] is False


def test_openapi_run_json_has_exactly_the_contract_fields():
    doc = openapi.document()
    # The design's list ("Run JSON uses these names"): the test's own oracle, kept apart from
    # batchcore.runs.model on purpose, so that a field dropped there breaks this test.
    contract = (
        "id", "pipeline", "mode", "status", "input_path_prefix", "output_path_prefix",
        "parameters", "workbench_job_id", "conductor_workflow_id", "error_message",
        "error_details", "created_at", "updated_at", "submitted_at", "started_at",
        "completed_at", "history",
    )  # fmt: skip
    # From the second stage on (those built so far).
    second_stage = (
        "submitted_by", "notify_url", "cancel_requested_at", "rerun_of", "deadline_at",
        "status_checked_at", "reruns",
    )  # fmt: skip
    history_contract = ("status", "previous_status", "at", "source", "message", "details", "actor")
    run = doc["components"]["schemas"]["Run"]
    assert set(contract) <= set(run["properties"])
    assert set(second_stage) <= set(run["properties"])
    assert PUBLIC_FIELDS[: len(contract) - 1] == contract[:-1]
    assert set(run["properties"]) == {*PUBLIC_FIELDS, "reruns", "history"}
    history = doc["components"]["schemas"]["HistoryItem"]["properties"]
    assert list(history) == list(HISTORY_FIELDS) == list(history_contract)


LOCAL = timezone(timedelta(hours=2))
CREATED = datetime(2026, 11, 25, 19, 0, 0, 123456, tzinfo=LOCAL)
RUN_ROW = {
    "id": uuid.uuid4(),
    "pipeline": "demo-batch",
    "mode": "BATCH",
    "status": "FAILED",
    "input_path_prefix": "s3://b/in/",
    "output_path_prefix": "s3://b/out/",
    "parameters": {"a": [1, 2]},
    "workbench_job_id": None,
    "conductor_workflow_id": None,
    "error_message": "Conductor at http://x/api unreachable",
    "error_details": {"conductor_url": "http://x/api"},
    "created_at": CREATED,
    "updated_at": CREATED,
    "submitted_at": None,
    "started_at": None,
    "completed_at": CREATED.astimezone(UTC),
    "poll_failures": 0,
    "last_poll_error": None,
    "last_polled_at": None,
    "submitted_by": "default",
    "idempotency_key": "not shown",
    "request_fingerprint": "not shown",
}
EVENT = {
    "status": "PENDING",
    "previous_status": None,
    "at": CREATED,
    "source": "gateway",
    "message": "Run accepted",
    "details": {},
    "actor": "default",
}
PIPELINE_ROW = {
    "name": "demo-batch",
    "mode": "BATCH",
    "description": "A demo",
    "enabled": True,
    "workflow_name": "batch_pipeline_run",
    "workflow_version": 1,
    "created_at": CREATED,
}


def test_render_run_matches_the_schema_and_uses_utc_offsets():
    doc = openapi.document()
    rendered = render_run(RUN_ROW, [EVENT])
    assert rendered["created_at"] == "2026-11-25T17:00:00.123456+00:00"
    assert rendered["id"] == str(RUN_ROW["id"])
    assert "idempotency_key" not in rendered
    assert not schema_errors(rendered, {"$ref": "#/components/schemas/Run"}, doc)
    listed = render_run(RUN_ROW)
    assert "history" not in listed
    assert not schema_errors(listed, {"$ref": "#/components/schemas/RunSummary"}, doc)


# ------------------------------------------------------- every status of every operation


@dataclass(frozen=True)
class Scenario:
    """A request that makes the gateway answer one status, and what a service does meanwhile."""

    url: str
    kwargs: dict = field(default_factory=lambda: {"headers": AUTH})
    service: str | None = None  # the gateway.services function replaced
    outcome: object = None  # what it returns, or the exception it raises


RUN_URL = f"/api/v1/pipeline-runs/{RUN_ROW['id']}"
NO_TOKEN: dict = {}
BROKEN = RuntimeError("a bug")
DB_DOWN = DatabaseUnavailable("the database is down")
SUBMITTED = SimpleNamespace(run=RUN_ROW, history=[EVENT], created=True)
REPLAYED = SimpleNamespace(run=RUN_ROW, history=[EVENT], created=False)
VIEWED = SimpleNamespace(run=RUN_ROW, history=[EVENT])
WORKFLOW = {
    "workflow_id": "wf-1",
    "status": "COMPLETED",
    "start_time": "2026-11-25T17:00:00.123+00:00",
    "end_time": "2026-11-25T17:00:09.000+00:00",
    "tasks": [
        {
            "reference_name": "submit_to_workbench",
            "task_type": "submit_to_workbench",
            "status": "COMPLETED",
            "attempt": 2,
            "scheduled_at": "2026-11-25T17:00:00.123+00:00",
            "started_at": "2026-11-25T17:00:00.200+00:00",
            "ended_at": "2026-11-25T17:00:01.000+00:00",
            "reason": None,
        }
    ],
}

# A row of NotificationStore.for_run: a notification retried once, then delivered.
NOTIFIED = {
    "webhook_id": "2b1e0f3c-6c3e-4d0f-9a51-6f1c7e9b1d2a",
    "status": "RUNNING",
    "previous_status": "SUBMITTED",
    "occurred_at": datetime(2026, 11, 25, 17, 0, 1, tzinfo=UTC),
    "url": "https://receiver.example.com/hooks",
    "state": "delivered",
    "attempts": 2,
    "next_attempt_at": datetime(2026, 11, 25, 17, 0, 3, tzinfo=UTC),
    "finished_at": datetime(2026, 11, 25, 17, 0, 4, tzinfo=UTC),
    "last_error": None,
    "attempt_list": [
        {
            "attempt": 1,
            "at": "2026-11-25T18:00:01.5+01:00",
            "status_code": 500,
            "duration_ms": 12,
            "error": "HTTP 500",
            "response_excerpt": "oops",
        },
        {
            "attempt": 2,
            "at": "2026-11-25T17:00:04+00:00",
            "status_code": 204,
            "duration_ms": 8,
            "error": None,
            "response_excerpt": None,
        },
    ],
}


def post(body=VALID_BODY, service=None, outcome=None, url="/api/v1/pipeline-runs") -> Scenario:
    """A POST of `body` (None: no body at all)."""
    kwargs = {"headers": AUTH}
    if body is not None:
        kwargs["data" if isinstance(body, bytes) else "json"] = body
    return Scenario(url, kwargs, service, outcome)


# Each documented (path, method) and every status the gateway answers it with: the document
# must list exactly these, and each scenario must produce exactly its status.
ANSWERS: dict[tuple[str, str], dict[int, Scenario]] = {
    ("/api/v1/pipeline-runs", "post"): {
        202: post(service="submit_run", outcome=SUBMITTED),
        200: post(service="submit_run", outcome=REPLAYED),
        400: post(b"{"),
        401: Scenario("/api/v1/pipeline-runs", {"json": VALID_BODY}),
        404: post(service="submit_run", outcome=PipelineNotFound("no such pipeline")),
        409: post(service="submit_run", outcome=Conflict("key used with another body")),
        413: post(b" " * (MAX_BODY_BYTES + 1)),
        422: post({"mode": 1}),
        500: post(service="submit_run", outcome=BROKEN),
        503: post(service="submit_run", outcome=ConductorUnavailable("Conductor is down")),
    },
    ("/api/v1/pipeline-runs", "get"): {
        200: Scenario(
            "/api/v1/pipeline-runs",
            service="list_runs",
            outcome=SimpleNamespace(items=[RUN_ROW], next_cursor="next"),
        ),
        401: Scenario("/api/v1/pipeline-runs", NO_TOKEN),
        422: Scenario("/api/v1/pipeline-runs?limit=x"),
        500: Scenario("/api/v1/pipeline-runs", service="list_runs", outcome=BROKEN),
        503: Scenario("/api/v1/pipeline-runs", service="list_runs", outcome=DB_DOWN),
    },
    ("/api/v1/pipeline-runs/{run_id}", "get"): {
        200: Scenario(
            RUN_URL, service="get_run", outcome=SimpleNamespace(run=RUN_ROW, history=[EVENT])
        ),
        401: Scenario(RUN_URL, NO_TOKEN),
        404: Scenario(RUN_URL, service="get_run", outcome=RunNotFound("no run has this id")),
        422: Scenario(f"{RUN_URL}?foo=bar"),
        500: Scenario(RUN_URL, service="get_run", outcome=BROKEN),
        503: Scenario(RUN_URL, service="get_run", outcome=DB_DOWN),
    },
    ("/api/v1/pipeline-runs/{run_id}/cancel", "post"): {
        202: Scenario(f"{RUN_URL}/cancel", {"headers": AUTH}, "cancel_run", VIEWED),
        401: Scenario(f"{RUN_URL}/cancel", NO_TOKEN),
        404: Scenario(f"{RUN_URL}/cancel", service="cancel_run", outcome=RunNotFound("no run")),
        409: Scenario(f"{RUN_URL}/cancel", service="cancel_run", outcome=RunTerminal("ended")),
        422: Scenario(f"{RUN_URL}/cancel?foo=bar"),
        500: Scenario(f"{RUN_URL}/cancel", service="cancel_run", outcome=BROKEN),
        503: Scenario(f"{RUN_URL}/cancel", service="cancel_run", outcome=DB_DOWN),
    },
    ("/api/v1/pipeline-runs/{run_id}/rerun", "post"): {
        202: post(None, "rerun_run", SUBMITTED, f"{RUN_URL}/rerun"),
        200: post({"parameters": {}}, "rerun_run", REPLAYED, f"{RUN_URL}/rerun"),
        400: post(b"{", url=f"{RUN_URL}/rerun"),
        401: Scenario(f"{RUN_URL}/rerun", NO_TOKEN),
        404: post(None, "rerun_run", RunNotFound("no run"), f"{RUN_URL}/rerun"),
        409: post(None, "rerun_run", RunNotTerminal("still running"), f"{RUN_URL}/rerun"),
        413: post(b" " * (MAX_BODY_BYTES + 1), url=f"{RUN_URL}/rerun"),
        422: post({"pipeline": "demo-batch"}, url=f"{RUN_URL}/rerun"),
        500: post(None, "rerun_run", BROKEN, f"{RUN_URL}/rerun"),
        503: post(None, "rerun_run", ConductorUnavailable("down"), f"{RUN_URL}/rerun"),
    },
    ("/api/v1/pipeline-runs/{run_id}/workflow", "get"): {
        200: Scenario(f"{RUN_URL}/workflow", service="get_run_workflow", outcome=WORKFLOW),
        401: Scenario(f"{RUN_URL}/workflow", NO_TOKEN),
        404: Scenario(
            f"{RUN_URL}/workflow", service="get_run_workflow", outcome=RunNotFound("no run")
        ),
        422: Scenario(f"{RUN_URL}/workflow?foo=bar"),
        500: Scenario(f"{RUN_URL}/workflow", service="get_run_workflow", outcome=BROKEN),
        503: Scenario(
            f"{RUN_URL}/workflow",
            service="get_run_workflow",
            outcome=ConductorUnavailable("Conductor is down"),
        ),
    },
    ("/api/v1/pipeline-runs/{run_id}/notifications", "get"): {
        200: Scenario(f"{RUN_URL}/notifications", service="list_notifications", outcome=[NOTIFIED]),
        401: Scenario(f"{RUN_URL}/notifications", NO_TOKEN),
        404: Scenario(
            f"{RUN_URL}/notifications",
            service="list_notifications",
            outcome=RunNotFound("no run"),
        ),
        422: Scenario(f"{RUN_URL}/notifications?foo=bar"),
        500: Scenario(f"{RUN_URL}/notifications", service="list_notifications", outcome=BROKEN),
        503: Scenario(f"{RUN_URL}/notifications", service="list_notifications", outcome=DB_DOWN),
    },
    ("/api/v1/pipelines", "get"): {
        200: Scenario("/api/v1/pipelines", service="list_pipelines", outcome=[PIPELINE_ROW]),
        401: Scenario("/api/v1/pipelines", NO_TOKEN),
        422: Scenario("/api/v1/pipelines?foo=bar"),
        500: Scenario("/api/v1/pipelines", service="list_pipelines", outcome=BROKEN),
        503: Scenario("/api/v1/pipelines", service="list_pipelines", outcome=DB_DOWN),
    },
    ("/healthz", "get"): {200: Scenario("/healthz", NO_TOKEN)},
    ("/readyz", "get"): {
        200: Scenario(
            "/readyz", NO_TOKEN, "check_readiness", {"database": "ok", "conductor": "ok"}
        ),
        503: Scenario(
            "/readyz", NO_TOKEN, "check_readiness", {"database": "timeout", "conductor": "ok"}
        ),
    },
    ("/metrics", "get"): {200: Scenario("/metrics", NO_TOKEN)},
    ("/openapi.json", "get"): {200: Scenario("/openapi.json", NO_TOKEN)},
}


def test_openapi_documents_exactly_the_statuses_the_gateway_answers():
    doc = openapi.document()
    documented = {
        (path, method): sorted(int(status) for status in operation["responses"])
        for path, operations in doc["paths"].items()
        for method, operation in operations.items()
    }
    assert documented == {operation: sorted(answers) for operation, answers in ANSWERS.items()}


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [(path, method, status) for (path, method), answers in ANSWERS.items() for status in answers],
)
def test_openapi_each_documented_status_is_answered_with_its_schema(
    monkeypatch, path, method, status
):
    scenario = ANSWERS[(path, method)][status]
    if scenario.service is not None:
        monkeypatch.setattr(services, scenario.service, fake_service(scenario.outcome))
    response = make_app().test_client().open(scenario.url, method=method, **scenario.kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    doc = openapi.document()
    documented = doc["paths"][path][method]["responses"][str(status)]
    documented = resolve(doc, documented["$ref"]) if "$ref" in documented else documented
    assert response.mimetype in documented["content"]
    if response.mimetype == "application/json":
        assert_documented(doc, path, method, response)


def fake_service(outcome):
    """A service function that returns `outcome`, or raises it when it is an exception."""

    def service(*args, **kwargs):
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return service
