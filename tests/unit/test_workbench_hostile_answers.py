"""Hostile Workbench answers (issue 12): normalised at the client's edge, or a permanent kind.

A poison answer froze a whole batch (psycopg2 refuses NUL, PostgreSQL refuses an offset of
+20:00, years 0001 and 9999 cannot be read back), and answers that retrying cannot fix must each
have a distinct, permanent kind the poller can give up on.
"""

from __future__ import annotations

import json
import threading
import time
import unicodedata
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchcore.workbench import WorkbenchClient
from batchcore.workbench_normalise import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    MAX_ERROR_MESSAGE_CHARS,
    clean_message,
    storable_timestamp,
)
from tests.unit.test_workbench_client import BASE, JOBS, TOKEN, raised, submit


@pytest.fixture
def client():
    c = WorkbenchClient(BASE, TOKEN)
    yield c
    c.close()


CLOCK = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


@pytest.fixture
def clocked():
    c = WorkbenchClient(BASE, TOKEN, clock=lambda: CLOCK)
    yield c
    c.close()


def assert_storable(value) -> None:
    """What PostgreSQL text and jsonb accept: UTF-8 encodable, no NUL, no control characters."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert_storable(key)
            assert_storable(item)
    elif isinstance(value, list):
        for item in value:
            assert_storable(item)
    elif isinstance(value, str):
        value.encode("utf-8")
        # Control characters (tab and newline aside) and surrogates are gone.
        assert all(c in "\t\n" or unicodedata.category(c) not in ("Cc", "Cs") for c in value)
    else:
        json.dumps(value, allow_nan=False)


def status_answer(requests_mock, **fields):
    body = {"job_id": "wb-1", "status": "FAILED"} | fields
    requests_mock.get(f"{JOBS}/wb-1", text=json.dumps(body))


@pytest.mark.parametrize(
    "message",
    ["disk\x00full", "\x00" * 10, "bad\ud800half\udfffsurrogates", "bell\x07 and\x1b[31m esc\x7f"],
)
def test_control_characters_and_surrogates_are_removed_from_error_message(
    clocked, requests_mock, message
):
    status_answer(requests_mock, error_message=message)
    job = clocked.get_job("wb-1")
    assert_storable(job.error_message)
    assert_storable(job.event_details())
    assert job.normalised["error_message_control_characters_removed"] >= 1
    if message.startswith("disk"):
        assert job.error_message == "diskfull"


def test_a_huge_error_message_is_capped_at_the_documented_size(clocked, requests_mock):
    status_answer(requests_mock, error_message="x" * 1_048_576)
    job = clocked.get_job("wb-1")
    assert len(job.error_message) == MAX_ERROR_MESSAGE_CHARS
    assert job.error_message.endswith("…")
    assert job.normalised["error_message_truncated_from_chars"] == 1_048_576


def test_newlines_of_a_multi_line_message_are_kept(clocked, requests_mock):
    status_answer(requests_mock, error_message="step 3 failed:\n\tno such file\r\n")
    assert clocked.get_job("wb-1").error_message == "step 3 failed:\n\tno such file"


@pytest.mark.parametrize(
    "raw",
    [
        "2026-11-28T09:00:00+20:00",
        "2026-11-28T09:00:00-15:30",
        "0001-01-01T00:00:00+05:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59-05:00",
        "9999-12-31T23:59:59Z",
        "yesterday",
        "x" * 10_000,
        1714567890,
        ["2026-11-28"],
    ],
)
def test_timestamps_postgresql_cannot_store_are_replaced_by_our_clock(clocked, requests_mock, raw):
    status_answer(requests_mock, started_at=raw, finished_at=raw)
    job = clocked.get_job("wb-1")
    assert job.started_at == job.finished_at == CLOCK
    assert job.normalised["started_at_replaced_by"] == "our clock"
    kept = job.normalised["finished_at_raw"]
    assert kept == str(raw)[:100] or kept.endswith("…")
    details = job.event_details()
    assert details["normalised"]["started_at_raw"] == kept
    assert_storable(details)


def test_a_usable_timestamp_is_kept_and_moved_to_utc(clocked, requests_mock):
    status_answer(requests_mock, started_at="2026-11-28T21:00:00+14:00")
    job = clocked.get_job("wb-1")
    assert job.started_at == datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
    assert job.started_at.utcoffset() == timedelta(0)
    assert job.normalised == {}
    assert "normalised" not in job.event_details()
    assert hash(job) == hash(clocked.get_job("wb-1"))  # still usable as a key


@pytest.mark.parametrize(
    "job_id",
    ["wb-\x001", "wb-1\n", " wb-1", "w" * 256, "wb-\ud800"],
)
def test_a_job_id_with_control_characters_or_absurd_length_is_malformed(
    client, requests_mock, job_id
):
    requests_mock.post(
        JOBS, status_code=201, text=json.dumps({"job_id": job_id, "status": "QUEUED"})
    )
    err = raised(lambda: submit(client))
    assert (err.transient, err.kind) == (False, "malformed")
    assert "job_id" in err.message
    assert_storable(err.message)
    assert_storable(err.details)


def test_a_long_job_id_within_the_limit_is_accepted(client, requests_mock):
    requests_mock.post(JOBS, status_code=201, json={"job_id": "w" * 255, "status": "QUEUED"})
    assert submit(client).job_id == "w" * 255


@pytest.mark.parametrize("status", ["CANCELLING", "queued", "\x00", "P" * 5000])
def test_an_unknown_status_is_its_own_permanent_kind(client, requests_mock, status):
    requests_mock.get(f"{JOBS}/wb-1", json={"job_id": "wb-1", "status": status})
    err = raised(lambda: client.get_job("wb-1"))
    assert (err.transient, err.kind) == (False, "unknown_status")
    assert "is not one of" in err.message and len(err.message) < 500
    assert_storable(err.message)
    requests_mock.post(JOBS, status_code=201, json={"job_id": "wb-1", "status": status})
    assert raised(lambda: submit(client)).kind == "unknown_status"


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        (
            {
                "text": "<html><body>Proxy login: http://sso.internal:8443/login?next=x</body>",
                "headers": {"Content-Type": "text/html"},
            },
            "not JSON (Content-Type text/html)",
        ),
        ({"text": '{"job_id": "wb-1", "status": '}, "not JSON"),
        ({"text": "[" * 100_000 + "]" * 100_000}, "not JSON"),
        ({"text": '{"job_id": "wb-1", "status": NaN}'}, "status"),
    ],
)
def test_a_body_that_is_not_json_is_malformed(client, requests_mock, kwargs, said):
    requests_mock.get(f"{JOBS}/wb-1", status_code=200, **kwargs)
    err = raised(lambda: client.get_job("wb-1"))
    assert (err.transient, err.kind, err.status_code) == (False, "malformed", 200)
    assert said in err.message
    assert "sso.internal" not in err.message
    assert_storable(err.details)
    # The excerpt keeps the page, but no query string of any URL in it.
    assert "next=x" not in json.dumps(err.details)


@pytest.mark.parametrize("code", [401, 403])
def test_401_and_403_are_their_own_permanent_kind(client, requests_mock, code):
    requests_mock.get(
        f"{JOBS}/wb-1",
        status_code=code,
        text=f"denied: token {TOKEN} expired, see https://admin:pw@idp.test/rotate?key=abc",
    )
    err = raised(lambda: client.get_job("wb-1"))
    assert (err.transient, err.kind, err.status_code) == (False, "unauthorized", code)
    assert "WORKBENCH_API_TOKEN" in err.message
    dumped = err.message + json.dumps(err.details)
    assert "key=abc" not in dumped and "admin:pw" not in dumped and "pw@" not in dumped
    assert "https://idp.test/rotate" in err.message


def test_an_answer_over_the_size_limit_is_malformed(client, requests_mock):
    requests_mock.get(
        f"{JOBS}/wb-1", content=b'{"job_id": "wb-1", "status": "FAILED", "x": "' + b"y" * 9_000_000
    )
    err = raised(lambda: client.get_job("wb-1"))
    assert (err.transient, err.kind) == (False, "malformed")
    assert "bytes" in err.message


class _Trickler(BaseHTTPRequestHandler):
    """Answers 200 at once, then its body one byte per 50 ms: never idle for a read timeout."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = json.dumps({"job_id": "wb-1", "status": "RUNNING", "pad": "x" * 200}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for byte in body:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                if self.server.stop.wait(0.05):
                    return
        except OSError:
            return  # the client gave up and closed the connection

    def log_message(self, *args):
        pass


def test_an_answer_trickled_slower_than_the_answer_timeout_is_cut_off():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Trickler)
    server.daemon_threads = True
    server.stop = threading.Event()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with WorkbenchClient(base, TOKEN, connect_timeout=1, read_timeout=0.2) as c:
            started = time.monotonic()
            err = raised(lambda: c.get_job("wb-1"))
            took = time.monotonic() - started
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join()
    assert (err.transient, err.kind) == (True, "timeout")
    assert "did not finish its answer within 0.6 s" in err.message
    # The whole answer would take over 10 s; the client stops after its answer timeout.
    assert took < 3.0


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(codec=None), max_size=9000))
def test_any_message_comes_out_storable_and_capped(text):
    notes: dict = {}
    cleaned = clean_message(text, "error_message", notes)
    assert cleaned is None or 0 < len(cleaned) <= MAX_ERROR_MESSAGE_CHARS
    assert_storable(cleaned or "")
    assert_storable(notes)


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=80), st.datetimes(timezones=st.timezones()).map(str)))
def test_any_timestamp_comes_out_storable_or_replaced(value):
    notes: dict = {}
    when = storable_timestamp(value, "started_at", CLOCK, notes)
    if when is not None:
        assert when.utcoffset() == timedelta(0)
        assert EARLIEST_TIMESTAMP <= when < LATEST_TIMESTAMP or when == CLOCK
    assert_storable(notes)
