"""What a request carries besides its path: the JSON body, `?wait=`, the Idempotency-Key,
and the query parameters a route does not take; a POST's submission is all of them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import NamedTuple

from flask import current_app, request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge

from batchcore.errors import ValidationFailed
from batchcore.runs.model import NewRun

from .connections import body_read
from .errors import InvalidJson
from .problems import Detail, problem, quoted, raise_if_any, unknown_problems
from .validation import parse_rerun_request, parse_run_request

IDEMPOTENCY_HEADER = "Idempotency-Key"
# 1 to 255 printable ASCII characters (the column allows 255; headers are ASCII).
_IDEMPOTENCY_KEY_RE = re.compile(r"[\x20-\x7e]{1,255}")
MAX_WAIT_SECONDS = 30.0
# A decimal number, with an exponent too: clients serialize small floats as 5.9e-08.
_WAIT_RE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_READ_CHUNK_BYTES = 64 * 1024
# No body at all (JSON's null is a body).
_EMPTY = object()


class Rerun(NamedTuple):
    """A rerun's parameters (None: the run's own) and its Idempotency-Key (or None)."""

    parameters: dict | None
    idempotency_key: str | None


def parse_rerun() -> Rerun:
    """The optional body and the Idempotency-Key of a rerun; every bad one named in one 422."""
    body = optional_json_body()
    details = unknown_parameter_problems(request.args, ())
    key = request.headers.get(IDEMPOTENCY_HEADER)
    details.extend(idempotency_key_problems(key))
    parameters = None
    try:
        parameters = parse_rerun_request(None if body is _EMPTY else body)
    except ValidationFailed as exc:
        details.extend(exc.details)
    raise_if_any(details)
    return Rerun(parameters, key)


class Submission(NamedTuple):
    """A POST's valid body, its Idempotency-Key (or None) and the seconds it may wait."""

    run_request: NewRun
    idempotency_key: str | None
    wait_seconds: float


def parse_submission(
    allowed_schemes: frozenset[str], allowed_webhook_hosts: frozenset[str] = frozenset()
) -> Submission:
    """The body, Idempotency-Key and ?wait= of a POST; every bad one named in one 422."""
    # An unreadable or oversized body is a 400/413 before anything else is judged.
    body = json_body()
    details = unknown_parameter_problems(request.args, ("wait",))
    wait, wait_details = wait_from(request.args)
    details.extend(wait_details)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    details.extend(idempotency_key_problems(key))
    run_request = None
    try:
        run_request = parse_run_request(body, allowed_schemes, allowed_webhook_hosts)
    except ValidationFailed as exc:
        details.extend(exc.details)
    raise_if_any(details)
    return Submission(run_request, key, wait)


# ------------------------------------------------------------------------ query strings


def unknown_parameter_problems(args: Mapping[str, str], allowed: tuple[str, ...]) -> list[Detail]:
    """One problem per query parameter a route does not take."""
    return unknown_problems(args, allowed, "query parameter", "query")


def reject_query_parameters(allowed: tuple[str, ...] = ()) -> None:
    """ValidationFailed naming every query parameter of this request the route does not take."""
    raise_if_any(unknown_parameter_problems(request.args, allowed))


def wait_from(args: MultiDict) -> tuple[float, list[Detail]]:
    """Seconds from `?wait=` given at most once (0 when absent), and its problems."""
    values = args.getlist("wait")
    if len(values) > 1:
        return 0.0, [problem("wait", "repeated", "must be given at most once")]
    try:
        return parse_wait(values[0] if values else None), []
    except ValidationFailed as exc:
        return 0.0, list(exc.details)


def parse_wait(value: str | None) -> float:
    """Seconds from `?wait=` (0 to 30, fractions and exponents allowed); 0 when absent."""
    if value is None:
        return 0.0
    if not isinstance(value, str) or len(value) > 32 or not _WAIT_RE.fullmatch(value):
        text = f"must be a number of seconds from 0 to {MAX_WAIT_SECONDS:g}"
        raise_if_any([problem("wait", "type", text)], "query", "parameter")
    seconds = float(value)
    if not 0.0 <= seconds <= MAX_WAIT_SECONDS:
        text = f"must be from 0 to {MAX_WAIT_SECONDS:g} seconds, not {quoted(value)}"
        raise_if_any([problem("wait", "range", text)], "query", "parameter")
    return seconds


# ------------------------------------------------------------------------------ headers


def idempotency_key_problems(key: str | None) -> list[Detail]:
    """The problem of an Idempotency-Key header that is not 1 to 255 printable ASCII."""
    if key is None or _IDEMPOTENCY_KEY_RE.fullmatch(key):
        return []
    return [problem(IDEMPOTENCY_HEADER, "format", "must be 1 to 255 printable ASCII characters")]


# --------------------------------------------------------------------------------- body


def json_body() -> object:
    """The request body as JSON, whatever the Content-Type says; InvalidJson otherwise."""
    body = optional_json_body()
    if body is _EMPTY:
        raise InvalidJson("The request body is empty; send a JSON object")
    return body


def optional_json_body() -> object:
    """The request body as JSON like json_body(), or _EMPTY when there is none."""
    raw = _read_body(current_app.config["MAX_CONTENT_LENGTH"])
    if not raw.strip():
        return _EMPTY
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
        raw = request.get_data(cache=False)
        body_read()
        return raw
    if not request.environ.get("wsgi.input_terminated"):
        # A server that does not frame bodies without a length: nothing can be read safely.
        return b""
    stream = request.input_stream
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(min(_READ_CHUNK_BYTES, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise RequestEntityTooLarge()
    body_read()
    return b"".join(chunks)
