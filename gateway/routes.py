"""HTTP routes: parse and validate, call one service function, render JSON."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from . import inputs, metrics, notifications_view, openapi, services, validation
from .auth import current_token_name
from .errors import error_response
from .rendering import render_pipeline, render_run
from .submission import run_url

api = Blueprint("api", __name__, url_prefix="/api/v1")
ops = Blueprint("ops", __name__)


# ------------------------------------------------------------------------------ /api/v1


@api.post("/pipeline-runs")
def create_run():
    """Submit a run: 202 when created, 200 when an Idempotency-Key replays an earlier one."""
    gateway = _gateway()
    try:
        asked = inputs.parse_submission(
            gateway.settings.allowed_path_schemes, gateway.settings.webhook_allowed_hosts
        )
        submission = services.submit_run(
            gateway.database(),
            gateway.conductor,
            asked.run_request,
            asked.idempotency_key,
            asked.wait_seconds,
            submitted_by=current_token_name(),
            default_deadline_seconds=gateway.settings.run_deadline_seconds,
            waiting_room=gateway.waiting_room,
        )
    except Exception as exc:
        metrics.count_run_outcome(metrics.outcome_of(exc))
        raise
    metrics.count_run_outcome("accepted" if submission.created else "idempotent_replay")
    return _accepted(submission)


@api.post("/pipeline-runs/<run_id>/rerun")
def rerun_run(run_id: str):
    """Re-run an ended run: 202 with the new run, 200 when an Idempotency-Key replays one."""
    gateway = _gateway()
    asked = inputs.parse_rerun()
    submission = services.rerun_run(
        gateway.database(),
        gateway.conductor,
        run_id,
        asked.parameters,
        asked.idempotency_key,
        submitted_by=current_token_name(),
        default_deadline_seconds=gateway.settings.run_deadline_seconds,
    )
    return _accepted(submission)


@api.get("/pipeline-runs/<run_id>")
def get_run(run_id: str):
    """One run with its history, oldest event first."""
    inputs.reject_query_parameters()
    view = services.get_run(_gateway().database(), run_id)
    return jsonify(render_run(view.run, view.history))


@api.post("/pipeline-runs/<run_id>/cancel")
def cancel_run(run_id: str):
    """Cancel a run: 202 with the run (CANCELLED at once, or its cancel requested)."""
    inputs.reject_query_parameters()
    gateway = _gateway()
    view = services.cancel_run(gateway.database(), gateway.conductor, run_id, current_token_name())
    return jsonify(render_run(view.run, view.history)), 202


@api.get("/pipeline-runs/<run_id>/workflow")
def get_run_workflow(run_id: str):
    """The Conductor workflow behind a run: its status and its tasks."""
    inputs.reject_query_parameters()
    gateway = _gateway()
    return jsonify(services.get_run_workflow(gateway.database(), gateway.conductor, run_id))


@api.get("/pipeline-runs/<run_id>/notifications")
def list_run_notifications(run_id: str):
    """The run's status-change notifications, oldest first, with their attempts and state."""
    inputs.reject_query_parameters()
    rows = services.list_notifications(_gateway().database(), run_id)
    return jsonify({"items": [notifications_view.render_notification(row) for row in rows]})


@api.get("/pipeline-runs")
def list_runs():
    """A page of runs, newest first, and the cursor of the next page."""
    filters = validation.parse_list_filters(request.args)
    gateway = _gateway()
    page = services.list_runs(gateway.database(), filters, gateway.cursor_key)
    return jsonify(
        {"items": [render_run(run) for run in page.items], "next_cursor": page.next_cursor}
    )


@api.get("/pipelines")
def list_pipelines():
    """The pipeline catalog."""
    inputs.reject_query_parameters()
    pipelines = services.list_pipelines(_gateway().database())
    return jsonify({"items": [render_pipeline(pipeline) for pipeline in pipelines]})


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
    gateway = _gateway()
    body, content_type = metrics.render(
        metrics.unconfirmed_runs(gateway.database(), gateway.settings.poll_interval_seconds)
    )
    return Response(body, content_type=content_type)


@ops.get("/openapi.json")
def openapi_json():
    """The OpenAPI document of this API."""
    return jsonify(openapi.document(_gateway().settings.allowed_path_schemes))


# ------------------------------------------------------------------------------ helpers


def _accepted(submission: services.AcceptedRun):
    """202 with a created run and its Location; 200 marked Idempotent-Replayed for a replay."""
    response = jsonify(render_run(submission.run, submission.history))
    response.headers["Location"] = run_url(submission.run["id"])
    if not submission.created:
        response.headers["Idempotent-Replayed"] = "true"
        return response, 200
    return response, 202


def _gateway():
    return current_app.extensions["gateway"]
