"""The API's JSON of a run's notifications: each change sent, its state and its attempts."""

from __future__ import annotations

from datetime import datetime

from batchcore.notifications.signing import EVENT_TYPE, iso_utc
from batchcore.notifications.store import PENDING

NOTIFICATION_FIELDS = (
    "id",
    "type",
    "status",
    "previous_status",
    "occurred_at",
    "url",
    "state",
    "attempt_count",
    "next_attempt_at",
    "finished_at",
    "last_error",
    "attempts",
)
ATTEMPT_FIELDS = ("attempt", "at", "status_code", "duration_ms", "error", "response_excerpt")


def render_notification(row: dict) -> dict:
    """One notification as the API shows it (a row of NotificationStore.for_run)."""
    return {
        # The webhook-id header of every attempt: what a receiver deduplicates on.
        "id": f"msg_{row['webhook_id']}",
        "type": EVENT_TYPE,
        "status": row["status"],
        "previous_status": row["previous_status"],
        "occurred_at": iso_utc(row["occurred_at"]),
        "url": row["url"],
        "state": row["state"],
        "attempt_count": row["attempts"],
        "next_attempt_at": iso_utc(row["next_attempt_at"]) if row["state"] == PENDING else None,
        "finished_at": iso_utc(row["finished_at"]) if row["finished_at"] else None,
        "last_error": row["last_error"],
        "attempts": [
            {
                **{name: attempt.get(name) for name in ATTEMPT_FIELDS},
                # json_agg writes timestamps in the session's zone: rendered like all others.
                "at": iso_utc(datetime.fromisoformat(attempt["at"])),
            }
            for attempt in row["attempt_list"]
        ],
    }
