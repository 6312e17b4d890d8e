"""The OpenAPI parts of notifications: the list route, its schemas, and the webhook itself."""

from __future__ import annotations

from batchcore.notifications.signing import EVENT_TYPE

from ..notifications_view import ATTEMPT_FIELDS, NOTIFICATION_FIELDS
from .schemas import _RUN_PROPERTIES, _TIMESTAMP, RUN_ID_PARAMETER, STATUS, _nullable

_SIGNED_HEADERS = {
    "webhook-id": {
        "description": "msg_ and the notification's UUID: the same on every attempt, so a"
        " receiver drops a repeat it already handled (delivery is at least once)",
        "required": True,
        "schema": {"type": "string", "example": "msg_2b1e0f3c-6c3e-4d0f-9a51-6f1c7e9b1d2a"},
    },
    "webhook-timestamp": {
        "description": "When this attempt was signed, in Unix seconds; refuse old ones",
        "required": True,
        "schema": {"type": "string", "example": "1764324000"},
    },
    "webhook-signature": {
        "description": "v1, and the base64 HMAC-SHA256 of '<webhook-id>.<webhook-timestamp>."
        "<body>' keyed by the base64-decoded part of WEBHOOK_SECRET after whsec_ (Standard"
        " Webhooks); space-separated when there are several",
        "required": True,
        "schema": {"type": "string", "example": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="},
    },
}

SCHEMAS = {
    "StatusChangedNotification": {
        "type": "object",
        "description": "The body POSTed to a run's notify_url at each status change, signed"
        " per Standard Webhooks (headers webhook-id, webhook-timestamp, webhook-signature)."
        " At least once and in order per run: a run's later change is sent only once its"
        " earlier one was delivered (any 2xx) or given up. A failed attempt (no answer"
        " within the timeout, a redirect, which is never followed, or any non-2xx) is"
        " retried with capped, jittered exponential backoff honouring Retry-After, for"
        " WEBHOOK_RETRY_HOURS (24); a 410 or a target refused at delivery is given up at"
        " once.",
        "additionalProperties": False,
        "required": ["type", "timestamp", "data"],
        "properties": {
            "type": {"type": "string", "enum": [EVENT_TYPE]},
            "timestamp": {**_TIMESTAMP, "description": "When the status changed"},
            "data": {
                "type": "object",
                "description": "The run as the change left it (a RunSummary: no history),"
                " and previous_status (null for the run's acceptance)",
                "additionalProperties": False,
                "required": [*_RUN_PROPERTIES, "previous_status"],
                "properties": {**_RUN_PROPERTIES, "previous_status": _nullable(STATUS)},
            },
        },
    },
    "NotificationAttempt": {
        "type": "object",
        "additionalProperties": False,
        "required": list(ATTEMPT_FIELDS),
        "properties": {
            "attempt": {"type": "integer", "minimum": 1},
            "at": _TIMESTAMP,
            "status_code": _nullable(
                {"type": "integer", "description": "null when no answer came"}
            ),
            "duration_ms": {"type": "integer", "minimum": 0},
            "error": _nullable({"type": "string"}),
            "response_excerpt": _nullable(
                {"type": "string", "maxLength": 200, "description": "The answer's first 200"}
            ),
        },
    },
    "Notification": {
        "type": "object",
        "additionalProperties": False,
        "required": list(NOTIFICATION_FIELDS),
        "properties": {
            "id": {"type": "string", "description": "The webhook-id header of its attempts"},
            "type": {"type": "string", "enum": [EVENT_TYPE]},
            "status": STATUS,
            "previous_status": _nullable(STATUS),
            "occurred_at": _TIMESTAMP,
            "url": {"type": "string"},
            "state": {"type": "string", "enum": ["pending", "delivered", "given_up"]},
            "attempt_count": {"type": "integer", "minimum": 0},
            "next_attempt_at": _nullable(_TIMESTAMP),
            "finished_at": _nullable(_TIMESTAMP),
            "last_error": _nullable({"type": "string"}),
            "attempts": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/NotificationAttempt"},
            },
        },
    },
    "NotificationList": {
        "type": "object",
        "additionalProperties": False,
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Notification"}}
        },
    },
}

# OpenAPI 3.1's `webhooks`, as an extension of this 3.0.3 document.
X_WEBHOOKS = {
    EVENT_TYPE: {
        "post": {
            "operationId": "pipelineRunStatusChanged",
            "summary": "A run with a notify_url changed status",
            "parameters": [
                {"name": name, "in": "header", **header} for name, header in _SIGNED_HEADERS.items()
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/StatusChangedNotification"}
                    }
                },
            },
            "responses": {
                "2XX": {"description": "Delivered"},
                "410": {"description": "Gone: this and later notifications are given up"},
                "429": {"description": "Retried, not before its Retry-After"},
            },
        }
    }
}


def notifications_path(secured: list, errors: dict, json_response, error) -> dict:
    """The path item of GET /api/v1/pipeline-runs/{run_id}/notifications."""
    return {
        "get": {
            "operationId": "listPipelineRunNotifications",
            "summary": "A run's status-change notifications, with their attempts and state",
            "description": "Oldest first; a run without notify_url has none. State pending"
            " (next_attempt_at says when), delivered or given_up.",
            "security": secured,
            "parameters": [RUN_ID_PARAMETER],
            "responses": {
                "200": json_response("NotificationList", "The run's notifications"),
                "404": error("No run has this id (code run_not_found)"),
                **errors,
            },
        }
    }
