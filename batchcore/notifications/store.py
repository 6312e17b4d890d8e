"""The outbox's reads and writes: claiming due notifications, recording attempts, listing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from batchcore.db import Database
from batchcore.queries import Q
from batchcore.runs.rows import get_run

PENDING, DELIVERED, GIVEN_UP = "pending", "delivered", "given_up"


@dataclass(frozen=True)
class Claimed:
    """One notification leased to this deliverer."""

    id: int
    webhook_id: uuid.UUID
    run_id: uuid.UUID
    url: str
    status: str
    previous_status: str | None
    occurred_at: datetime
    run_snapshot: dict
    attempts: int
    created_at: datetime
    lease_token: uuid.UUID


@dataclass(frozen=True)
class Attempt:
    """What one delivery attempt met, and what follows from it."""

    at: datetime
    duration_ms: int
    state: str
    status_code: int | None = None
    error: str | None = None
    excerpt: str | None = None
    next_attempt_at: datetime | None = None


class NotificationStore:
    """The outbox of status-change notifications (the trigger of migration 0008 fills it)."""

    def __init__(self, db: Database):
        self.db = db

    def claim(self, limit: int, lease_seconds: int) -> list[Claimed]:
        """Lease up to `limit` due notifications, each the oldest pending one of its run."""
        with self.db.autocommit() as cur:
            cur.execute(
                Q["claim_notifications"],
                {"limit": limit, "lease_seconds": lease_seconds, "lease_token": uuid.uuid4()},
            )
            return [Claimed(**row) for row in cur.fetchall()]

    def record(self, claimed: Claimed, attempt: Attempt) -> bool:
        """Store the attempt and the notification's new state; False when the claim was lost."""
        with self.db.autocommit() as cur:
            cur.execute(
                Q["record_notification_attempt"],
                {
                    "id": claimed.id,
                    "lease_token": claimed.lease_token,
                    "state": attempt.state,
                    "next_attempt_at": attempt.next_attempt_at,
                    "error": attempt.error,
                    "at": attempt.at,
                    "duration_ms": attempt.duration_ms,
                    "status_code": attempt.status_code,
                    "excerpt": attempt.excerpt,
                },
            )
            return cur.fetchone() is not None

    def for_run(self, run_id: str | uuid.UUID) -> list[dict]:
        """The run's notifications, oldest first, each with its attempts; NotFound for no run."""
        with self.db.autocommit() as cur:
            run = get_run(cur, run_id)
            cur.execute(Q["list_run_notifications"], {"run_id": run["id"]})
            return cur.fetchall()

    @contextmanager
    def loop_lock(self) -> Iterator[NotifierLoop | None]:
        """The recorded notifier loop under a lock held for one check-and-start (None: another
        process holds it); shaped like RunStore.poller_loop_lock for ensure_poller_loop."""
        with self.db.transaction() as cur:
            cur.execute(Q["try_notifier_loop_lock"])
            if not cur.fetchone()["locked"]:
                yield None
                return
            cur.execute(Q["get_notifier_loop"])
            row = cur.fetchone()
            yield NotifierLoop(cur, row["workflow_id"] if row else None)

    # supervision.ensure_poller_loop asks its store for this name.
    poller_loop_lock = loop_lock


class NotifierLoop:
    """The recorded notifier loop, inside the transaction that holds its lock."""

    def __init__(self, cur, workflow_id: str | None):
        self._cur = cur
        self.workflow_id = workflow_id

    def record(self, workflow_id: str) -> None:
        """Remember `workflow_id` as the one loop to keep."""
        if workflow_id != self.workflow_id:
            self._cur.execute(Q["set_notifier_loop"], {"workflow_id": workflow_id})
            self.workflow_id = workflow_id
