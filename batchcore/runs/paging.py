"""Opaque cursors for keyset pagination of runs, newest first.

The store's cursor is a position: the (created_at, id) of the last run shown. The gateway
hands clients that position sealed with an HMAC, so that any cursor it did not issue is
refused before it reaches SQL, and a sealed cursor opens in every gateway process, also
after a restart: the key comes from the settings, not from the process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from datetime import UTC, datetime

# What encode_cursor writes, and so all decode_cursor takes: UTC, microseconds, +00:00.
_TIMESTAMP_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}\+00:00"
)
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SIGNATURE_BYTES = 16  # 128 bits: forging one is out of reach
_KEY_PURPOSE = b"batch-pipeline-runs list cursor v1"


def encode_cursor(created_at: datetime, run_id: uuid.UUID) -> str:
    """The position that resumes a listing after the run (created_at, run_id)."""
    created = created_at.astimezone(UTC).isoformat(timespec="microseconds")
    raw = json.dumps([created, str(run_id)], separators=(",", ":")).encode()
    return _b64(raw)


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (created_at, id) of a position; ValueError unless encode_cursor could have made it."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, run_id = json.loads(raw)
        if not (_TIMESTAMP_RE.fullmatch(created) and _UUID_RE.fullmatch(run_id)):
            raise ValueError("not a position this API writes")
        datetime.fromisoformat(created)  # a real date (no 31 February)
        return created, str(uuid.UUID(run_id))
    except (ValueError, TypeError) as exc:
        raise ValueError("cursor is not one this API returned") from exc


def cursor_key(secret: str | None, tokens: tuple[str, ...]) -> bytes:
    """The HMAC key of cursors: from GATEWAY_SECRET_KEY, else from the API tokens (the same
    in every worker and after a restart; rotating the tokens ends the cursors in use)."""
    material = secret.encode() if secret else "\n".join(sorted(tokens)).encode()
    return hmac.new(material, _KEY_PURPOSE, hashlib.sha256).digest()


def seal_cursor(position: str, key: bytes) -> str:
    """`position` with its signature: the cursor a client sees."""
    return f"{position}.{_b64(_signature(position, key))}"


def open_cursor(cursor: str, key: bytes) -> str:
    """The position inside a cursor this API issued; ValueError for any other string."""
    position, dot, signature = cursor.rpartition(".")
    if not dot or not position:
        raise ValueError("cursor is not one this API returned")
    # Compared as text: base64 decoding would ignore stray characters and padding bits.
    expected = _b64(_signature(position, key))
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise ValueError("cursor is not one this API returned")
    decode_cursor(position)
    return position


def _signature(position: str, key: bytes) -> bytes:
    return hmac.new(key, position.encode(), hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
