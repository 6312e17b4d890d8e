"""The run store's cancel, deadline and submission-guard operations (a part of RunStore).

A run's job is cancelled for one of three reasons (cancel_reason): a client asked for it
('requested'), its deadline came ('deadline'), or the run ended while a job may exist that
nobody follows ('ended': a submission whose answer came back, or never came back, after the
run had ended). Before any submit task asked the Workbench for a job (submit_started_at),
no job can exist and a cancel ends the run at once.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime

from batchcore.errors import RunTerminal
from batchcore.queries import Q

from . import lifecycle
from .model import PollOutcome, Run, Transition
from .rows import LIFECYCLE_SETS, _event, get_run, parse_uuid, transition

REQUESTED = "requested"
DEADLINE = "deadline"
ENDED = "ended"
DEADLINE_EXCEEDED = "deadline_exceeded"
# Statuses of a run that has, or may get, a job to cancel.
OPEN = (lifecycle.PENDING, lifecycle.SUBMITTED, lifecycle.RUNNING)


def deadline_failure(deadline_at: datetime | None, confirmed: bool) -> Transition:
    """The FAILED transition of a run that reached its deadline."""
    at = deadline_at.isoformat() if deadline_at else None
    message = f"Deadline exceeded at {at}"
    if not confirmed:
        message += "; the Workbench did not confirm the job's cancel in time"
    details = {"code": DEADLINE_EXCEEDED, "deadline_at": at, "cancel_confirmed": confirmed}
    return Transition(
        lifecycle.FAILED,
        "poller",
        message,
        details,
        error_message=message,
        error_details=details,
    )


def ending_for(row: dict, source: str, confirmed: bool = False) -> Transition | None:
    """How a run with a cancel requested ends without its job's answer: CANCELLED when a client
    asked, FAILED when its deadline came; None when no cancel was requested for it."""
    if row["cancel_reason"] == REQUESTED:
        return Transition(
            lifecycle.CANCELLED,
            source,
            "Cancelled" + ("" if confirmed else "; no Workbench job was confirmed for it"),
            {"cancel_requested_by": row["cancel_requested_by"]},
        )
    if row["cancel_reason"] == DEADLINE:
        return dataclasses.replace(deadline_failure(row["deadline_at"], confirmed), source=source)
    return None


def judge_cancelled(run: Run, workbench_status: str, outcome: PollOutcome) -> None:
    """Amend the outcome of a poll that ends a run whose cancel was requested: CANCELLED when
    a client asked and the job was cancelled, FAILED (deadline_exceeded) when its deadline
    came; a job that ended otherwise keeps its outcome, and the history says the cancel came
    too late."""
    if workbench_status != "CANCELLED":
        outcome.message = f"{outcome.message}; the cancel came too late"
        outcome.details = {**outcome.details, "cancel_too_late": True}
        return
    if run.cancel_reason == REQUESTED:
        outcome.new_status = lifecycle.CANCELLED
        outcome.message = f"Workbench job was cancelled, as {run.cancel_requested_by} asked"
        outcome.error_message = None
    elif run.cancel_reason == DEADLINE:
        t = deadline_failure(run.deadline_at, confirmed=True)
        outcome.message, outcome.error_message = t.message, t.error_message
        outcome.details = {**outcome.details, **t.details}


def end_pending(cur, row: dict, t: Transition) -> None:
    """End a PENDING run whose submission failed or whose workflow never started: as its
    cancel says when one was asked for, else by `t`; a job that may exist (a submission was
    started) is then due for cancelling."""
    transition(cur, row["id"], ending_for(row, t.source) or t)
    may_have_job = row["submit_started_at"] is not None or row["workbench_job_id"] is not None
    if may_have_job and row["cancel_requested_at"] is None:
        cur.execute(
            Q["request_cancel"],
            {**LIFECYCLE_SETS, "id": row["id"], "actor": t.source, "reason": ENDED},
        )


class CancelOps:
    """Mixed into RunStore: every statement here is the store's, on its database."""

    db = None  # set by RunStore.__init__

    def request_cancel(self, run_id: str | uuid.UUID, actor: str) -> tuple[Run, bool]:
        """(run, ended): a run no submit task has asked a job for ends CANCELLED at once;
        any other open run has its cancel requested, sent by the poller. RunTerminal for a
        run that has ended; repeating the request changes nothing."""
        with self.db.transaction() as cur:
            row = get_run(cur, run_id, lock=True)
            if lifecycle.is_terminal(row["status"]):
                raise RunTerminal(
                    f"Run {row['id']} is already {row['status']}; there is nothing to cancel"
                )
            cur.execute(
                Q["request_cancel"],
                {**LIFECYCLE_SETS, "id": row["id"], "actor": actor, "reason": REQUESTED},
            )
            requested = cur.fetchone()
            if requested is None:  # asked before: harmless
                return Run.from_row(row), False
            if row["status"] == lifecycle.PENDING and row["submit_started_at"] is None:
                t = Transition(
                    lifecycle.CANCELLED,
                    "gateway",
                    "Cancelled before a Workbench job was asked for",
                    {"cancel_requested_by": actor},
                    actor=actor,
                )
                ended, _ = transition(cur, row["id"], t)
                return Run.from_row(ended), True
            message = (
                "Cancel requested: the Workbench job is cancelled at the poller's next sweep"
                if row["workbench_job_id"]
                else "Cancel requested while the Workbench job is being created: it is "
                "cancelled as soon as it is known"
            )
            _event(cur, row["id"], row["status"], row["status"], "gateway", message, {}, actor)
            return Run.from_row(requested), False

    def begin_submit(self, run_id: str | uuid.UUID) -> Run:
        """The run as a submit task finds it; a PENDING run no one cancelled is marked as
        having a submission started (from then on a cancel waits for the job's answer)."""
        parsed = parse_uuid(run_id)
        with self.db.transaction() as cur:
            row = None
            if parsed is not None:
                cur.execute(Q["begin_submit"], {"id": parsed})
                row = cur.fetchone()
            return Run.from_row(row if row is not None else get_run(cur, run_id))

    def attach_job(self, run_id: uuid.UUID, job_id: str) -> Run:
        """Record the job the Workbench created for the run, as soon as it answers: on a
        PENDING run, or on one that ended meanwhile (then its cancel is due: reason 'ended')."""
        with self.db.transaction() as cur:
            row = get_run(cur, run_id, lock=True)
            if row["workbench_job_id"] is not None:
                return Run.from_row(row)
            ended = lifecycle.is_terminal(row["status"])
            if ended and row["cancel_requested_at"] is None:
                cur.execute(
                    Q["request_cancel"],
                    {**LIFECYCLE_SETS, "id": run_id, "actor": "submit", "reason": ENDED},
                )
            if ended or row["status"] == lifecycle.PENDING:
                cur.execute(Q["attach_job"], {"id": run_id, "job_id": job_id})
                row = cur.fetchone()
            if ended:
                _event(
                    cur,
                    run_id,
                    row["status"],
                    row["status"],
                    "submit",
                    f"The Workbench created job {job_id} after the run had ended; "
                    "it is cancelled at the Workbench",
                    {"workbench_job_id": job_id},
                )
            return Run.from_row(row)

    def ended_runs_to_cancel(self, limit: int) -> list[Run]:
        """Ended runs whose job is, or may be, still to be cancelled at the Workbench."""
        with self.db.autocommit() as cur:
            cur.execute(Q["ended_runs_to_cancel"], {**LIFECYCLE_SETS, "limit": limit})
            return [Run.from_row(r) for r in cur.fetchall()]

    def record_ended_run_cancel(self, run: Run, job_id: str | None, job_status: str) -> bool:
        """Remember that the ended run's job was cancelled (or had ended, or that none
        exists: job_id None), with a note."""
        with self.db.transaction() as cur:
            cur.execute(Q["record_ended_run_cancel"], {"id": run.id, "job_id": job_id})
            row = cur.fetchone()
            if row is None:
                return False
            if job_id is None:
                message = f"The Workbench has no job for the run ({job_status})"
            elif job_status in lifecycle.WORKBENCH_FINAL:
                message = f"The run's Workbench job {job_id} had already ended ({job_status})"
            else:
                message = f"The run's Workbench job {job_id} was cancelled after the run ended"
            details = {"workbench_job_id": job_id, "workbench_status": job_status}
            _event(cur, run.id, row["status"], row["status"], "poller", message, details)
            return True

    def enforce_deadlines(self, grace_seconds: int, limit: int) -> list[Run]:
        """Act on open runs past their deadline: end at once those with no job and no
        submission, request the cancel of the others, and end without the Workbench's word
        those whose cancel stayed unconfirmed for `grace_seconds`; return the runs touched.
        One read when none is due; each due run is then judged again under its lock."""
        params = {"open": list(OPEN), "grace": grace_seconds, "limit": limit}
        with self.db.autocommit() as cur:
            cur.execute(Q["runs_past_deadline"], params)
            due = [row["id"] for row in cur.fetchall()]
        touched = []
        for run_id in due:
            with self.db.transaction() as cur:
                cur.execute(Q["lock_run_past_deadline"], {**params, "id": run_id})
                row = cur.fetchone()
                if row is not None:
                    touched.append(Run.from_row(self._act_on_deadline(cur, row, row["overdue"])))
        return touched

    def _act_on_deadline(self, cur, row: dict, overdue: bool) -> dict:
        no_job = row["workbench_job_id"] is None and row["submit_started_at"] is None
        if row["cancel_requested_at"] is None:
            cur.execute(
                Q["request_cancel"],
                {**LIFECYCLE_SETS, "id": row["id"], "actor": "poller", "reason": DEADLINE},
            )
            row = cur.fetchone()
            if not no_job and not overdue:
                _event(
                    cur,
                    row["id"],
                    row["status"],
                    row["status"],
                    "poller",
                    "Deadline reached: the Workbench job is being cancelled",
                    {"deadline_at": row["deadline_at"].isoformat()},
                )
                return row
        ending = ending_for(row, "poller", confirmed=no_job)
        ended, _ = transition(cur, row["id"], ending)
        return ended
