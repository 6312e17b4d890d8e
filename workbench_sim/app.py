"""Flask app factory: the Workbench API contract plus the /_sim admin endpoints."""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, request, url_for
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from . import hostile
from .config import SimConfig
from .faults import CallTarget, FaultInjector
from .jobs import Clock, JobStore, ValidationError, parse_submission

# Set by the server on requests that arrive on the admin port, where faults never apply.
ADMIN_ENVIRON_KEY = "workbench_sim.admin_listener"
# Set by the submit view when the lose_submit_answer fault fires for this request.
DROP_ENVIRON_KEY = "workbench_sim.drop_connection"
MAX_BODY_BYTES = 1024 * 1024
MAX_IDEMPOTENCY_KEY_LENGTH = 255

log = logging.getLogger(__name__)


class AnswerLost(ConnectionAbortedError):
    """The answer was dropped on purpose; werkzeug treats it as a dropped connection."""


class RequestStats:
    """Requests counted by route, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def record(self, endpoint: str) -> None:
        with self._lock:
            self._counts[endpoint] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


@dataclass
class SimState:
    """What the views share; the server reaches it through get_state(app)."""

    config: SimConfig
    store: JobStore
    faults: FaultInjector
    stats: RequestStats = field(default_factory=RequestStats)


def get_state(app: Flask) -> SimState:
    """The simulator state of an app made by create_app."""
    return app.extensions["workbench_sim"]


def create_app(
    config: SimConfig,
    *,
    clock: Clock = time.time,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> Flask:
    """Build the simulator app; clock, sleep and rng are injectable so tests need not wait."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    state = SimState(
        config=config,
        store=JobStore(
            clock=clock,
            queue_seconds=config.queue_seconds,
            run_seconds=config.run_seconds,
            cancel_seconds=config.cancel_seconds,
            job_log_path=config.job_log_path,
        ),
        faults=FaultInjector(clock=clock, rng=rng),
    )
    app.extensions["workbench_sim"] = state

    @app.before_request
    def _count_request() -> None:
        rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        state.stats.record(f"{request.method} {rule}")

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int, dict[str, str]]:
        headers = {}
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            headers["Allow"] = ", ".join(exc.valid_methods)
        code = (exc.name or "error").lower().replace(" ", "_")
        return _error(exc.code or 500, code, exc.description or exc.name, headers=headers)

    app.register_blueprint(_api_blueprint(state, sleep))
    app.register_blueprint(_admin_blueprint(state), url_prefix="/_sim")
    app.wsgi_app = _DropConnectionMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


def _api_blueprint(state: SimState, sleep: Callable[[float], None]) -> Blueprint:
    api = Blueprint("api", __name__)
    expected_token = state.config.api_token.encode()

    @api.before_request
    def _inject_faults() -> Any:
        # Faults run before auth: they stand for the infrastructure in front of the service.
        if request.environ.get(ADMIN_ENVIRON_KEY):
            return None
        endpoint = _ENDPOINTS.get(request.endpoint or "", "status")
        g.call_target = _call_target(state)
        decision = state.faults.on_api_call(endpoint, g.call_target)
        g.slow_seconds = decision.slow_seconds
        g.changes, g.trickle_seconds = decision.changes, decision.trickle_seconds
        if decision.replace is not None:
            log.warning("fault %s: answering %s %s", decision.replace, request.method, request.path)
            body, content_type = hostile.replacement(decision.replace)
            return Response(body, 200, content_type=content_type)
        if decision.status is None:
            return None
        log.warning(
            "fault %s: answering %s %s with %d",
            decision.kind,
            request.method,
            request.path,
            decision.status,
        )
        headers = {}
        if decision.retry_after is not None:
            headers["Retry-After"] = str(decision.retry_after)
        if decision.status == 429:
            return _error(429, "rate_limited", "too many requests (simulated)", headers=headers)
        return _error(
            decision.status,
            "unavailable",
            "the Workbench is unavailable (simulated)",
            headers=headers,
        )

    @api.before_request
    def _authenticate() -> Any:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        # compare_digest on bytes: constant time, and no TypeError on non-ASCII input.
        if scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), expected_token
        ):
            return None
        return _error(
            401,
            "unauthorized",
            "a valid bearer token is required",
            headers={"WWW-Authenticate": 'Bearer realm="workbench"'},
        )

    @api.after_request
    def _slow_down(response: Response) -> Response:
        changes = g.get("changes")
        if changes and 200 <= response.status_code < 300 and response.is_json:
            # json.dumps, not jsonify: a NUL or a lone surrogate goes out escaped, as sent.
            response.set_data(json.dumps(response.get_json() | changes))
        # After the work is done, so a client that times out may still have created a job.
        seconds = g.get("slow_seconds", 0.0)
        if seconds:
            sleep(seconds)
        trickle = g.get("trickle_seconds", 0.0)
        if trickle:
            data = response.get_data()
            response.response = hostile.trickled(data, trickle, sleep)
            response.headers["Content-Length"] = str(len(data))
        return response

    @api.post("/jobs")
    def submit_job() -> Any:
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            return _error(
                400,
                "missing_idempotency_key",
                "the Idempotency-Key header is required (use the pipeline run id)",
            )
        if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            return _error(
                400,
                "bad_idempotency_key",
                f"the Idempotency-Key header is over {MAX_IDEMPOTENCY_KEY_LENGTH} characters",
            )
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return _error(400, "bad_request", "the request body must be a JSON object")
        try:
            submission = parse_submission(body)
        except ValidationError as exc:
            return _error(422, "validation_failed", "the job request is invalid", exc.details)

        view, created = state.store.submit(key, submission)
        if not request.environ.get(ADMIN_ENVIRON_KEY) and state.faults.take_lose_submit_answer(
            g.call_target
        ):
            log.warning(
                "fault lose_submit_answer: job %s exists, dropping the answer to its submitter",
                view["job_id"],
            )
            request.environ[DROP_ENVIRON_KEY] = True
        if created:
            location = url_for("api.get_job", job_id=view["job_id"])
            return jsonify(view), 201, {"Location": location}
        return jsonify(view), 200

    @api.get("/jobs/<job_id>")
    def get_job(job_id: str) -> Any:
        view = state.store.get(job_id)
        if view is None:
            return _error(404, "not_found", f"no job with id {job_id!r}")
        return jsonify(view)

    @api.post("/jobs/<job_id>/cancel")
    def cancel_job(job_id: str) -> Any:
        answer = state.store.cancel(job_id)
        if answer is None:
            return _error(404, "not_found", f"no job with id {job_id!r}")
        view, already_ended = answer
        # 200: it had ended and the status is final; 202: CANCELLED comes later (or its end).
        return jsonify(view), 200 if already_ended else 202

    return api


# What a fault's `only` calls each view; any other call (GET /jobs/{id}) is "status".
_ENDPOINTS = {"api.submit_job": "submit", "api.cancel_job": "cancel"}


def _call_target(state: SimState) -> CallTarget:
    """The run, job and input prefix a call is about, so aimed faults fire only on those."""
    job_id = (request.view_args or {}).get("job_id")
    if job_id is None:
        try:
            body = request.get_json(force=True, silent=True)
        except HTTPException:
            body = None  # too large: the view answers that itself
        prefix = body.get("input_path_prefix") if isinstance(body, dict) else None
        return CallTarget(
            run_id=request.headers.get("Idempotency-Key", "").strip() or None,
            input_path_prefix=prefix if isinstance(prefix, str) else None,
        )
    subject = state.store.subject(job_id)
    if subject is None:
        return CallTarget(job_id=job_id)
    return CallTarget(run_id=subject[0], job_id=job_id, input_path_prefix=subject[1])


def _admin_blueprint(state: SimState) -> Blueprint:
    admin = Blueprint("sim", __name__)

    @admin.get("/jobs")
    def list_jobs() -> Any:
        items = state.store.list(request.args.get("pipeline_run_id") or None)
        return jsonify(items=items, count=len(items))

    @admin.get("/stats")
    def stats() -> Any:
        return jsonify(
            requests=state.stats.snapshot(),
            jobs_created=state.store.created_count,
            faults_injected=state.faults.injected(),
        )

    @admin.get("/faults")
    def show_faults() -> Any:
        return jsonify(faults=state.faults.snapshot())

    @admin.post("/faults")
    def set_faults() -> Any:
        body = request.get_json(force=True, silent=True)
        try:
            state.faults.configure(body)
        except ValidationError as exc:
            return _error(422, "validation_failed", "the fault settings are invalid", exc.details)
        log.warning("faults armed: %s", sorted(body))
        return jsonify(faults=state.faults.snapshot())

    @admin.delete("/faults")
    def clear_faults() -> Any:
        state.faults.clear()
        log.info("faults cleared")
        return jsonify(faults=state.faults.snapshot())

    @admin.post("/reset")
    def reset() -> Any:
        state.faults.reset()
        state.store.reset()
        state.stats.reset()
        log.info("simulator reset: jobs, faults and counters cleared")
        return jsonify(status="reset")

    return admin


def _error(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[Response, int, dict[str, str]]:
    # The same error shape as the gateway's, so one client-side parser reads both.
    body = {"error": {"code": code, "message": message, "details": details or []}}
    return jsonify(body), status, headers or {}


class _DropConnectionMiddleware:
    """Turns a request marked with DROP_ENVIRON_KEY into a connection closed without an answer."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]):
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        body = self.wsgi_app(environ, start_response)
        if not environ.get(DROP_ENVIRON_KEY):
            return body
        if hasattr(body, "close"):
            body.close()
        # werkzeug sends nothing until the body is iterated, so shutting the socket now means
        # the client reads EOF instead of a status line. (The test client has no socket; it
        # simply sees AnswerLost raised.)
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        raise AnswerLost("answer dropped on purpose (fault lose_submit_answer)")
