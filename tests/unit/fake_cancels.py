"""The fake store's cancel, deadline and submission-guard operations (batchcore.runs.cancels)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from batchcore.errors import RunTerminal
from batchcore.runs import cancels, lifecycle
from batchcore.runs.model import Run, Transition


class FakeCancelOps:
    """Mixed into FakeStore, with the real store's semantics on its dicts."""

    def request_cancel(self, run_id, actor: str) -> tuple[Run, bool]:
        self.calls.append("request_cancel")
        row = self._find(run_id)
        if row["status"] in lifecycle.TERMINAL:
            raise RunTerminal(f"Run {row['id']} is already {row['status']}")
        if row["cancel_requested_at"] is not None:
            return Run.from_row(row), False
        with self._atomic():
            self._request(row, actor, cancels.REQUESTED)
            if row["status"] == lifecycle.PENDING and row["submit_started_at"] is None:
                t = Transition(lifecycle.CANCELLED, "gateway", "Cancelled", {}, actor=actor)
                self._transition(row, t)
                return Run.from_row(row), True
            self._event(row["id"], row["status"], row["status"], "gateway", "Cancel requested", {})
        return Run.from_row(row), False

    def begin_submit(self, run_id) -> Run:
        self.calls.append("begin_submit")
        row = self._find(run_id)
        if row["status"] == lifecycle.PENDING and row["cancel_requested_at"] is None:
            row["submit_started_at"] = row["submit_started_at"] or self.clock()
        return Run.from_row(row)

    def attach_job(self, run_id, job_id: str) -> Run:
        self.calls.append("attach_job")
        row = self._find(run_id)
        if row["workbench_job_id"] is not None:
            return Run.from_row(row)
        ended = row["status"] in lifecycle.TERMINAL
        if ended and row["cancel_requested_at"] is None:
            self._request(row, "submit", cancels.ENDED)
        if ended or row["status"] == lifecycle.PENDING:
            row["workbench_job_id"] = job_id
        if ended:
            self._event(row["id"], row["status"], row["status"], "submit", "late job", {})
        return Run.from_row(row)

    def ended_runs_to_cancel(self, limit: int) -> list[Run]:
        self.calls.append("ended_runs_to_cancel")
        rows = [
            r
            for r in self.rows.values()
            if r["cancel_requested_at"] is not None
            and r["cancel_sent_at"] is None
            and r["status"] in lifecycle.TERMINAL
            and (r["workbench_job_id"] is not None or r["submit_started_at"] is not None)
        ]
        return [Run.from_row(r) for r in rows[:limit]]

    def record_ended_run_cancel(self, run: Run, job_id, job_status: str) -> bool:
        self.calls.append("record_ended_run_cancel")
        row = self._find(run.id)
        if row["cancel_sent_at"] is not None:
            return False
        row["workbench_job_id"] = row["workbench_job_id"] or job_id
        row["cancel_sent_at"] = self.clock()
        self._event(row["id"], row["status"], row["status"], "poller", "job cancelled", {})
        return True

    def enforce_deadlines(self, grace_seconds: int, limit: int) -> list[Run]:
        self.calls.append("enforce_deadlines")
        now = self.clock()
        grace = timedelta(seconds=grace_seconds)
        touched = []
        for row in list(self.rows.values()):
            if row["status"] not in cancels.OPEN or row["deadline_at"] is None:
                continue
            if row["deadline_at"] >= now:
                continue
            overdue = row["deadline_at"] + grace < now
            if row["cancel_requested_at"] is not None and not overdue:
                continue
            no_job = row["workbench_job_id"] is None and row["submit_started_at"] is None
            if row["cancel_requested_at"] is None:
                self._request(row, "poller", cancels.DEADLINE)
                if not no_job and not overdue:
                    touched.append(Run.from_row(row))
                    continue
            ending = cancels.ending_for(row, "poller", confirmed=no_job)
            self._transition(row, dataclasses.replace(ending))
            touched.append(Run.from_row(row))
        return touched[:limit]

    def _request(self, row: dict, actor: str, reason: str) -> None:
        row.update(
            cancel_requested_at=self.clock(), cancel_requested_by=actor, cancel_reason=reason
        )
        if row["status"] in lifecycle.ACTIVE:
            row["next_poll_at"] = self.clock()
