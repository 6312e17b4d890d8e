"""The run store: every read and write of runs, pipelines and their audit trail."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from psycopg2.extras import Json

from . import statuses
from .errors import Conflict, InvalidTransition, NotFound
from .queries import Q

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewRun:
    """A validated run request, ready to store."""

    pipeline: str
    mode: str
    input_path_prefix: str
    output_path_prefix: str
    parameters: dict = field(default_factory=dict)
    idempotency_key: str | None = None

    def fingerprint(self) -> str:
        """sha256 of the canonical request: what makes two submissions 'the same'."""
        canonical = json.dumps(
            [
                self.pipeline,
                self.mode,
                self.input_path_prefix,
                self.output_path_prefix,
                self.parameters,
            ],
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Transition:
    """One requested status change and what comes with it."""

    status: str
    source: str
    message: str
    details: dict = field(default_factory=dict)
    workbench_job_id: str | None = None
    error_message: str | None = None
    error_details: dict | list | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


def get_pipeline(cur, name: str) -> dict | None:
    """One catalog entry, or None."""
    cur.execute(Q["get_pipeline"], {"name": name})
    return cur.fetchone()


def list_pipelines(cur) -> list[dict]:
    """The whole catalog, by name."""
    cur.execute(Q["list_pipelines"])
    return cur.fetchall()


def create_run(cur, new: NewRun) -> tuple[dict, bool]:
    """Insert a PENDING run with its first event; return (run, created).

    With an idempotency key already used for the same request, return that run and
    created=False; for another request, raise Conflict.
    """
    run_id = uuid.uuid4()
    fingerprint = new.fingerprint()
    cur.execute(
        Q["insert_run"],
        {
            "id": run_id,
            "pipeline": new.pipeline,
            "mode": new.mode,
            "input_path_prefix": new.input_path_prefix,
            "output_path_prefix": new.output_path_prefix,
            "parameters": Json(new.parameters),
            "idempotency_key": new.idempotency_key,
            "request_fingerprint": fingerprint,
        },
    )
    row = cur.fetchone()
    if row is None:
        cur.execute(Q["get_run_by_idempotency_key"], {"idempotency_key": new.idempotency_key})
        existing = cur.fetchone()
        if existing["request_fingerprint"] != fingerprint:
            raise Conflict(
                f"Idempotency-Key {new.idempotency_key!r} was already used for run "
                f"{existing['id']} with a different request body",
                details=[
                    {
                        "field": "Idempotency-Key",
                        "rule": "reused_with_different_body",
                        "run_id": str(existing["id"]),
                    }
                ],
            )
        return existing, False
    _event(
        cur,
        run_id,
        None,
        statuses.PENDING,
        "gateway",
        "Run accepted",
        {"idempotency_key": new.idempotency_key} if new.idempotency_key else {},
    )
    return row, True


def get_run(cur, run_id: str | uuid.UUID) -> dict:
    """The run, or NotFound naming the id (also for an id that is not a UUID)."""
    parsed = _parse_uuid(run_id)
    row = None
    if parsed is not None:
        cur.execute(Q["get_run"], {"id": parsed})
        row = cur.fetchone()
    if row is None:
        raise NotFound(f"No pipeline run with id {str(run_id)[:100]!r}")
    return row


def get_run_status(cur, run_id: str | uuid.UUID) -> str | None:
    """Just the status (a cheap read for ?wait=), or None."""
    cur.execute(Q["get_run_status"], {"id": _parse_uuid(run_id)})
    row = cur.fetchone()
    return row["status"] if row else None


def get_history(cur, run_id: uuid.UUID) -> list[dict]:
    """The audit trail, oldest first."""
    cur.execute(Q["get_history"], {"id": run_id})
    return cur.fetchall()


def set_workflow_id(cur, run_id: uuid.UUID, workflow_id: str) -> dict | None:
    """Record the Conductor workflow id once; None when it was already set."""
    cur.execute(Q["set_workflow_id"], {"id": run_id, "workflow_id": workflow_id})
    return cur.fetchone()


def transition(cur, run_id: str | uuid.UUID, t: Transition) -> tuple[dict, bool]:
    """Apply one status change with its event, under the row lock; return (run, changed).

    Repeating a change already made is a no-op (changed=False), which makes workers
    safe under at-least-once delivery. A change the lifecycle forbids raises
    InvalidTransition; the caller decides whether that is an error or just logged.
    """
    parsed = _parse_uuid(run_id)
    cur.execute(Q["lock_run"], {"id": parsed})
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"No pipeline run with id {str(run_id)[:100]!r}")
    current = row["status"]
    if current == t.status:
        same_job = t.workbench_job_id in (None, row["workbench_job_id"])
        if not same_job:
            raise InvalidTransition(
                f"run {parsed} is already {current} with Workbench job "
                f"{row['workbench_job_id']}, not {t.workbench_job_id}"
            )
        return row, False
    if not statuses.can_transition(current, t.status):
        raise InvalidTransition(f"run {parsed} cannot move from {current} to {t.status}")
    if row["workbench_job_id"] and t.workbench_job_id not in (None, row["workbench_job_id"]):
        raise InvalidTransition(
            f"run {parsed} already has Workbench job {row['workbench_job_id']}, "
            f"not {t.workbench_job_id}"
        )
    cur.execute(
        Q["apply_transition"],
        {
            "id": parsed,
            "status": t.status,
            "workbench_job_id": t.workbench_job_id,
            "error_message": t.error_message,
            "error_details": Json(t.error_details) if t.error_details is not None else None,
            "started_at": t.started_at,
            "completed_at": t.completed_at,
        },
    )
    updated = cur.fetchone()
    _event(cur, parsed, current, t.status, t.source, t.message, t.details)
    return updated, True


def list_runs(
    cur, statuses_: tuple[str, ...], pipeline: str | None, limit: int, cursor: str | None
) -> tuple[list[dict], str | None]:
    """A page of runs, newest first, and the cursor of the next page (or None)."""
    after_created, after_id = decode_cursor(cursor) if cursor else (None, None)
    cur.execute(
        Q["list_runs"],
        {
            "no_status": not statuses_,
            "statuses": list(statuses_),
            "pipeline": pipeline,
            "after_created": after_created,
            "after_id": after_id,
            "limit": limit + 1,
        },
    )
    rows = cur.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
    return rows, next_cursor


def encode_cursor(created_at: datetime, run_id: uuid.UUID) -> str:
    """An opaque cursor for keyset pagination."""
    raw = json.dumps([created_at.isoformat(), str(run_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (created_at, id) in a cursor; ValidationFailed-ready ValueError when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, run_id = json.loads(raw)
        datetime.fromisoformat(created)
        return created, str(uuid.UUID(run_id))
    except (ValueError, TypeError) as exc:
        raise ValueError("cursor is not one this API returned") from exc


def _event(
    cur, run_id, previous: str | None, status: str, source: str, message: str, details: dict
) -> None:
    cur.execute(
        Q["insert_event"],
        {
            "run_id": run_id,
            "previous_status": previous,
            "status": status,
            "source": source,
            "message": message,
            "details": Json(details or {}),
        },
    )


def _parse_uuid(value) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
