"""Every failure becomes one JSON shape here, once: {"error": {code, message, details}}."""

from __future__ import annotations

import logging
import re

import psycopg2
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from batchcore.db import CONNECTION_ERRORS
from batchcore.errors import (
    ConductorUnavailable,
    Conflict,
    DatabaseUnavailable,
    DomainError,
    InvalidTransition,
    NotFound,
    ValidationFailed,
)

from .submission import run_url

log = logging.getLogger(__name__)


class InvalidJson(DomainError):
    """The request body is not UTF-8 JSON at all (as opposed to JSON with bad fields)."""

    code = "invalid_json"


# Most specific first: the first class the exception is an instance of decides.
DOMAIN_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (InvalidJson, 400),
    (ValidationFailed, 422),
    (NotFound, 404),
    (Conflict, 409),
    (InvalidTransition, 409),
    (DatabaseUnavailable, 503),
    (ConductorUnavailable, 503),
)

DATABASE_UNAVAILABLE_MESSAGE = "The database is unavailable; try again shortly"
CONDUCTOR_UNAVAILABLE_MESSAGE = "Conductor cannot be reached just now; try again shortly"
# Keys of an upstream error's details that carry internal addresses or raw answers.
INTERNAL_DETAIL_KEYS = frozenset({"conductor_url", "url", "response", "exception", "message"})
# Seconds a client should wait before retrying a 503: an outage is rarely shorter.
RETRY_AFTER_SECONDS = "5"

HTTP_MESSAGES = {
    400: ("bad_request", "The request could not be understood"),
    404: ("not_found", "No route matches this path"),
    405: ("method_not_allowed", "This route does not take that method"),
    413: ("payload_too_large", "Request bodies are limited to 1 MiB"),
}


def error_response(
    status: int, code: str, message: str, details: list | None = None
) -> tuple[Response, int]:
    """The one error body of the API."""
    return jsonify({"error": {"code": code, "message": message, "details": details or []}}), status


def register(app: Flask) -> None:
    """Install the handlers; nothing else in the gateway renders an error."""
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    # A psycopg2 connection error that slipped past Database.transaction() is still an
    # outage of the database, not a bug: 503, never 500.
    for exc_type in CONNECTION_ERRORS:
        app.register_error_handler(exc_type, _database_error)
    app.register_error_handler(Exception, _unexpected_error)


def _domain_error(exc: DomainError):
    status = next((code for cls, code in DOMAIN_STATUS if isinstance(exc, cls)), None)
    if status is None:
        return _unexpected_error(exc)
    if isinstance(exc, DatabaseUnavailable):
        return _database_error(exc)
    message, details = exc.message, exc.details
    if status >= 500:
        log.warning("%s %s: %s %s", request.method, request.path, exc.message, exc.details)
    if isinstance(exc, ConductorUnavailable) and not getattr(exc, "public", False):
        # Conductor's address and its answer are for the log; the client gets a sentence.
        message = CONDUCTOR_UNAVAILABLE_MESSAGE
        details = [d for d in (_public(detail) for detail in details) if d]
    body, status = error_response(status, exc.code, message, details)
    run_id = getattr(exc, "run_id", None)
    if run_id is not None:
        # The run exists: the answer names it, like a 202 would.
        body.headers["Location"] = run_url(run_id)
    if status == 503:
        body.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return body, status


def _public(detail: object) -> dict:
    """The keys of an error detail a client may see (no address, no upstream answer)."""
    if not isinstance(detail, dict):
        return {}
    return {key: value for key, value in detail.items() if key not in INTERNAL_DETAIL_KEYS}


def _database_error(exc: Exception):
    # The cause (host, port, driver text) is for the log, not for clients.
    log.warning("%s %s: database unavailable: %s", request.method, request.path, exc)
    body, status = error_response(503, DatabaseUnavailable.code, DATABASE_UNAVAILABLE_MESSAGE)
    body.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return body, status


def _http_error(exc: HTTPException):
    status = exc.code or 500
    code, message = HTTP_MESSAGES.get(status, (_snake(exc.name), exc.name))
    body, status = error_response(status, code, message)
    if status == 405 and getattr(exc, "valid_methods", None):
        body.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    return body, status


def _unexpected_error(exc: Exception):
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    if isinstance(exc, psycopg2.OperationalError):
        return _database_error(exc)
    # The traceback goes to the log only; the client gets a plain sentence.
    log.error("%s %s failed", request.method, request.path, exc_info=exc)
    return error_response(500, "internal_error", "An unexpected error occurred; it was logged")


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "error"
