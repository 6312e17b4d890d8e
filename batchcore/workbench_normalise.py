"""Workbench answers made storable: what PostgreSQL and our code can hold, whatever was sent.

A NUL in a message (psycopg2 refuses the string, jsonb refuses it in details), a 1 MB message,
or a timestamp PostgreSQL cannot store (offset +20:00, year 0001 or 9999) would make the
poller's one-statement batch write fail for every run in the batch. So the client cleans every
answer here, once, and says what it changed (with the raw value, itself made storable).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from batchcore.http_errors import excerpt

__all__ = [
    "EARLIEST_TIMESTAMP",
    "LATEST_TIMESTAMP",
    "MAX_ERROR_MESSAGE_CHARS",
    "MAX_JOB_ID_CHARS",
    "MAX_UTC_OFFSET",
    "clean_message",
    "job_id_problem",
    "storable_timestamp",
]

# A Workbench error_message is stored (and shown) at most this long; the rest is cut off and
# its full length noted in the details.
MAX_ERROR_MESSAGE_CHARS = 4000
# A job id is an identifier: printable and at most this long, else the answer is malformed.
MAX_JOB_ID_CHARS = 255
# A raw value kept in the details beside the one we used instead is cut to this length.
MAX_RAW_CHARS = 100
# Timestamps outside [EARLIEST, LATEST) are not believed: years 0001 and 9999 cannot even be
# read back once moved to another time zone, and a job from before 2000 or after 2200 is absurd.
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIMESTAMP = datetime(2200, 1, 1, tzinfo=UTC)
# No time zone is further from UTC than this; PostgreSQL refuses offsets from 16 hours on.
MAX_UTC_OFFSET = timedelta(hours=14)

# Control characters (tab and newline kept) and lone surrogates, which UTF-8 cannot encode.
_UNSTORABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_message(text: str, field: str, notes: dict[str, Any]) -> str | None:
    """``text`` without control characters, capped at :data:`MAX_ERROR_MESSAGE_CHARS`;
    None when nothing is left. What was changed is added to ``notes`` under ``field``."""
    # Bounded work on a huge string: what lies beyond the cap is dropped anyway.
    head = text[: MAX_ERROR_MESSAGE_CHARS * 2]
    cleaned, removed = _UNSTORABLE.subn("", head)
    if removed:
        notes[f"{field}_control_characters_removed"] = removed
    if len(text) > len(head) or len(cleaned) > MAX_ERROR_MESSAGE_CHARS:
        cleaned = cleaned[: MAX_ERROR_MESSAGE_CHARS - 1] + "…"
        notes[f"{field}_truncated_from_chars"] = len(text)
    cleaned = cleaned.strip()
    return cleaned or None


def job_id_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable job id, or None when it is one."""
    if not isinstance(value, str) or not value:
        return "job_id is missing or not a string"
    if len(value) > MAX_JOB_ID_CHARS:
        return f"job_id is {len(value)} characters long (at most {MAX_JOB_ID_CHARS})"
    if not value.isprintable() or value != value.strip():
        return f"job_id {excerpt(value, 50)!r} has control or space characters"
    return None


def storable_timestamp(
    value: Any, field: str, now: datetime, notes: dict[str, Any]
) -> datetime | None:
    """``value`` as a UTC datetime PostgreSQL can store; None when absent.

    An unusable value (not ISO 8601, an offset no time zone has, outside
    [:data:`EARLIEST_TIMESTAMP`, :data:`LATEST_TIMESTAMP`)) is replaced by ``now``, our clock,
    and kept, made storable, in ``notes`` under ``<field>_raw``.
    """
    if value is None or value == "":
        return None
    when = _parse(value)
    if when is None:
        notes[f"{field}_raw"] = excerpt(str(value), MAX_RAW_CHARS)
        notes[f"{field}_replaced_by"] = "our clock"
        return now
    return when


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:  # no offset given: the contract's timestamps are UTC
        when = when.replace(tzinfo=UTC)
    offset = when.utcoffset()
    if offset is None or abs(offset) > MAX_UTC_OFFSET:
        return None
    try:
        when = when.astimezone(UTC)
    except OverflowError:  # year 0001 east of UTC, or 9999 west of it
        return None
    return when if EARLIEST_TIMESTAMP <= when < LATEST_TIMESTAMP else None
