"""Standard Webhooks signing of a notification: its body and its three headers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from batchcore.runs.model import PUBLIC_FIELDS
from batchcore.setting_checks import DEFAULT_TOKEN_NAME

EVENT_TYPE = "pipeline_run.status_changed"
_TIMESTAMP_FIELDS = frozenset(
    name for name in PUBLIC_FIELDS if name.endswith("_at") or name == "last_polled_at"
)


def iso_utc(value: datetime) -> str:
    """The API's timestamp: UTC, an explicit offset, microseconds (as gateway.rendering)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def run_json(snapshot: dict) -> dict:
    """The API's JSON of a run (no history) from the trigger's jsonb snapshot of its row."""
    run = {}
    for name in PUBLIC_FIELDS:
        value = snapshot.get(name)
        if name in _TIMESTAMP_FIELDS and isinstance(value, str):
            value = iso_utc(datetime.fromisoformat(value))
        run[name] = value
    run["poll_failures"] = run["poll_failures"] or 0
    # A snapshot from before runs had a submitter was a bare token's run: named default.
    run["submitted_by"] = run["submitted_by"] or DEFAULT_TOKEN_NAME
    return run


def body_of(run: dict, previous_status: str | None, timestamp: str) -> bytes:
    """The JSON body: the type, when the change happened, and the run with previous_status."""
    payload = {
        "type": EVENT_TYPE,
        "timestamp": timestamp,
        "data": {**run, "previous_status": previous_status},
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signed_headers(secret: str, webhook_id: str, body: bytes, now: datetime) -> dict[str, str]:
    """webhook-id, webhook-timestamp and webhook-signature (v1, HMAC-SHA256) for `body`
    sent at `now`; the secret is whsec_ and base64, as WEBHOOK_SECRET holds it."""
    now = now.astimezone(UTC)
    signature = Webhook(secret).sign(webhook_id, now, body.decode("utf-8"))
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
