"""The run store: the only code that runs SQL against runs, their audit trail and the poller loop.

Each RunStore method is one short transaction, or one autocommit statement where a single
statement is atomic by itself (one round trip instead of three); batchcore.runs.rows holds
its building blocks on a cursor.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

from psycopg2.extras import Json

from batchcore.db import Database
from batchcore.errors import Conflict
from batchcore.queries import Q

from . import lifecycle
from .cancels import CancelOps, end_pending
from .model import NewRun, PollOutcome, Run, Transition
from .paging import decode_cursor, encode_cursor
from .rows import (
    LIFECYCLE_SETS,
    AcceptedNew,
    WorkflowRecorded,
    admissible,
    create_run_by_key,
    get_history,
    get_run,
    insert_run,
    parse_uuid,
    transition,
)

log = logging.getLogger(__name__)


class ReconcileCandidates(NamedTuple):
    """The runs one reconcile pass looks at, read together."""

    pending: list[Run]
    active: list[Run]
    lost: list[Run]
    given_up: list[Run] = []


class RunStore(CancelOps):
    """Every read and write of runs, for the gateway, the workers, the poller and the
    reconciler (cancels and deadlines in batchcore.runs.cancels)."""

    def __init__(self, db: Database):
        self.db = db

    # ---------------------------------------------------------------- gateway and workers

    def create_run(
        self, new: NewRun, admit: Callable[[dict | None], None] = lambda pipeline: None
    ) -> AcceptedNew:
        """(pipeline, run, created, history): one autocommit statement (rows.insert_run) reads
        the catalog entry and stores the PENDING run with its first event; `admit` then sees the
        entry (or None) and raises to refuse (the statement stored nothing for a pipeline the
        catalog lacks, has disabled or runs in another mode). Only a key already held takes a
        transaction, under its holder's lock."""
        with self.db.autocommit() as cur:
            stored = insert_run(cur, new)
        pipeline = stored.pipeline
        admit(pipeline)
        if stored.row is None and admissible(pipeline, new) and new.idempotency_key:
            with self.db.transaction() as cur:
                stored = create_run_by_key(cur, new)
        if stored.row is None:
            raise Conflict(f"Pipeline {new.pipeline!r} takes no runs of this request")
        return AcceptedNew(pipeline, Run.from_row(stored.row), stored.created, stored.history)

    def get_run(self, run_id: str | uuid.UUID) -> Run:
        """The run, or NotFound naming the id (also for an id that is not a UUID)."""
        with self.db.autocommit() as cur:
            return Run.from_row(get_run(cur, run_id))

    def get_run_with_history(self, run_id: str | uuid.UUID) -> tuple[Run, list[dict]]:
        """The run and its audit trail, oldest first: two reads in autocommit (under READ
        COMMITTED a transaction would not give them one snapshot either)."""
        with self.db.autocommit() as cur:
            run = Run.from_row(get_run(cur, run_id))
            return run, get_history(cur, run.id)

    def run_status(self, run_id: str | uuid.UUID) -> str | None:
        """Just the status (a cheap read for ?wait=), or None."""
        with self.db.autocommit() as cur:
            cur.execute(Q["get_run_status"], {"id": parse_uuid(run_id)})
            row = cur.fetchone()
        return row["status"] if row else None

    def list_runs(
        self, statuses: tuple[str, ...], pipeline: str | None, limit: int, cursor: str | None
    ) -> tuple[list[Run], str | None]:
        """A page of runs, newest first, and the cursor of the next page (or None)."""
        after_created, after_id = decode_cursor(cursor) if cursor else (None, None)
        with self.db.transaction() as cur:
            cur.execute(
                Q["list_runs"],
                {
                    "no_status": not statuses,
                    "statuses": list(statuses),
                    "pipeline": pipeline,
                    "after_created": after_created,
                    "after_id": after_id,
                    "limit": limit + 1,
                },
            )
            rows = cur.fetchall()
        more = len(rows) > limit
        runs = [Run.from_row(r) for r in rows[:limit]]
        next_cursor = encode_cursor(runs[-1].created_at, runs[-1].id) if more else None
        return runs, next_cursor

    def list_pipelines(self) -> list[dict]:
        """The whole catalog, by name."""
        with self.db.transaction() as cur:
            cur.execute(Q["list_pipelines"])
            return cur.fetchall()

    def set_workflow_id(self, run_id: uuid.UUID, workflow_id: str) -> WorkflowRecorded | None:
        """Record the Conductor workflow id once: the run as it now is, and how many events it
        has; None when the id was already set."""
        with self.db.autocommit() as cur:
            cur.execute(Q["set_workflow_id"], {"id": run_id, "workflow_id": workflow_id})
            row = cur.fetchone()
        if row is None:
            return None
        return WorkflowRecorded(Run.from_row(row), row["event_count"])

    def transition(self, run_id: str | uuid.UUID, t: Transition) -> tuple[Run, bool]:
        """Apply one status change with its event in one transaction; see `transition()`."""
        with self.db.transaction() as cur:
            row, changed = transition(cur, run_id, t)
        return Run.from_row(row), changed

    def transition_if_pending(self, run_id: uuid.UUID, t: Transition) -> str:
        """Apply `t` (or the ending its cancel asks for) only while the run is PENDING, under
        its row lock; return the status the run had (a start that timed out may have happened,
        and moved the run on)."""
        with self.db.transaction() as cur:
            cur.execute(Q["lock_run"], {"id": run_id})
            row = cur.fetchone()
            current = row["status"]
            if current == lifecycle.PENDING:
                end_pending(cur, row, t)
        return current

    # ------------------------------------------------------------------------- the poller

    def claim_due_runs(self, batch_size: int, lease_seconds: int) -> list[Run]:
        """Lease a batch of due active runs under a new lease token (each run's
        poll_lease_token): one statement, committed at once."""
        with self.db.autocommit() as cur:
            cur.execute(
                Q["claim_due_runs"],
                {
                    "batch_size": batch_size,
                    "lease_seconds": lease_seconds,
                    "lease_token": uuid.uuid4(),
                },
            )
            return [Run.from_row(r) for r in cur.fetchall()]

    def apply_poll_results(self, outcomes: list[PollOutcome], interval_seconds: int) -> list[dict]:
        """Record a batch's outcomes in one statement; return the runs that moved."""
        cols = {
            "ids": [o.run_id for o in outcomes],
            "expected": [o.expected for o in outcomes],
            "new_status": [o.new_status for o in outcomes],
            "error_message": [o.error_message for o in outcomes],
            "started_at": [o.started_at for o in outcomes],
            "finished_at": [o.finished_at for o in outcomes],
            "poll_error": [o.poll_error for o in outcomes],
            "error_kind": [o.error_kind for o in outcomes],
            "retry_at": [o.retry_at for o in outcomes],
            "message": [o.message for o in outcomes],
            "details": [Json(o.details) for o in outcomes],
            "lease_token": [o.lease_token for o in outcomes],
            "cancel_sent": [o.cancel_sent for o in outcomes],
        }
        with self.db.autocommit() as cur:
            cur.execute(
                Q["apply_poll_results"],
                {**cols, **LIFECYCLE_SETS, "interval_seconds": interval_seconds},
            )
            return cur.fetchall()

    def record_poll_write_failure(
        self, outcome: PollOutcome, error: str, kind: str, retry_at
    ) -> bool:
        """Count a failure for a run whose outcome could not be written, and poll it again at
        `retry_at`; False when the run is no longer held by the outcome's claim."""
        with self.db.autocommit() as cur:
            cur.execute(
                Q["record_poll_write_failure"],
                {
                    **LIFECYCLE_SETS,
                    "id": outcome.run_id,
                    "lease_token": outcome.lease_token,
                    "error": error,
                    "kind": kind,
                    "retry_at": retry_at,
                },
            )
            return cur.fetchone() is not None

    def unsynced_terminal_runs(self, limit: int) -> list[Run]:
        """Ended runs whose workflow still waits in Conductor for the poller to finish it."""
        with self.db.autocommit() as cur:
            cur.execute(Q["unsynced_terminal_runs"], {**LIFECYCLE_SETS, "limit": limit})
            return [Run.from_row(r) for r in cur.fetchall()]

    def mark_workflows_synced(self, run_ids: list) -> None:
        """Remember that these runs' workflows were finished."""
        with self.db.autocommit() as cur:
            cur.execute(Q["mark_workflows_synced"], {"ids": run_ids})

    def mark_workflow_unsynced(self, run_id: uuid.UUID) -> bool:
        """Have the poller finish an ended run's workflow again (it was restarted and waits);
        False when it was not marked finished."""
        with self.db.autocommit() as cur:
            cur.execute(Q["mark_workflow_unsynced"], {**LIFECYCLE_SETS, "id": run_id})
            return cur.fetchone() is not None

    @contextmanager
    def poller_loop_lock(self) -> Iterator[PollerLoop | None]:
        """The recorded poller loop under a lock held for one check-and-start (None: another
        process holds it); the transaction ends when the block does."""
        with self.db.transaction() as cur:
            cur.execute(Q["try_poller_loop_lock"])
            if not cur.fetchone()["locked"]:
                yield None
                return
            cur.execute(Q["get_poller_loop"])
            row = cur.fetchone()
            yield PollerLoop(cur, row["workflow_id"] if row else None)

    # --------------------------------------------------------------------- the reconciler

    def reconcile_candidates(
        self,
        pending_after_seconds: int,
        check_every_seconds: int,
        lost_after: int,
        limit: int,
        give_up_after: int | None = None,
        give_up_kinds: tuple[str, ...] = (),
    ) -> ReconcileCandidates:
        """Stuck PENDING runs, active runs whose workflow is due a check, active runs whose
        job the Workbench answered `lost_after` times in a row it does not know, and active
        runs unread for `give_up_after` seconds whose latest failure is of `give_up_kinds`."""
        given_up: list = []
        with self.db.transaction() as cur:
            cur.execute(
                Q["stuck_pending_runs"], {"older_than": pending_after_seconds, "limit": limit}
            )
            pending = cur.fetchall()
            cur.execute(Q["active_runs_to_check"], {"every": check_every_seconds, "limit": limit})
            active = cur.fetchall()
            cur.execute(Q["runs_lost_on_workbench"], {"min_failures": lost_after, "limit": limit})
            lost = cur.fetchall()
            if give_up_after is not None and give_up_kinds:
                cur.execute(
                    Q["runs_to_give_up"],
                    {"give_up": give_up_after, "kinds": list(give_up_kinds), "limit": limit},
                )
                given_up = cur.fetchall()
        return ReconcileCandidates(
            *([Run.from_row(r) for r in rows] for rows in (pending, active, lost, given_up))
        )

    def ended_runs_to_finish(
        self, older_than_seconds: int, check_every_seconds: int, limit: int
    ) -> list[Run]:
        """Ended runs whose workflow the poller has not seen leave RUNNING for
        `older_than_seconds`, each looked at most every `check_every_seconds`."""
        with self.db.autocommit() as cur:
            cur.execute(
                Q["ended_runs_to_finish"],
                {
                    **LIFECYCLE_SETS,
                    "older_than": older_than_seconds,
                    "every": check_every_seconds,
                    "limit": limit,
                },
            )
            return [Run.from_row(r) for r in cur.fetchall()]

    def mark_workflow_checked(self, run_id: uuid.UUID) -> None:
        """Remember that the run's workflow was found live just now."""
        with self.db.transaction() as cur:
            cur.execute(Q["mark_workflow_checked"], {"id": run_id})

    @contextmanager
    def locked_for_repair(self, run_id: uuid.UUID, *statuses: str) -> Iterator[Repair | None]:
        """The run locked for its repair while it is still in one of `statuses` (tried in
        order); None when it has moved on or another process holds it."""
        with self.db.transaction() as cur:
            row = None
            for status in statuses:
                cur.execute(Q["lock_run_if_status"], {"id": run_id, "status": status})
                row = cur.fetchone()
                if row is not None:
                    break
            yield Repair(cur, Run.from_row(row)) if row is not None else None


class PollerLoop:
    """The recorded poller loop, inside the transaction that holds its lock."""

    def __init__(self, cur, workflow_id: str | None):
        self._cur = cur
        self.workflow_id = workflow_id

    def record(self, workflow_id: str) -> None:
        """Remember `workflow_id` as the one loop to keep."""
        if workflow_id != self.workflow_id:
            self._cur.execute(Q["set_poller_loop"], {"workflow_id": workflow_id})
            self.workflow_id = workflow_id


class Repair:
    """One run locked for the reconciler, inside the transaction that holds the lock."""

    def __init__(self, cur, run: Run):
        self._cur = cur
        self.run = run

    def restarts(self) -> int:
        """How many times the reconciler restarted this run's workflow."""
        self._cur.execute(Q["count_reconciler_restarts"], {"id": self.run.id})
        return self._cur.fetchone()["restarts"]

    def transition(self, t: Transition) -> None:
        """Move the run, with its event."""
        transition(self._cur, self.run.id, t)

    def replace_workflow(
        self,
        workflow_id: str,
        action: str,
        message: str,
        previous_status: str | None = None,
        extra: dict | None = None,
    ) -> None:
        """Point the run at another workflow and note why in its audit trail."""
        self._cur.execute(Q["replace_workflow_id"], {"id": self.run.id, "workflow_id": workflow_id})
        details = {
            "workflow_id": workflow_id,
            "previous_workflow_id": self.run.conductor_workflow_id,
            **(extra or {}),
        }
        if previous_status:
            details["previous_workflow_status"] = previous_status
        self.note(action, message, details)

    def cancel_job_later(self) -> None:
        """The run was ended here while its job may still run: the poller cancels it."""
        self._cur.execute(
            Q["request_cancel"],
            {**LIFECYCLE_SETS, "id": self.run.id, "actor": "reconciler", "reason": "ended"},
        )

    def note(self, action: str, message: str, details: dict) -> None:
        """Record a repair that changes no status in the audit trail, its action named."""
        self._cur.execute(
            Q["insert_note"],
            {
                "run_id": self.run.id,
                "status": self.run.status,
                "message": message,
                "details": Json({"action": action, **details}),
            },
        )

    def count_actions(self, action: str) -> int:
        """How many repairs of this action the reconciler made on this run."""
        self._cur.execute(Q["count_reconciler_actions"], {"id": self.run.id, "action": action})
        return self._cur.fetchone()["repairs"]

    def mark_checked(self) -> None:
        """Remember that the run's workflow was looked at just now."""
        self._cur.execute(Q["mark_workflow_checked"], {"id": self.run.id})

    def mark_synced(self) -> None:
        """Remember that the run's workflow has left RUNNING."""
        self._cur.execute(Q["mark_workflows_synced"], {"ids": [str(self.run.id)]})
