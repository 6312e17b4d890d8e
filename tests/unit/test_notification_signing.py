"""Issue 15: signing per Standard Webhooks, checked with the standardwebhooks verifier, the
settings of the secret, and the retry schedule."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from batchcore import settings
from batchcore.notifications import schedule
from batchcore.notifications.signing import EVENT_TYPE, body_of, run_json, signed_headers
from batchcore.runs.model import PUBLIC_FIELDS

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
NOW = datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)
SNAPSHOT = {
    "id": "7b0c1e8e-8d7b-4a55-9c39-0d6d2f3f1b0a",
    "pipeline": "demo-batch",
    "mode": "BATCH",
    "status": "RUNNING",
    "input_path_prefix": "s3://in/a",
    "output_path_prefix": "s3://out/a",
    "parameters": {"threads": 4},
    "workbench_job_id": "job-1",
    "created_at": "2026-11-28T11:00:00.5+01:00",
    "updated_at": "2026-11-28T10:00:01+00:00",
    "started_at": "2026-11-28T10:00:01.000001+00:00",
    "poll_failures": None,
    "notify_url": "https://receiver.example.com/h",
    "poll_lease_token": "internal",
}


def signed(body: bytes, now: datetime = NOW) -> dict:
    return signed_headers(SECRET, "msg_1", body, now)


def test_a_delivery_verifies_with_the_standardwebhooks_verifier():
    body = body_of(run_json(SNAPSHOT), "SUBMITTED", "2026-11-28T10:00:01.000001+00:00")
    now = datetime.now(UTC)
    headers = signed(body, now)
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert headers["webhook-signature"].startswith("v1,")
    payload = Webhook(SECRET).verify(body, headers)
    assert payload["type"] == EVENT_TYPE == "pipeline_run.status_changed"
    assert payload["timestamp"] == "2026-11-28T10:00:01.000001+00:00"
    assert payload["data"]["status"] == "RUNNING"
    assert payload["data"]["previous_status"] == "SUBMITTED"


@pytest.mark.parametrize("tamper", ["body", "id", "timestamp", "secret"])
def test_any_tampering_fails_verification(tamper):
    body = body_of(run_json(SNAPSHOT), "SUBMITTED", "t")
    headers = signed(body, datetime.now(UTC))
    secret = SECRET
    if tamper == "body":
        body = body.replace(b"RUNNING", b"COMPLETED")
    elif tamper == "id":
        headers["webhook-id"] = "msg_2"
    elif tamper == "timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
    else:
        secret = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


def test_an_old_delivery_is_refused_by_the_verifier():
    body = body_of(run_json(SNAPSHOT), None, "t")
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(body, signed(body, datetime.now(UTC) - timedelta(minutes=10)))


def test_the_data_is_the_run_json_without_history_or_internal_columns():
    data = json.loads(body_of(run_json(SNAPSHOT), "SUBMITTED", "t"))["data"]
    assert list(data) == [*PUBLIC_FIELDS, "previous_status"]
    assert "history" not in data and "poll_lease_token" not in data
    # timestamps as the API renders them: UTC, explicit offset, microseconds
    assert data["created_at"] == "2026-11-28T10:00:00.500000+00:00"
    assert data["updated_at"] == "2026-11-28T10:00:01.000000+00:00"
    assert data["completed_at"] is None and data["poll_failures"] == 0


def test_the_secret_setting_must_be_whsec_base64_of_enough_bytes_and_is_not_shown():
    loaded = settings.load({"WEBHOOK_SECRET": SECRET})
    assert loaded.webhook_secret == SECRET
    assert SECRET not in repr(loaded)
    for bad in [
        "k" * 40,
        "whsec_",
        "whsec_not base64!",
        "whsec_" + base64.b64encode(b"x").decode(),
    ]:
        with pytest.raises(settings.SettingsError, match="WEBHOOK_SECRET") as caught:
            settings.load({"WEBHOOK_SECRET": bad})
        assert bad not in str(caught.value) or bad in ("whsec_",)


def test_allowed_hosts_and_retry_hours_settings():
    loaded = settings.load({"WEBHOOK_ALLOWED_HOSTS": "127.0.0.1, LocalHost,[::1]"})
    assert loaded.webhook_allowed_hosts == frozenset({"127.0.0.1", "localhost", "::1"})
    assert settings.load({}).webhook_allowed_hosts == frozenset()
    assert settings.load({}).webhook_retry_hours == 24
    with pytest.raises(settings.SettingsError, match="WEBHOOK_ALLOWED_HOSTS"):
        settings.load({"WEBHOOK_ALLOWED_HOSTS": "a/b"})


# ------------------------------------------------------------------------ retry schedule


def test_retries_back_off_exponentially_with_jitter_up_to_the_cap():
    created = NOW
    for attempts in range(1, 30):
        ceiling = min(schedule.RETRY_CAP_SECONDS, schedule.RETRY_BASE_SECONDS * 2 ** (attempts - 1))
        delays = {
            (
                schedule.next_attempt_at(attempts, NOW, created, 24, rng=random.Random(s)) - NOW
            ).total_seconds()
            for s in range(20)
        }
        assert all(0 <= d <= ceiling for d in delays), attempts
        assert len(delays) > 1, "jittered"
    assert (
        max(
            (
                schedule.next_attempt_at(40, NOW, created, 24, rng=random.Random(s)) - NOW
            ).total_seconds()
            for s in range(200)
        )
        <= schedule.RETRY_CAP_SECONDS
    )


def test_retry_after_is_a_floor():
    at = schedule.next_attempt_at(1, NOW, NOW, 24, retry_after=120.0, rng=random.Random(1))
    assert (at - NOW).total_seconds() == pytest.approx(120.0)


def test_retries_go_on_for_the_whole_window_and_end_at_its_end():
    created = NOW
    near_end = created + timedelta(hours=24) - timedelta(seconds=10)
    last = schedule.next_attempt_at(20, near_end, created, 24, rng=random.Random(3))
    assert last == created + timedelta(hours=24)  # the last attempt is made at the deadline
    assert schedule.next_attempt_at(21, last, created, 24) is None  # then given up
    # a receiver down for 23 hours is still retried
    assert schedule.next_attempt_at(30, created + timedelta(hours=23), created, 24) is not None


def test_a_simulated_dead_receiver_gets_attempts_spread_over_24_hours_then_given_up():
    rng = random.Random(7)
    now, attempts = NOW, 0
    times = []
    while True:
        attempts += 1
        times.append(now)
        following = schedule.next_attempt_at(attempts, now, NOW, 24, rng=rng)
        if following is None:
            break
        now = following
    assert times[-1] - NOW >= timedelta(hours=24)
    assert 20 <= attempts <= 200


def test_the_body_sent_is_what_the_openapi_document_describes():
    from gateway import openapi
    from tests.gateway_helpers import schema_errors

    doc = openapi.document()
    hook = doc["x-webhooks"][EVENT_TYPE]["post"]
    assert {p["name"] for p in hook["parameters"]} == set(signed(b"{}")) - {"content-type"}
    schema = {"$ref": "#/components/schemas/StatusChangedNotification"}
    body = json.loads(body_of(run_json(SNAPSHOT), "SUBMITTED", "2026-11-28T10:00:00+00:00"))
    assert schema_errors(body, schema, doc) == []
    body["data"]["surprise"] = 1
    assert schema_errors(body, schema, doc) != []
