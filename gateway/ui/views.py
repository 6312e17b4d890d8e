"""The run browser's pages; each calls the same service functions as the API's routes."""

from __future__ import annotations

import json
import logging
import secrets
from datetime import UTC, datetime

from flask import abort, current_app, jsonify, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from batchcore.db import CONNECTION_ERRORS
from batchcore.errors import (
    ConductorUnavailable,
    Conflict,
    DatabaseUnavailable,
    DomainError,
    NotFound,
    ValidationFailed,
)
from batchcore.runs import lifecycle

from .. import inputs, overview, services, validation
from ..problems import raise_if_any
from ..rendering import render_run
from . import bp, present, session

log = logging.getLogger(__name__)

# Seconds between refreshes of a page that shows something still changing.
RUNS_REFRESH_SECONDS = 3
RUN_REFRESH_SECONDS = 2
SYSTEM_REFRESH_SECONDS = 5
SIGN_IN_RETRY_SECONDS = 10
OPEN_ENDPOINTS = frozenset({"ui.login", "ui.login_post", "ui.static"})


@bp.before_request
def require_session():
    """Every page but the sign-in form needs a session; every POST its CSRF token."""
    if request.method == "POST" and not session.csrf_ok():
        abort(403, "This form has expired or did not come from this site; reload the page.")
    if request.endpoint in OPEN_ENDPOINTS or session.signed_in(current_app):
        return None
    session.forget_sign_in()
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("ui.login", next=target))


@bp.context_processor
def page_helpers():
    """What every template may use."""
    return {"ui": present, "csrf_token": session.csrf_token, "now": datetime.now(UTC)}


@bp.get("/")
def home():
    """The run list is the browser's front page."""
    return redirect(url_for("ui.runs"))


@bp.get("/login")
def login():
    """The sign-in form."""
    return render_template(
        "ui/login.html", next=_safe_next(request.args.get("next")), signed_out="bye" in request.args
    )


@bp.post("/login")
def login_post():
    """Sign in with an API token; a wrong one is refused slowly."""
    target = _safe_next(request.form.get("next"))
    outcome = session.sign_in(current_app, request.form.get("token", ""))
    if outcome == session.OK:
        return redirect(target or url_for("ui.runs"), 303)
    if outcome == session.THROTTLED:
        page = render_template("ui/login.html", next=target, refused=True, busy=True)
        return page, 429, {"Retry-After": str(SIGN_IN_RETRY_SECONDS)}
    return render_template("ui/login.html", next=target, refused=True), 401


@bp.get("/logout")
def logout():
    """A confirmation form: signing out changes state, so it is a POST with a CSRF token."""
    return render_template("ui/logout.html")


@bp.post("/logout")
def logout_post():
    """End the session."""
    session.sign_out()
    return redirect(url_for("ui.login", bye=1), 303)


@bp.get("/runs")
def runs():
    """The runs, newest first, filtered by status and pipeline, a page at a time."""
    gateway = _gateway()
    db = gateway.database()
    args = MultiDict([(k, v) for k, v in request.args.items(multi=True) if v.strip()])
    problems = []
    try:
        filters = validation.parse_list_filters(args)
    except ValidationFailed as exc:
        problems = [detail.get("message", exc.message) for detail in exc.details] or [exc.message]
        filters = validation.ListFilters()
    try:
        page = services.list_runs(db, filters, gateway.cursor_key)
    except ValidationFailed as exc:
        problems = [detail.get("message", exc.message) for detail in exc.details]
        filters = validation.ListFilters(statuses=filters.statuses, pipeline=filters.pipeline)
        page = services.list_runs(db, filters, gateway.cursor_key)
    counts = overview.count_runs_by_status(db, filters.pipeline)
    active = sum(counts[status] for status in lifecycle.ALL if present.is_active(status))
    return render_template(
        "ui/runs.html",
        runs=page.items,
        next_cursor=page.next_cursor,
        filters=filters,
        counts=counts,
        statuses=lifecycle.ALL,
        pipelines=services.list_pipelines(db),
        problems=problems,
        refresh=RUNS_REFRESH_SECONDS if active else None,
        first_page=filters.cursor is None,
    )


@bp.get("/runs/<run_id>")
def run(run_id: str):
    """Everything about one run: its fields, error, history and Conductor workflow."""
    gateway = _gateway()
    view = services.get_run(gateway.database(), run_id)
    workflow, workflow_problem = None, None
    try:
        workflow = services.get_run_workflow(gateway.database(), gateway.conductor, run_id)
    except (ConductorUnavailable, NotFound) as exc:
        workflow_problem = exc.message
    now = datetime.now(UTC)
    active = present.is_active(view.run["status"]) or bool(
        workflow and workflow["status"] == "RUNNING"
    )
    return render_template(
        "ui/run.html",
        run=view.run,
        history=view.history,
        workflow=workflow,
        workflow_problem=workflow_problem,
        timeline=present.timeline(workflow, now) if workflow else None,
        refresh=RUN_REFRESH_SECONDS if active else None,
    )


@bp.get("/runs/<run_id>.json")
def run_json(run_id: str):
    """The run as the API answers it, for a reader signed in here rather than with a token."""
    view = services.get_run(_gateway().database(), run_id)
    return jsonify(render_run(view.run, view.history))


@bp.get("/runs/<run_id>/cancel")
def cancel_confirm(run_id: str):
    """Ask before cancelling; the form's POST (with the CSRF token) cancels."""
    view = services.get_run(_gateway().database(), run_id)
    return render_template("ui/confirm.html", run=view.run, action="cancel")


@bp.post("/runs/<run_id>/cancel")
def cancel_post(run_id: str):
    """Cancel the run as POST /api/v1/pipeline-runs/{id}/cancel does, then show it."""
    gateway = _gateway()
    actor = session.signed_in_name(current_app)
    view = services.cancel_run(gateway.database(), gateway.conductor, run_id, actor)
    return redirect(url_for("ui.run", run_id=view.run["id"]), 303)


@bp.get("/runs/<run_id>/rerun")
def rerun_confirm(run_id: str):
    """Ask before re-running, with the parameters to run with (the original's to start)."""
    view = services.get_run(_gateway().database(), run_id)
    return render_template(
        "ui/confirm.html",
        run=view.run,
        action="rerun",
        parameters=present.pretty_json(view.run["parameters"]),
        # One key per form: sending the form twice makes one re-run.
        key=f"ui-{secrets.token_urlsafe(16)}",
    )


@bp.post("/runs/<run_id>/rerun")
def rerun_post(run_id: str):
    """Re-run the run as POST /api/v1/pipeline-runs/{id}/rerun does, then show the new run."""
    gateway = _gateway()
    parameters = _form_parameters(request.form.get("parameters", ""))
    key = request.form.get("key") or None
    raise_if_any(inputs.idempotency_key_problems(key))
    accepted = services.rerun_run(
        gateway.database(),
        gateway.conductor,
        run_id,
        parameters,
        key,
        submitted_by=session.signed_in_name(current_app),
        default_deadline_seconds=gateway.settings.run_deadline_seconds,
    )
    return redirect(url_for("ui.run", run_id=accepted.run["id"]), 303)


def _form_parameters(text: str) -> dict | None:
    """The parameters typed in the form (None when left empty: the original's), checked as
    the API checks a rerun's body."""
    if not text.strip():
        return None
    try:
        parameters = json.loads(text)
    except ValueError as exc:
        raise ValidationFailed(f"The parameters are not JSON: {exc}") from None
    return validation.parse_rerun_request({"parameters": parameters})


@bp.get("/pipelines")
def pipelines():
    """The catalog."""
    return render_template(
        "ui/pipelines.html", pipelines=services.list_pipelines(_gateway().database())
    )


@bp.get("/system")
def system():
    """The poller loop, the active runs and whether each service answers."""
    gateway = _gateway()
    status = overview.system_status(
        gateway.database(), gateway.conductor, gateway.settings.workbench_api_url
    )
    return render_template("ui/system.html", refresh=SYSTEM_REFRESH_SECONDS, **status)


# ---------------------------------------------------------------------------- errors


@bp.errorhandler(DomainError)
def domain_error(exc: DomainError):
    """An HTML page for the errors the API answers as JSON."""
    if isinstance(exc, NotFound):
        return _error_page(404, "Not found", exc.message)
    if isinstance(exc, ValidationFailed):
        messages = [d.get("message") for d in exc.details if d.get("message")]
        return _error_page(422, "Not understood", " ".join([exc.message, *messages]))
    if isinstance(exc, Conflict):
        return _error_page(409, "Not possible now", exc.message)
    if isinstance(exc, DatabaseUnavailable | ConductorUnavailable):
        return _unavailable(exc)
    return _error_page(500, "Something went wrong", "An unexpected error occurred; it was logged")


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    """Refused forms (403) and other HTTP errors as pages."""
    return _error_page(exc.code or 500, exc.name, exc.description or exc.name)


def _unavailable(exc: Exception):
    log.warning("%s %s: %s", request.method, request.path, exc)
    return _error_page(503, "Unavailable", "The database or Conductor cannot be reached; retry.")


for _exc_type in CONNECTION_ERRORS:
    bp.register_error_handler(_exc_type, _unavailable)


def _error_page(status: int, title: str, message: str):
    return render_template("ui/error.html", status=status, title=title, message=message), status


# ---------------------------------------------------------------------------- helpers


def _safe_next(target: str | None) -> str | None:
    """A place to go after signing in, only when it is one of this browser's own pages."""
    if not target or not target.startswith("/ui/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) < 32 for c in target):
        return None
    return target


def _gateway():
    return current_app.extensions["gateway"]
