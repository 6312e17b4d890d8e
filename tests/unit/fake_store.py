"""An in-memory RunStore for unit tests: the same methods and rules, a dict for the tables.

Each method is atomic like the real one's transaction: a repair or poller-loop block that
raises leaves the runs and events as they were. Time comes from an injected clock.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from batchcore.errors import InvalidTransition, NotFound
from batchcore.runs import cancels, lifecycle
from batchcore.runs.model import NewRun, PollOutcome, Run, Transition
from batchcore.runs.rows import AcceptedNew, WorkflowRecorded
from batchcore.runs.store import ReconcileCandidates
from tests.unit.fake_cancels import FakeCancelOps

PIPELINE = {
    "name": "demo-batch",
    "mode": "BATCH",
    "workflow_name": "batch_pipeline_run",
    "workflow_version": 1,
    "description": "",
    "enabled": True,
}


class FakeClock:
    """A settable UTC clock."""

    def __init__(self, start: datetime = datetime(2026, 1, 1, tzinfo=UTC)):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeStore(FakeCancelOps):
    """Runs, events and the poller loop in dicts; `calls` records the methods used."""

    def __init__(self, clock: FakeClock | None = None):
        self.clock = clock or FakeClock()
        self.rows: dict[uuid.UUID, dict] = {}
        self.events: list[dict] = []
        self.pipelines = {PIPELINE["name"]: dict(PIPELINE)}
        self.poller_loop_id: str | None = None
        self.poller_lock_held = False
        self.calls: list[str] = []

    # ------------------------------------------------------------------------ seeding

    def add_run(self, status: str = lifecycle.PENDING, **fields) -> Run:
        """A run as if stored long ago and moved to `status` (events included)."""
        now = self.clock()
        row = {f: None for f in Run.__dataclass_fields__}
        row.update(
            id=uuid.uuid4(),
            status=status,
            pipeline="demo-batch",
            mode="BATCH",
            input_path_prefix=f"s3://in/{uuid.uuid4().hex}",
            output_path_prefix=f"s3://out/{uuid.uuid4().hex}",
            parameters={},
            created_at=now,
            updated_at=now,
            poll_failures=0,
            poll_kind_failures=0,
        )
        if status in lifecycle.ACTIVE:
            row.update(workbench_job_id=f"wb-{uuid.uuid4().hex[:8]}", next_poll_at=now)
        if status in lifecycle.TERMINAL:
            row.update(completed_at=now)
        if status == lifecycle.FAILED:
            row.update(error_message="failed")
        row.pop("workflow_name")
        row.pop("workflow_version")
        row.update(fields)
        self.rows[row["id"]] = row
        self._event(row["id"], None, status, "test", "seeded", {})
        return Run.from_row(row)

    def row(self, run_id) -> dict:
        """The stored row of a run."""
        return self.rows[uuid.UUID(str(run_id))]

    def history(self, run_id) -> list[dict]:
        """A run's events, oldest first."""
        return [e for e in self.events if e["run_id"] == uuid.UUID(str(run_id))]

    # ----------------------------------------------------------------- gateway, workers

    def create_run(self, new: NewRun, admit=lambda pipeline: None):
        self.calls.append("create_run")
        pipeline = self.pipelines.get(new.pipeline)
        admit(pipeline)
        for row in self.rows.values():
            if new.idempotency_key and row["idempotency_key"] == new.idempotency_key:
                return AcceptedNew(pipeline, Run.from_row(row), False, [])
        run = self.add_run(**new.request(), idempotency_key=new.idempotency_key)
        return AcceptedNew(pipeline, run, True, self.history(run.id))

    def get_run(self, run_id) -> Run:
        self.calls.append("get_run")
        return Run.from_row(self._find(run_id))

    def get_run_with_history(self, run_id):
        self.calls.append("get_run_with_history")
        row = self._find(run_id)
        return Run.from_row(row), self.history(row["id"])

    def run_status(self, run_id) -> str | None:
        self.calls.append("run_status")
        row = self.rows.get(uuid.UUID(str(run_id)))
        return row["status"] if row else None

    def set_workflow_id(self, run_id, workflow_id: str) -> WorkflowRecorded | None:
        self.calls.append("set_workflow_id")
        row = self._find(run_id)
        if row["conductor_workflow_id"] is not None:
            return None
        row["conductor_workflow_id"] = workflow_id
        return WorkflowRecorded(Run.from_row(row), len(self.history(row["id"])))

    def transition(self, run_id, t: Transition):
        self.calls.append("transition")
        with self._atomic():
            row, changed = self._transition(self._find(run_id), t)
        return Run.from_row(row), changed

    def transition_if_pending(self, run_id, t: Transition) -> str:
        self.calls.append("transition_if_pending")
        row = self._find(run_id)
        current = row["status"]
        if current == lifecycle.PENDING:
            with self._atomic():
                self._transition(row, cancels.ending_for(row, t.source) or t)
                may_have_job = row["submit_started_at"] or row["workbench_job_id"]
                if may_have_job and row["cancel_requested_at"] is None:
                    self._request(row, t.source, cancels.ENDED)
        return current

    # ------------------------------------------------------------------------- poller

    def claim_due_runs(self, batch_size: int, lease_seconds: int) -> list[Run]:
        self.calls.append("claim_due_runs")
        now = self.clock()
        due = sorted(
            (
                r
                for r in self.rows.values()
                if r["status"] in lifecycle.ACTIVE
                and r["next_poll_at"] is not None
                and r["next_poll_at"] <= now
                and (r["poll_lease_until"] is None or r["poll_lease_until"] < now)
            ),
            key=lambda r: r["next_poll_at"],
        )[:batch_size]
        token = uuid.uuid4()
        for r in due:
            r["poll_lease_until"] = now + timedelta(seconds=lease_seconds)
            r["poll_lease_token"] = token
        return [Run.from_row(r) for r in due]

    def apply_poll_results(self, outcomes: list[PollOutcome], interval_seconds: int) -> list[dict]:
        self.calls.append("apply_poll_results")
        now = self.clock()
        moved = []
        with self._atomic():
            for o in outcomes:
                row = self._find(o.run_id)
                if row["status"] != o.expected or row["poll_lease_token"] != o.lease_token:
                    continue
                if o.new_status is not None:
                    self._apply_move(row, o, now, interval_seconds)
                    moved.append({"id": row["id"], "status": row["status"]})
                else:
                    self._apply_stay(row, o, now, interval_seconds)
        return moved

    def record_poll_write_failure(self, outcome: PollOutcome, error, kind, retry_at) -> bool:
        self.calls.append("record_poll_write_failure")
        row = self._find(outcome.run_id)
        if row["status"] not in lifecycle.ACTIVE or row["poll_lease_token"] != outcome.lease_token:
            return False
        same = row["last_poll_error_kind"] == kind
        row.update(
            last_polled_at=self.clock(),
            poll_failures=row["poll_failures"] + 1,
            poll_kind_failures=row["poll_kind_failures"] + 1 if same else 1,
            poll_failing_since=row["poll_failing_since"] or self.clock(),
            last_poll_error=error,
            last_poll_error_kind=kind,
            next_poll_at=retry_at,
            poll_lease_until=None,
        )
        return True

    def unsynced_terminal_runs(self, limit: int) -> list[Run]:
        self.calls.append("unsynced_terminal_runs")
        rows = [
            r
            for r in self.rows.values()
            if r["status"] in lifecycle.TERMINAL
            and r["workflow_synced_at"] is None
            and r["workbench_job_id"]
            and r["conductor_workflow_id"]
        ]
        return [Run.from_row(r) for r in sorted(rows, key=lambda r: r["completed_at"])[:limit]]

    def mark_workflows_synced(self, run_ids) -> None:
        self.calls.append("mark_workflows_synced")
        for run_id in run_ids:
            row = self._find(run_id)
            row["workflow_synced_at"] = row["workflow_synced_at"] or self.clock()

    def mark_workflow_unsynced(self, run_id) -> bool:
        self.calls.append("mark_workflow_unsynced")
        row = self._find(run_id)
        if row["status"] not in lifecycle.TERMINAL or row["workflow_synced_at"] is None:
            return False
        row["workflow_synced_at"] = None
        return True

    @contextmanager
    def poller_loop_lock(self) -> Iterator[_Loop | None]:
        self.calls.append("poller_loop_lock")
        if self.poller_lock_held:
            yield None
            return
        self.poller_lock_held = True
        try:
            loop = _Loop(self.poller_loop_id)
            yield loop
            self.poller_loop_id = loop.workflow_id
        finally:
            self.poller_lock_held = False

    # --------------------------------------------------------------------- reconciler

    def reconcile_candidates(
        self,
        pending_after_seconds: int,
        check_every_seconds: int,
        lost_after: int,
        limit: int,
        give_up_after: int | None = None,
        give_up_kinds: tuple[str, ...] = (),
    ) -> ReconcileCandidates:
        self.calls.append("reconcile_candidates")
        now = self.clock()
        rows = sorted(self.rows.values(), key=lambda r: r["created_at"])
        pending = [
            r
            for r in rows
            if r["status"] == lifecycle.PENDING
            and r["created_at"] < now - timedelta(seconds=pending_after_seconds)
        ]
        active = [
            r
            for r in rows
            if r["status"] in lifecycle.ACTIVE
            and (
                r["workflow_checked_at"] is None
                or r["workflow_checked_at"] < now - timedelta(seconds=check_every_seconds)
            )
        ]
        lost = [
            r
            for r in rows
            if r["status"] in lifecycle.ACTIVE
            and r["last_poll_error_kind"] == "not_found"
            and r["poll_kind_failures"] >= lost_after
        ]
        given_up = [
            r
            for r in rows
            if give_up_after is not None
            and r["status"] in lifecycle.ACTIVE
            and r["last_poll_error_kind"] in give_up_kinds
            and r["poll_failing_since"] is not None
            and r["poll_failing_since"] < now - timedelta(seconds=give_up_after)
        ]
        return ReconcileCandidates(
            *(
                [self._with_pipeline(r) for r in found[:limit]]
                for found in (pending, active, lost, given_up)
            )
        )

    def ended_runs_to_finish(self, older_than_seconds, check_every_seconds, limit) -> list[Run]:
        self.calls.append("ended_runs_to_finish")
        now = self.clock()
        rows = [
            r
            for r in self.rows.values()
            if r["status"] in lifecycle.TERMINAL
            and r["workflow_synced_at"] is None
            and r["completed_at"] < now - timedelta(seconds=older_than_seconds)
            and (
                r["workflow_checked_at"] is None
                or r["workflow_checked_at"] < now - timedelta(seconds=check_every_seconds)
            )
        ]
        rows.sort(
            key=lambda r: (
                r["workflow_checked_at"] is not None,
                r["workflow_checked_at"] or now,
                r["completed_at"],
            )
        )
        return [self._with_pipeline(r) for r in rows[:limit]]

    def mark_workflow_checked(self, run_id) -> None:
        self.calls.append("mark_workflow_checked")
        self._find(run_id)["workflow_checked_at"] = self.clock()

    @contextmanager
    def locked_for_repair(self, run_id, *statuses: str) -> Iterator[_Repair | None]:
        self.calls.append("locked_for_repair")
        row = self.rows.get(uuid.UUID(str(run_id)))
        if row is None or row["status"] not in statuses:
            yield None
            return
        with self._atomic():
            yield _Repair(self, row)

    # ------------------------------------------------------------------------ helpers

    def _find(self, run_id) -> dict:
        try:
            return self.rows[uuid.UUID(str(run_id))]
        except (KeyError, ValueError):
            raise NotFound(f"No pipeline run with id {str(run_id)[:100]!r}") from None

    def _with_pipeline(self, row: dict) -> Run:
        pipeline = self.pipelines[row["pipeline"]]
        return Run.from_row(
            {
                **row,
                "workflow_name": pipeline["workflow_name"],
                "workflow_version": pipeline["workflow_version"],
            }
        )

    @contextmanager
    def _atomic(self):
        saved = copy.deepcopy((self.rows, self.events))
        try:
            yield
        except BaseException:
            self.rows, self.events = saved
            raise

    def _event(self, run_id, previous, status, source, message, details) -> None:
        self.events.append(
            {
                "run_id": run_id,
                "previous_status": previous,
                "status": status,
                "at": self.clock(),
                "source": source,
                "message": message,
                "details": details or {},
            }
        )

    def _transition(self, row: dict, t: Transition) -> tuple[dict, bool]:
        current = row["status"]
        if current == t.status:
            if t.workbench_job_id not in (None, row["workbench_job_id"]):
                raise InvalidTransition(f"run {row['id']} has another Workbench job")
            return row, False
        if not lifecycle.can_transition(current, t.status):
            raise InvalidTransition(f"run {row['id']} cannot move from {current} to {t.status}")
        if row["workbench_job_id"] and t.workbench_job_id not in (None, row["workbench_job_id"]):
            raise InvalidTransition(f"run {row['id']} already has a Workbench job")
        now = self.clock()
        row["status"] = t.status
        row["workbench_job_id"] = row["workbench_job_id"] or t.workbench_job_id
        row["error_message"] = t.error_message or row["error_message"]
        row["error_details"] = t.error_details or row["error_details"]
        if row["workbench_job_id"]:
            row["submitted_at"] = row["submitted_at"] or now
        if t.status in lifecycle.TERMINAL:
            row["completed_at"] = row["completed_at"] or t.completed_at or now
            row["next_poll_at"] = None
        elif t.status in lifecycle.ACTIVE:
            row["next_poll_at"] = row["next_poll_at"] or now
            row["poll_failures"] = 0
        row["poll_lease_until"] = None
        self._event(row["id"], current, t.status, t.source, t.message, t.details)
        return row, True

    def _apply_move(self, row: dict, o: PollOutcome, now, interval_seconds: int) -> None:
        terminal = o.new_status in lifecycle.TERMINAL
        previous = row["status"]
        row["status"] = o.new_status
        if o.new_status == lifecycle.FAILED:
            row["error_message"] = o.error_message
            row["error_details"] = o.details
        if o.new_status == lifecycle.RUNNING:
            row["started_at"] = row["started_at"] or o.started_at or now
        else:
            row["started_at"] = row["started_at"] or o.started_at
        row["completed_at"] = (o.finished_at or now) if terminal else None
        row["last_polled_at"] = row["status_checked_at"] = now
        if o.cancel_sent:
            row["cancel_sent_at"] = row["cancel_sent_at"] or now
        row["next_poll_at"] = None if terminal else now + timedelta(seconds=interval_seconds)
        row.update(poll_failures=0, last_poll_error=None, last_poll_error_kind=None)
        row.update(poll_kind_failures=0, poll_failing_since=None)
        row["poll_lease_until"] = None
        self._event(row["id"], previous, row["status"], "poller", o.message, o.details)

    def _apply_stay(self, row: dict, o: PollOutcome, now, interval_seconds: int) -> None:
        row["last_polled_at"] = now
        if o.poll_error is None:
            row["status_checked_at"] = now
        if o.cancel_sent:
            row["cancel_sent_at"] = row["cancel_sent_at"] or now
        row["poll_failures"] = 0 if o.poll_error is None else row["poll_failures"] + 1
        same = row["last_poll_error_kind"] == o.error_kind
        row["poll_kind_failures"] = (
            0 if o.poll_error is None else row["poll_kind_failures"] + 1 if same else 1
        )
        row["poll_failing_since"] = (
            None if o.poll_error is None else row["poll_failing_since"] or now
        )
        row["last_poll_error"] = o.poll_error
        row["last_poll_error_kind"] = o.error_kind
        row["next_poll_at"] = o.retry_at or now + timedelta(seconds=interval_seconds)
        row["poll_lease_until"] = None
        if o.poll_error is not None and row["poll_kind_failures"] == 1:
            message = "Workbench status could not be read: " + o.poll_error
            self._event(row["id"], row["status"], row["status"], "poller", message, o.details)


class _Loop:
    def __init__(self, workflow_id: str | None):
        self.workflow_id = workflow_id

    def record(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id


class _Repair:
    def __init__(self, store: FakeStore, row: dict):
        self._store = store
        self._row = row
        self.run = Run.from_row(row)

    def cancel_job_later(self) -> None:
        self._store._request(self._row, "reconciler", cancels.ENDED)

    def restarts(self) -> int:
        return sum(
            1
            for e in self._store.history(self._row["id"])
            if e["source"] == "reconciler" and e["details"].get("action") == "restarted"
        )

    def transition(self, t: Transition) -> None:
        self._store._transition(self._row, t)

    def replace_workflow(
        self, workflow_id, action, message, previous_status=None, extra=None
    ) -> None:
        details = {
            "workflow_id": workflow_id,
            "previous_workflow_id": self._row["conductor_workflow_id"],
            **(extra or {}),
        }
        if previous_status:
            details["previous_workflow_status"] = previous_status
        self._row.update(
            conductor_workflow_id=workflow_id,
            workflow_synced_at=None,
            workflow_checked_at=self._store.clock(),
        )
        self.note(action, message, details)

    def note(self, action, message, details) -> None:
        status = self._row["status"]
        details = {"action": action, **details}
        self._store._event(self._row["id"], status, status, "reconciler", message, details)

    def count_actions(self, action) -> int:
        return sum(
            1
            for e in self._store.history(self._row["id"])
            if e["source"] == "reconciler" and e["details"].get("action") == action
        )

    def mark_checked(self) -> None:
        self._row["workflow_checked_at"] = self._store.clock()

    def mark_synced(self) -> None:
        self._row["workflow_synced_at"] = self._row["workflow_synced_at"] or self._store.clock()
