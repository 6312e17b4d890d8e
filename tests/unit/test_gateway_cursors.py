"""List cursors: only a cursor this API issued reaches the database; any other is a 422."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest

from batchcore.runs.paging import cursor_key, decode_cursor, encode_cursor, open_cursor, seal_cursor
from tests.unit.test_gateway_http import AUTH, TOKEN, assert_error, make_app

RUN_ID = uuid.UUID("6f1c1f5e-7d64-4d5c-9d0b-1b2f6d8c9e01")
CREATED = datetime(2026, 11, 28, 9, 30, 1, 123456, tzinfo=UTC)


def unsigned(created: str, run_id: str = str(RUN_ID)) -> str:
    """A cursor in the shape the gateway used to issue, unsigned: anyone could make one."""
    raw = json.dumps([created, run_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


HOSTILE = {
    # Python's fromisoformat takes these; PostgreSQL refuses them (a 500 before).
    "ISO week date": unsigned("2024-W01-1"),
    "offset of 20 hours": unsigned("2024-01-01T00:00:00+20:00"),
    "ordinal date": unsigned("2024-001"),
    # Well-formed, but never issued.
    "forged position": unsigned(CREATED.isoformat()),
    "garbage": "not-a-cursor",
    "dot only": ".",
}


@pytest.mark.parametrize("cursor", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_cursor_this_api_did_not_issue_is_422_naming_cursor(cursor):
    # NoDatabase: the cursor is refused before any SQL runs.
    client = make_app().test_client()
    response = client.get("/api/v1/pipeline-runs", query_string={"cursor": cursor}, headers=AUTH)
    error = assert_error(response, 422, "validation_failed")
    assert [detail["field"] for detail in error["details"]] == ["cursor"]


def key(**settings) -> bytes:
    return cursor_key(settings.get("secret"), settings.get("tokens", (TOKEN,)))


def test_an_issued_cursor_opens_in_any_worker_and_after_a_restart():
    position = encode_cursor(CREATED, RUN_ID)
    issued = seal_cursor(position, key())
    # Another process (or the same after a restart) derives the same key from the settings.
    assert open_cursor(issued, key()) == position
    assert decode_cursor(open_cursor(issued, key())) == (CREATED.isoformat(), str(RUN_ID))
    with_secret = seal_cursor(position, key(secret="s" * 40))
    assert open_cursor(with_secret, key(secret="s" * 40, tokens=("rotated-token-0123456789",)))


def test_a_tampered_or_foreign_cursor_does_not_open():
    position = encode_cursor(CREATED, RUN_ID)
    issued = seal_cursor(position, key())
    other_position = encode_cursor(CREATED.replace(year=2025), RUN_ID)
    signature = issued.rpartition(".")[2]
    for cursor in (
        f"{other_position}.{signature}",
        issued[:-1] + ("A" if issued[-1] != "A" else "B"),
        seal_cursor(position, key(secret="another-gateway-secret-key-0123456789")),
        seal_cursor(position, key(tokens=("another-token-0123456789",))),
        position,
    ):
        with pytest.raises(ValueError):
            open_cursor(cursor, key())


@pytest.mark.parametrize(
    "created",
    ["2024-W01-1", "2024-01-01T00:00:00+20:00", "2024-001", "20240101T000000", "2024-01-01"],
)
def test_decode_cursor_takes_only_the_timestamps_it_writes(created):
    with pytest.raises(ValueError):
        decode_cursor(unsigned(created))
