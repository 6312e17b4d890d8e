"""The store's building blocks: reads and writes of runs on a cursor inside a caller's transaction.

Only the store (batchcore.runs.store) and tests that compose a transaction call these.
"""

from __future__ import annotations

import uuid

from psycopg2.extras import Json

from batchcore.errors import Conflict, InvalidTransition, NotFound
from batchcore.queries import Q

from . import lifecycle
from .model import NewRun, Transition

# The lifecycle's sets, passed to the SQL that needs them rather than restated there.
LIFECYCLE_SETS = {"terminal": sorted(lifecycle.TERMINAL), "active": sorted(lifecycle.ACTIVE)}


def get_pipeline(cur, name: str) -> dict | None:
    """One catalog entry, or None."""
    cur.execute(Q["get_pipeline"], {"name": name})
    return cur.fetchone()


def create_run(cur, new: NewRun) -> tuple[dict, bool]:
    """Insert a PENDING run with its first event; return (row, created).

    With an idempotency key already used for the same request, return that run and
    created=False; for another request, raise Conflict. A run that failed before its
    workflow started holds no key: its key passes to the new run (a new attempt), and an
    event on it names the run that replaced it.
    """
    run_id = uuid.uuid4()
    fingerprint = new.fingerprint()
    request = {k: Json(v) if isinstance(v, dict | list) else v for k, v in new.request().items()}
    request.update(rerun_of=new.rerun_of, default_deadline_seconds=new.default_deadline_seconds)
    replaced = None
    # A second pass only when the key's holder released it between the insert and the lock.
    for _ in range(3):
        cur.execute(
            Q["insert_run"],
            {
                **request,
                "id": run_id,
                "submitted_by": new.submitted_by,
                "idempotency_key": new.idempotency_key,
                "request_fingerprint": fingerprint,
            },
        )
        row = cur.fetchone()
        if row is not None:
            break
        cur.execute(
            Q["lock_run_by_idempotency_key"],
            {"submitted_by": new.submitted_by, "idempotency_key": new.idempotency_key},
        )
        existing = cur.fetchone()
        if existing is None:
            continue
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
            return existing, False
        replaced = existing["id"]
    else:
        raise Conflict(f"Idempotency-Key {new.idempotency_key!r} is contended; try again")
    details = {"idempotency_key": new.idempotency_key} if new.idempotency_key else {}
    if new.rerun_of is not None:
        details["rerun_of"] = str(new.rerun_of)
    if replaced is not None:
        details["replaces"] = str(replaced)
        _event(
            cur,
            replaced,
            lifecycle.FAILED,
            lifecycle.FAILED,
            "gateway",
            f"Replaced by run {run_id}, a retry with the same Idempotency-Key",
            {"idempotency_key": new.idempotency_key, "replaced_by": str(run_id)},
            actor=new.submitted_by,
        )
    if new.rerun_of is not None:
        _note_rerun(cur, new.rerun_of, run_id, new.submitted_by)
    _event(
        cur,
        run_id,
        None,
        lifecycle.PENDING,
        "gateway",
        "Run accepted",
        details,
        actor=new.submitted_by,
    )
    return row, True


def _note_rerun(cur, original_id: uuid.UUID, rerun_id: uuid.UUID, actor: str) -> None:
    """An event on the re-run run naming its new run (its status unchanged: it has ended)."""
    cur.execute(Q["get_run_status"], {"id": original_id})
    status = cur.fetchone()["status"]
    _event(
        cur,
        original_id,
        status,
        status,
        "gateway",
        f"Re-run as run {rerun_id}",
        {"rerun": str(rerun_id)},
        actor=actor,
    )


def get_run(cur, run_id: str | uuid.UUID) -> dict:
    """The run's row, or NotFound naming the id (also for an id that is not a UUID)."""
    parsed = parse_uuid(run_id)
    row = None
    if parsed is not None:
        cur.execute(Q["get_run"], {"id": parsed})
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
