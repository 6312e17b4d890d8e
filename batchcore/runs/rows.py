"""The store's building blocks: reads and writes of runs on a cursor inside a caller's transaction.

Only the store (batchcore.runs.store) and tests that compose a transaction call these.
"""

from __future__ import annotations

import uuid
from typing import NamedTuple

from psycopg2.extras import Json

from batchcore.errors import Conflict, InvalidTransition, NotFound
from batchcore.queries import Q

from . import lifecycle
from .model import NewRun, Run, Transition

# The lifecycle's sets, passed to the SQL that needs them rather than restated there.
LIFECYCLE_SETS = {"terminal": sorted(lifecycle.TERMINAL), "active": sorted(lifecycle.ACTIVE)}


def get_pipeline(cur, name: str) -> dict | None:
    """One catalog entry, or None."""
    cur.execute(Q["get_pipeline"], {"name": name})
    return cur.fetchone()


class StoredRun(NamedTuple):
    """What storing a run request found: the catalog entry (None when the pipeline is not in
    the catalog), the run (None when the catalog refused it: disabled, or another mode),
    whether it was created now, and, for a new run, its history (the one event written)."""

    pipeline: dict | None
    row: dict | None
    created: bool
    history: list[dict]


class AcceptedNew(NamedTuple):
    """RunStore.create_run's answer: the catalog entry, the run, whether it was created now,
    and a new run's history (the event written with it; empty for a run that existed)."""

    pipeline: dict
    run: Run
    created: bool
    history: list[dict]


class WorkflowRecorded(NamedTuple):
    """set_workflow_id's answer: the run after the update, and its number of events."""

    run: Run
    event_count: int


def insert_run(cur, new: NewRun, replaces: uuid.UUID | None = None) -> StoredRun:
    """Store a PENDING run with its first event (and a re-run's note) in one statement.

    A key already held stores nothing: the answer has no row, and the caller settles the key
    under its lock in a transaction (`create_run_by_key`).
    """
    run_id = uuid.uuid4()
    request = {k: Json(v) if isinstance(v, dict | list) else v for k, v in new.request().items()}
    details = {"idempotency_key": new.idempotency_key} if new.idempotency_key else {}
    if new.rerun_of is not None:
        details["rerun_of"] = str(new.rerun_of)
    if replaces is not None:
        details["replaces"] = str(replaces)
    cur.execute(
        Q["insert_run"],
        {
            **request,
            "id": run_id,
            "submitted_by": new.submitted_by,
            "idempotency_key": new.idempotency_key,
            "request_fingerprint": new.fingerprint(),
            "rerun_of": new.rerun_of,
            "default_deadline_seconds": new.default_deadline_seconds,
            "details": Json(details),
        },
    )
    row = cur.fetchone()
    if row is None:
        return StoredRun(None, None, False, [])
    pipeline = row.pop("catalog_entry")
    first_event_at = row.pop("first_event_at")
    if row["id"] is None:
        return StoredRun(pipeline, None, False, [])
    event = {
        "status": lifecycle.PENDING,
        "previous_status": None,
        "at": first_event_at,
        "source": "gateway",
        "actor": new.submitted_by,
        "message": "Run accepted",
        "details": details,
    }
    return StoredRun(pipeline, row, True, [event])


def admissible(pipeline: dict | None, new: NewRun) -> bool:
    """True when the catalog takes runs of this request (the insert's own condition)."""
    return pipeline is not None and pipeline["enabled"] and pipeline["mode"] == new.mode


def create_run_by_key(cur, new: NewRun) -> StoredRun:
    """Settle a request whose idempotency key is held, under the holder's row lock.

    The same request returns that run (created=False); another request raises Conflict. A
    run that failed before its workflow started holds no key: its key passes to a new run
    (a new attempt), and an event on it names the run that replaced it.
    """
    fingerprint = new.fingerprint()
    pipeline = None
    # Another pass only when the key's holder released it between the insert and the lock.
    for _ in range(3):
        replaced = None
        cur.execute(
            Q["lock_run_by_idempotency_key"],
            {"submitted_by": new.submitted_by, "idempotency_key": new.idempotency_key},
        )
        existing = cur.fetchone()
        if existing is not None:
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
            cur.execute(Q["release_idempotency_key"], {"id": existing["id"]})
            if cur.fetchone() is None:
                return StoredRun(pipeline, existing, False, [])
            replaced = existing["id"]
        stored = insert_run(cur, new, replaces=replaced)
        pipeline = stored.pipeline
        if stored.row is not None or not admissible(pipeline, new):
            break
    else:
        raise Conflict(f"Idempotency-Key {new.idempotency_key!r} is contended; try again")
    if stored.row is not None and replaced is not None:
        _event(
            cur,
            replaced,
            lifecycle.FAILED,
            lifecycle.FAILED,
            "gateway",
            f"Replaced by run {stored.row['id']}, a retry with the same Idempotency-Key",
            {"idempotency_key": new.idempotency_key, "replaced_by": str(stored.row["id"])},
            actor=new.submitted_by,
        )
    return stored


def create_run(cur, new: NewRun) -> tuple[dict, bool]:
    """Insert a PENDING run with its first event; return (row, created).

    The one statement of `insert_run`, then, for a key already held, `create_run_by_key` on
    the same cursor (the caller's transaction). A pipeline the catalog lacks or refuses
    raises NotFound or Conflict.
    """
    stored = insert_run(cur, new)
    if stored.pipeline is None:
        raise NotFound(f"No pipeline named {new.pipeline!r}")
    if stored.row is None and admissible(stored.pipeline, new):
        stored = create_run_by_key(cur, new)
    if stored.row is None:
        raise Conflict(f"Pipeline {new.pipeline!r} takes no runs of this request")
    return stored.row, stored.created


def get_run(cur, run_id: str | uuid.UUID, lock: bool = False) -> dict:
    """The run's row (under its row lock with `lock`), or NotFound naming the id (also for an
    id that is not a UUID)."""
    parsed = parse_uuid(run_id)
    row = None
    if parsed is not None:
        cur.execute(Q["lock_run" if lock else "get_run"], {"id": parsed})
        row = cur.fetchone()
    if row is None:
        raise NotFound(f"No pipeline run with id {str(run_id)[:100]!r}")
    return row


def get_history(cur, run_id: uuid.UUID) -> list[dict]:
    """The audit trail, oldest first."""
    cur.execute(Q["get_history"], {"id": run_id})
    return cur.fetchall()


def transition(cur, run_id: str | uuid.UUID, t: Transition) -> tuple[dict, bool]:
    """Apply one status change with its event, under the row lock; return (row, changed).

    Repeating a change already made is a no-op (changed=False), which makes workers
    safe under at-least-once delivery. A change the lifecycle forbids raises
    InvalidTransition; the caller decides whether that is an error or just logged.
    """
    parsed = parse_uuid(run_id)
    cur.execute(Q["lock_run"], {"id": parsed})
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"No pipeline run with id {str(run_id)[:100]!r}")
    current = row["status"]
    if current == t.status:
        if t.workbench_job_id not in (None, row["workbench_job_id"]):
            raise InvalidTransition(
                f"run {parsed} is already {current} with Workbench job "
                f"{row['workbench_job_id']}, not {t.workbench_job_id}"
            )
        return row, False
    if not lifecycle.can_transition(current, t.status):
        raise InvalidTransition(f"run {parsed} cannot move from {current} to {t.status}")
    if row["workbench_job_id"] and t.workbench_job_id not in (None, row["workbench_job_id"]):
        raise InvalidTransition(
            f"run {parsed} already has Workbench job {row['workbench_job_id']}, "
            f"not {t.workbench_job_id}"
        )
    cur.execute(
        Q["apply_transition"],
        {
            **LIFECYCLE_SETS,
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
    _event(cur, parsed, current, t.status, t.source, t.message, t.details, actor=t.actor)
    return updated, True


def _event(
    cur,
    run_id,
    previous: str | None,
    status: str,
    source: str,
    message: str,
    details: dict,
    actor: str | None = None,
) -> None:
    cur.execute(
        Q["insert_event"],
        {
            "run_id": run_id,
            "actor": actor,
            "previous_status": previous,
            "status": status,
            "source": source,
            "message": message,
            "details": Json(details or {}),
        },
    )


def parse_uuid(value) -> uuid.UUID | None:
    """The UUID in `value`, or None when it is not one."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
