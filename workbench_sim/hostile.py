"""Hostile answers: faults that turn a good answer into one its clients must survive.

Some change fields of a 2xx JSON answer (a poison error_message, odd timestamps, an unknown
status); some replace the whole answer before any work (an HTML page or broken JSON with 200);
`trickle` sends any answer's body a few bytes at a time, so no read timeout ever fires.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

POISON_ERROR_MESSAGE = "poison_error_message"
ODD_TIMESTAMPS = "odd_timestamps"
UNKNOWN_STATUS = "unknown_status"
HTML_200 = "html_200"
MALFORMED_JSON = "malformed_json"
TRICKLE = "trickle"
# Kinds that change fields of a 2xx JSON answer, and those that replace the answer.
CHANGING = (POISON_ERROR_MESSAGE, ODD_TIMESTAMPS, UNKNOWN_STATUS)
REPLACING = (HTML_200, MALFORMED_JSON)
KINDS = (*CHANGING, *REPLACING, TRICKLE)

HUGE_MESSAGE_CHARS = 1024 * 1024
ERROR_MESSAGE_VARIANTS = ("nul", "huge", "surrogate")
TIMESTAMP_VARIANTS = ("offset", "year_0001", "year_9999")
DEFAULT_UNKNOWN_STATUS = "CANCELLING"
MAX_STATUS_CHARS = 100
MAX_HEADER_CHARS = 100
# A trickled body pauses at most this long between pieces: below any sane read timeout.
TRICKLE_MAX_GAP_SECONDS = 0.5

HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>"
    "<h1>Session expired</h1><p>Your session at the gateway has expired. "
    '<a href="https://sso.internal.example/login?next=%2Fjobs&amp;session=abc123">Sign in '
    "again</a>.</p></body></html>\n"
)
# A JSON answer cut off in the middle, as a proxy that drops a connection may pass it on.
MALFORMED_BODY = '{"job_id": "wb-0123", "status": "RUNN'


_VARIANTS = {
    POISON_ERROR_MESSAGE: ERROR_MESSAGE_VARIANTS,
    ODD_TIMESTAMPS: TIMESTAMP_VARIANTS,
}

Complain = Callable[[str, str, str], None]
"""Told (field, rule, message) of each problem found in a fault's settings."""


def parse_variant(kind: str, raw: dict[str, Any], bad: Complain) -> str | None:
    """The variant of a hostile kind (unknown_status: the status it answers); None for others."""
    if kind == UNKNOWN_STATUS:
        status = raw.get("status", DEFAULT_UNKNOWN_STATUS)
        if not isinstance(status, str) or not 0 < len(status) <= MAX_STATUS_CHARS:
            bad(
                f"{kind}.status",
                "type",
                f"{kind}.status must be a string of 1 to {MAX_STATUS_CHARS} characters",
            )
        return status
    if kind not in _VARIANTS:
        return None
    variant = raw.get("variant", _VARIANTS[kind][0])
    if variant not in _VARIANTS[kind]:
        choices = ", ".join(_VARIANTS[kind])
        bad(f"{kind}.variant", "enum", f"{kind}.variant must be one of {choices}")
    return variant


def parse_header_value(raw: dict[str, Any], kind: str, key: str, bad: Complain) -> str | None:
    """A header value sent verbatim (absurd values are the point), never able to split the
    header: 1 to MAX_HEADER_CHARS printable ASCII characters."""
    value = raw[key]
    if not 0 < len(value) <= MAX_HEADER_CHARS or not all(" " <= c <= "~" for c in value):
        bad(
            f"{kind}.{key}",
            "type",
            f"{kind}.{key} must be an integer, or 1 to {MAX_HEADER_CHARS} printable ASCII "
            "characters sent as they are",
        )
        return None
    return value


def changed_fields(kind: str, value: str, now: float) -> dict[str, Any]:
    """The fields a changing kind overwrites in the answer; `value` is its variant or status."""
    if kind == POISON_ERROR_MESSAGE:
        if value == "huge":
            return {"error_message": "x" * HUGE_MESSAGE_CHARS}
        if value == "surrogate":
            return {"error_message": "half a character: \ud800 (a lone surrogate)"}
        return {"error_message": "disk\x00full\x00 \x1b[31mbell\x07 and NUL bytes"}
    if kind == ODD_TIMESTAMPS:
        if value == "year_0001":
            stamp = "0001-01-01T00:00:00+05:00"
        elif value == "year_9999":
            stamp = "9999-12-31T23:59:59-05:00"
        else:  # an offset no time zone has, beyond what PostgreSQL stores
            stamp = datetime.fromtimestamp(now, UTC).astimezone(timezone(timedelta(hours=20)))
            stamp = stamp.isoformat()
        return {"started_at": stamp, "finished_at": stamp}
    if kind == UNKNOWN_STATUS:
        return {"status": value}
    raise ValueError(f"{kind} changes no fields")


def replacement(kind: str) -> tuple[str, str]:
    """(body, content type) of a replacing kind's 200 answer."""
    if kind == HTML_200:
        return HTML_PAGE, "text/html; charset=utf-8"
    return MALFORMED_BODY, "application/json"


def trickled(data: bytes, seconds: float, sleep: Callable[[float], None]) -> Iterator[bytes]:
    """`data` in pieces spread over `seconds`, TRICKLE_MAX_GAP_SECONDS apart when it is long
    enough (a short body comes a byte at a time)."""
    pieces = max(2, math.ceil(seconds / TRICKLE_MAX_GAP_SECONDS))
    size = max(1, math.ceil(len(data) / pieces))
    chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    gap = seconds / max(1, len(chunks))
    for chunk in chunks:
        sleep(gap)
        yield chunk
