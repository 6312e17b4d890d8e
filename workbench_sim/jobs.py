"""The job store: idempotent creation, status derived from elapsed time, finishing once,
cancels that take effect later (unless the job ends first)."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import processing
from .submission import (
    CANCELLED,
    FAILED,
    OUTCOMES,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Submission,
    ValidationError,
    parse_submission,
)

__all__ = [
    "CANCELLED",
    "FAILED",
    "OUTCOMES",
    "QUEUED",
    "RUNNING",
    "SUCCEEDED",
    "Clock",
    "JobStore",
    "ValidationError",
    "iso",
    "parse_submission",
]

DEFAULT_FAILURE_MESSAGE = "simulated failure"

Clock = Callable[[], float]
"""Seconds since the epoch, like time.time; tests pass a fake one to move time."""

log = logging.getLogger(__name__)


def iso(ts: float) -> str:
    """ISO 8601 in UTC with an explicit offset, as the contract asks."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")


@dataclass
class _Job:
    job_id: str
    idempotency_key: str
    submission: Submission
    created_at: float
    # None: cancelled before it ever started.
    started_at: float | None
    # When it ends: the scheduled end, or when its cancel takes effect if that comes first.
    finished_at: float
    submissions: int = 1
    # The first cancel request, how many came, and whether the cancel is what ends the job.
    cancel_requested_at: float | None = None
    cancel_requests: int = 0
    cancel_effective: bool = False
    # Set exactly once, under `lock`, when the finishing side effects have run.
    final_status: str | None = None
    final_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class JobStore:
    """All jobs in memory, keyed by id and by idempotency key; safe to share between threads."""

    def __init__(
        self,
        *,
        clock: Clock,
        queue_seconds: float,
        run_seconds: float,
        cancel_seconds: float = 2.0,
        job_log_path: Path | None = None,
    ):
        self._clock = clock
        self._queue_seconds = queue_seconds
        self._run_seconds = run_seconds
        self._cancel_seconds = cancel_seconds
        self._job_log_path = job_log_path
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._by_key: dict[str, str] = {}
        self._created = 0
        if job_log_path is not None:
            # Fail at start-up, not on the first job, when the log cannot be written.
            job_log_path.parent.mkdir(parents=True, exist_ok=True)
            job_log_path.touch(exist_ok=True)

    @property
    def created_count(self) -> int:
        """Jobs created since start (or the last reset)."""
        with self._lock:
            return self._created

    def submit(self, idempotency_key: str, submission: Submission) -> tuple[dict[str, Any], bool]:
        """Create a job for a new key, or return the existing one; the flag says it is new."""
        with self._lock:
            existing = self._by_key.get(idempotency_key)
            if existing is not None:
                job = self._jobs[existing]
                job.submissions += 1
            else:
                job = self._new_job(idempotency_key, submission)
        if existing is not None:
            return self._public_view(job, self._clock()), False
        log.info(
            "created job %s for run %s (pipeline %s)",
            job.job_id,
            submission.pipeline_run_id,
            submission.pipeline,
        )
        # A new job has only just been queued, whatever the configured times say.
        return _public_fields(job, QUEUED, None), True

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The contract's view of one job (finishing it first if its time has come)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            return None
        return self._public_view(job, self._clock())

    def cancel(self, job_id: str) -> tuple[dict[str, Any], bool] | None:
        """Ask a job to stop: (its view, whether it had already ended), None for no such job.

        The first request while the job runs makes it end CANCELLED its cancel delay later,
        unless it ends before that, keeping its real outcome; later requests change nothing.
        """
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            return None
        now = self._clock()
        with job.lock:
            ended = job.final_status is not None or now >= job.finished_at
            job.cancel_requests += 1
            first = job.cancel_requested_at is None
            if first:
                job.cancel_requested_at = now
                if not ended:
                    self._schedule_cancel(job, now)
        if first:
            if ended:
                said = "it had already ended"
            elif job.cancel_effective:
                said = f"it ends CANCELLED at {iso(job.finished_at)}"
            else:
                said = f"too late, it ends with its own outcome at {iso(job.finished_at)}"
            log.info("cancel of job %s requested: %s", job.job_id, said)
        # After the job's lock is released: the view may settle the job, which takes it.
        return self._public_view(job, now), ended

    def _schedule_cancel(self, job: _Job, now: float) -> None:
        # Called with job.lock held, once, while the job has not ended.
        seconds = job.submission.simulation.cancel_seconds
        takes_effect = now + (self._cancel_seconds if seconds is None else seconds)
        if takes_effect >= job.finished_at:
            return  # the job ends first, with its real outcome
        job.cancel_effective = True
        job.finished_at = takes_effect
        if job.started_at is not None and takes_effect < job.started_at:
            job.started_at = None

    def subject(self, job_id: str) -> tuple[str, str] | None:
        """(idempotency key, input path prefix) of a job, or None if there is no such job."""
        with self._lock:
            job = self._jobs.get(job_id)
        return None if job is None else (job.idempotency_key, job.submission.input_path_prefix)

    def list(self, pipeline_run_id: str | None = None) -> list[dict[str, Any]]:
        """The admin view of every job, oldest first, optionally for one run."""
        with self._lock:
            jobs = [
                j
                for j in self._jobs.values()
                if pipeline_run_id is None or j.submission.pipeline_run_id == pipeline_run_id
            ]
        now = self._clock()
        return [self._admin_view(job, now) for job in jobs]

    def finalize_due(self) -> int:
        """Run the finishing side effects of every job whose time is up; return how many ran."""
        with self._lock:
            jobs = list(self._jobs.values())
        now = self._clock()
        return sum(
            1
            for job in jobs
            if job.final_status is None and now >= job.finished_at and self._settle(job)
        )

    def reset(self) -> None:
        """Forget every job (the job log file is append-only and keeps its lines)."""
        with self._lock:
            self._jobs.clear()
            self._by_key.clear()
            self._created = 0

    def _new_job(self, key: str, submission: Submission) -> _Job:
        # Called with self._lock held, so creation and its log line are one step.
        now = self._clock()
        sim = submission.simulation
        queue = self._queue_seconds if sim.queue_seconds is None else sim.queue_seconds
        run = self._run_seconds if sim.run_seconds is None else sim.run_seconds
        job = _Job(
            job_id=f"wb-{uuid.uuid4().hex}",
            idempotency_key=key,
            submission=submission,
            created_at=now,
            started_at=now + queue,
            finished_at=now + queue + run,
        )
        self._jobs[job.job_id] = job
        self._by_key[key] = job.job_id
        self._created += 1
        self._append_log(job)
        return job

    def _append_log(self, job: _Job) -> None:
        if self._job_log_path is None:
            return
        line = {
            "job_id": job.job_id,
            "pipeline_run_id": job.submission.pipeline_run_id,
            "idempotency_key": job.idempotency_key,
            "created_at": iso(job.created_at),
        }
        try:
            with self._job_log_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")
        except OSError as exc:
            # The job exists either way; losing the audit line must not fail the submission.
            log.error("could not append job %s to %s: %s", job.job_id, self._job_log_path, exc)

    def _status(self, job: _Job, now: float) -> tuple[str, str | None]:
        if job.final_status is not None or now >= job.finished_at:
            self._settle(job)
            return job.final_status or FAILED, job.final_error
        if job.started_at is None or now < job.started_at:
            return QUEUED, None
        return RUNNING, None

    def _settle(self, job: _Job) -> bool:
        # The per-job lock makes the file processing happen once even when a read, a list
        # and the sweeper race; other jobs are not held up while one is hashed.
        with job.lock:
            if job.final_status is not None:
                return False
            sim = job.submission.simulation
            status, message = sim.outcome, sim.error_message
            if job.cancel_effective:
                status, message = CANCELLED, None
            if status == FAILED and not message:
                message = DEFAULT_FAILURE_MESSAGE
            summary = "no processing for a simulated " + status
            if job.cancel_effective:
                summary = "cancelled on request, no processing"
            elif status == SUCCEEDED:
                try:
                    summary = processing.process(
                        job.submission.input_path_prefix,
                        job.submission.output_path_prefix,
                        {
                            "job_id": job.job_id,
                            "pipeline_run_id": job.submission.pipeline_run_id,
                            "pipeline": job.submission.pipeline,
                            "finished_at": iso(job.finished_at),
                        },
                    )
                except processing.ProcessingError as exc:
                    status, message, summary = FAILED, str(exc), str(exc)
            job.final_status, job.final_error = status, message
        log.info("job %s finished %s: %s", job.job_id, status, summary)
        return True

    def _public_view(self, job: _Job, now: float) -> dict[str, Any]:
        status, message = self._status(job, now)
        return _public_fields(job, status, message)

    def _admin_view(self, job: _Job, now: float) -> dict[str, Any]:
        status, message = self._status(job, now)
        view = _public_fields(job, status, message)
        view.update(
            idempotency_key=job.idempotency_key,
            pipeline=job.submission.pipeline,
            input_path_prefix=job.submission.input_path_prefix,
            output_path_prefix=job.submission.output_path_prefix,
            parameters=job.submission.parameters,
            submissions=job.submissions,
        )
        if job.cancel_requested_at is not None:
            view["cancel"] = _cancel_fields(job, now)
        return view


def _cancel_fields(job: _Job, now: float) -> dict[str, Any]:
    """When a cancel was requested, how often, and whether and when it took effect."""
    if job.cancel_effective:
        state = "took_effect" if now >= job.finished_at else "pending"
    else:
        state = "too_late" if now >= job.finished_at or job.final_status else "pending"
    fields: dict[str, Any] = {
        "requested_at": iso(job.cancel_requested_at or 0.0),
        "requests": job.cancel_requests,
        "state": state,
    }
    if job.cancel_effective:
        fields["effective_at"] = iso(job.finished_at)
    return fields


def _public_fields(job: _Job, status: str, message: str | None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "job_id": job.job_id,
        "status": status,
        "pipeline_run_id": job.submission.pipeline_run_id,
        "created_at": iso(job.created_at),
    }
    if status != QUEUED and job.started_at is not None:
        view["started_at"] = iso(job.started_at)
    if status in OUTCOMES:
        # The scheduled end, not the time somebody happened to look.
        view["finished_at"] = iso(job.finished_at)
    if message:
        view["error_message"] = message
    return view
