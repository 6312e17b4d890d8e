"""What the Workbench client returns: typed answers, already checked against the contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from batchcore.runs import lifecycle

__all__ = ["CancelResult", "JobStatus", "SubmittedJob"]


@dataclass(frozen=True)
class SubmittedJob:
    """The Workbench's answer to a submission."""

    job_id: str
    status: str  # the Workbench status, one of lifecycle.WORKBENCH_TO_RUN
    created: bool  # True for 201 (a new job), False for 200 (the idempotency key was known)


@dataclass(frozen=True)
class JobStatus:
    """A Workbench job's state, with the run status it means."""

    job_id: str
    workbench_status: str
    run_status: str
    error_message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # What the client changed to make the answer storable, with the raw values (made storable).
    normalised: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def terminal(self) -> bool:
        """True when the job has finished (its run status can never change again)."""
        return lifecycle.is_terminal(self.run_status)

    def event_details(self) -> dict[str, Any]:
        """The answer as an audit event's details (JSON, storable), with what was normalised."""
        details = {
            "workbench_job_id": self.job_id,
            "workbench_status": self.workbench_status,
            "error_message": self.error_message,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "normalised": dict(self.normalised) or None,
        }
        return {k: v for k, v in details.items() if v is not None}


@dataclass(frozen=True)
class CancelResult:
    """The Workbench's answer to a cancel: the job's status then, and whether it had ended.

    ``already_ended`` (HTTP 200) means ``workbench_status`` is the job's final status and the
    cancel changed nothing; otherwise (HTTP 202) the cancel was accepted and the job reaches
    CANCELLED later, unless it ends first, which only a status call tells.
    """

    job_id: str
    workbench_status: str
    run_status: str
    already_ended: bool

    @property
    def terminal(self) -> bool:
        """True when the status answered is a final one (always so when ``already_ended``)."""
        return lifecycle.is_terminal(self.run_status)

    def event_details(self) -> dict[str, Any]:
        """The answer as an audit event's details (JSON, storable)."""
        return {
            "workbench_job_id": self.job_id,
            "workbench_status": self.workbench_status,
            "cancel": "already_ended" if self.already_ended else "accepted",
        }
