"""HTTP routes: parse and validate, call one service function, render JSON."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import psycopg2
from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from batchcore.errors import (
    ConductorUnavailable,
    Conflict,
    DatabaseUnavailable,
    ValidationFailed,
)

from . import metrics, openapi, services, validation
from .errors import InvalidJson, error_response

api = Blueprint("api", __name__, url_prefix="/api/v1")
ops = Blueprint("ops", __name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
# 1 to 255 printable ASCII characters (the column allows 255; headers are ASCII).
_IDEMPOTENCY_KEY_RE = re.compile(r"[\x20-\x7e]{1,255}")

RUN_FIELDS = (
    "id",
    "pipeline",
    "mode",
    "status",
    "input_path_prefix",
    "output_path_prefix",
    "parameters",
    "workbench_job_id",
    "conductor_workflow_id",
    "error_message",
    "error_details",
    "created_at",
    "updated_at",
    "submitted_at",
    "started_at",
    "completed_at",
    # Beyond the contract's list: the poller's view of the run, for troubleshooting.
    "poll_failures",
    "last_poll_error",
    "last_polled_at",
)
HISTORY_FIELDS = ("status", "previous_status", "at", "source", "message", "details")
PIPELINE_FIELDS = (
    "name",
    "mode",
    "description",
    "enabled",
    "workflow_name",
    "workflow_version",
)


# ------------------------------------------------------------------------------ /api/v1


@api.post("/pipeline-runs")
def create_run():
    """Submit a run: 202 when created, 200 when an Idempotency-Key replays an earlier one."""
    gateway = _gateway()
    try:
        run_request, key, wait = _parse_submission(gateway.settings.allowed_path_schemes)
        submission = services.submit_run(
            gateway.database(), gateway.conductor, run_request, key, wait
        )
    except Exception as exc:
        metrics.count_run_outcome(_outcome_of(exc))
        raise
    metrics.count_run_outcome("accepted" if submission.created else "idempotent_replay")
    response = jsonify(render_run(submission.run, submission.history))
    response.headers["Location"] = f"{api.url_prefix}/pipeline-runs/{submission.run['id']}"
    if not submission.created:
        response.headers["Idempotent-Replayed"] = "true"
        return response, 200
    return response, 202


@api.get("/pipeline-runs/<run_id>")
def get_run(run_id: str):
    """One run with its history, oldest event first."""
    _reject_query_parameters(())
    view = services.get_run(_gateway().database(), run_id)
    return jsonify(render_run(view.run, view.history))


@api.get("/pipeline-runs")
def list_runs():
    """A page of runs, newest first, and the cursor of the next page."""
    filters = validation.parse_list_filters(request.args)
    page = services.list_runs(_gateway().database(), filters)
    return jsonify(
        {"items": [render_run(run) for run in page.items], "next_cursor": page.next_cursor}
    )


@api.get("/pipelines")
def list_pipelines():
    """The pipeline catalog."""
    _reject_query_parameters(())
    pipelines = services.list_pipelines(_gateway().database())
    return jsonify({"items": [{name: p[name] for name in PIPELINE_FIELDS} for p in pipelines]})


# ------------------------------------------------------------------- operations (no auth)


@ops.get("/healthz")
def healthz():
    """Liveness: the process answers; dependencies are /readyz's business."""
    return jsonify({"status": "ok"})


@ops.get("/readyz")
def readyz():
    """Readiness: the database and Conductor both answer within a short timeout."""
    gateway = _gateway()
    checks = services.check_readiness(gateway.database(), gateway.conductor)
    failed = [name for name, state in checks.items() if state != "ok"]
    if not failed:
        return jsonify({"status": "ready", "checks": checks})
    response, status = error_response(
        503,
        "not_ready",
        f"Not ready: {', '.join(f'{name} {checks[name]}' for name in failed)}",
        [{"check": name, "status": checks[name]} for name in failed],
    )
    # The error shape plus the per-check view that probes and people read.
    payload = response.get_json()
    payload.update({"status": "not_ready", "checks": checks})
    return jsonify(payload), status


@ops.get("/metrics")
def metrics_text():
    """Prometheus exposition text."""
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)


@ops.get("/openapi.json")
def openapi_json():
    """The OpenAPI document of this API."""
    return jsonify(openapi.document())


# ----------------------------------------------------------------------------- rendering


def render_run(run: dict, history: list[dict] | None = None) -> dict:
    """The API's JSON of a run row (and its history when given)."""
    rendered = {name: _json_value(run.get(name)) for name in RUN_FIELDS}
    rendered["id"] = str(run["id"])
    rendered["poll_failures"] = run.get("poll_failures") or 0
    if history is not None:
        rendered["history"] = [
            {name: _json_value(event.get(name)) for name in HISTORY_FIELDS} for event in history
        ]
    return rendered


def _json_value(value):
    if isinstance(value, datetime):
        # ISO 8601 in UTC with an explicit offset and a fixed number of digits.
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


# ------------------------------------------------------------------------------ parsing


def _gateway():
    return current_app.extensions["gateway"]


def _parse_submission(
    allowed_schemes: frozenset[str],
) -> tuple[validation.RunRequest, str | None, float]:
    """The body, Idempotency-Key and ?wait= of a POST; every bad one named in one 422."""
    # An unreadable or oversized body is a 400/413 before anything else is judged.
    body = _json_body()
    details = _problems_of(lambda: _reject_query_parameters(("wait",)))
    wait = 0.0
    waits = request.args.getlist("wait")
    if len(waits) > 1:
        details.append(
            {"field": "wait", "rule": "repeated", "message": "wait: must be given at most once"}
        )
    elif waits:
        try:
            wait = validation.parse_wait(waits[0])
        except ValidationFailed as exc:
            details.extend(exc.details)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not _IDEMPOTENCY_KEY_RE.fullmatch(key):
        details.append(
            {
                "field": IDEMPOTENCY_HEADER,
                "rule": "format",
                "message": f"{IDEMPOTENCY_HEADER}: must be 1 to 255 printable ASCII characters",
            }
        )
    run_request = None
    try:
        run_request = validation.parse_run_request(body, allowed_schemes)
    except ValidationFailed as exc:
        details.extend(exc.details)
    _raise_problems(details)
    return run_request, key, wait


def _json_body() -> object:
    """The request body as JSON, whatever the Content-Type says; InvalidJson otherwise."""
    raw = _read_body(current_app.config["MAX_CONTENT_LENGTH"])
    if not raw.strip():
        raise InvalidJson("The request body is empty; send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJson(
            f"The request body is not valid UTF-8 (bad byte at offset {exc.start})"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidJson(
            f"The request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except (ValueError, RecursionError):
        # Numbers too long to convert, or nesting deeper than the parser goes.
        raise InvalidJson("The request body is JSON this service cannot read") from None


def _read_body(limit: int) -> bytes:
    """The raw body, or RequestEntityTooLarge when it is longer than `limit` bytes.

    Werkzeug's get_data() silently cuts a chunked body (no Content-Length) at the limit
    instead of refusing it, so such a body is read here, one byte past the limit at most.
    """
    if request.content_length is not None:
        if request.content_length > limit:
            raise RequestEntityTooLarge()
        return request.get_data(cache=False)
    if not request.environ.get("wsgi.input_terminated"):
        # A server that does not frame bodies without a length: nothing can be read safely.
        return b""
    stream = request.input_stream
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(min(64 * 1024, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise RequestEntityTooLarge()
    return b"".join(chunks)


def _reject_query_parameters(allowed: tuple[str, ...]) -> None:
    unknown = [name for name in request.args if name not in allowed]
    if unknown:
        hint = f"allowed are {', '.join(allowed)}" if allowed else "this route takes none"
        _raise_problems(
            [
                {
                    "field": name[:200],
                    "rule": "unknown_field",
                    "message": f"{json.dumps(name[:64])} is not a known query parameter; {hint}",
                }
                for name in unknown[:50]
            ]
        )


def _problems_of(check) -> list[dict]:
    try:
        check()
    except ValidationFailed as exc:
        return list(exc.details)
    return []


def _raise_problems(details: list[dict]) -> None:
    if not details:
        return
    names = sorted({str(detail.get("field")) for detail in details})
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    plural = "" if len(names) == 1 else "s"
    raise ValidationFailed(
        f"The request has {len(names)} invalid field{plural}: {shown}.", details=details
    )


def _outcome_of(exc: Exception) -> str:
    if isinstance(exc, ValidationFailed | InvalidJson | RequestEntityTooLarge):
        return "invalid"
    if isinstance(exc, services.PipelineNotFound):
        return "pipeline_not_found"
    if isinstance(exc, Conflict):
        return "conflict"
    if isinstance(exc, ConductorUnavailable):
        return "conductor_failed"
    if isinstance(exc, DatabaseUnavailable | psycopg2.OperationalError):
        return "database_unavailable"
    return "error"
