"""Opaque cursors for keyset pagination of runs, newest first."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime


def encode_cursor(created_at: datetime, run_id: uuid.UUID) -> str:
    """The cursor that resumes a listing after the run (created_at, run_id)."""
    raw = json.dumps([created_at.isoformat(), str(run_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (created_at, id) in a cursor; ValueError when it is not one this API returned."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, run_id = json.loads(raw)
        datetime.fromisoformat(created)
        return created, str(uuid.UUID(run_id))
    except (ValueError, TypeError) as exc:
        raise ValueError("cursor is not one this API returned") from exc
