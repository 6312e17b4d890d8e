"""The job store: idempotent creation, status derived from elapsed time, finishing once."""

from __future__ import annotations

import json
import logging
import math
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import processing

QUEUED = "QUEUED"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
OUTCOMES = (SUCCEEDED, FAILED, CANCELLED)

MAX_PREFIX_LENGTH = 1024
MAX_SIMULATED_SECONDS = 86_400.0
DEFAULT_FAILURE_MESSAGE = "simulated failure"

Clock = Callable[[], float]
"""Seconds since the epoch, like time.time; tests pass a fake one to move time."""

log = logging.getLogger(__name__)


def iso(ts: float) -> str:
    """ISO 8601 in UTC with an explicit offset, as the contract asks."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")


class ValidationError(ValueError):
    """A submission broke the contract; `details` names each bad field."""

    def __init__(self, details: list[dict[str, str]]):
        super().__init__("; ".join(f"{d['field']}: {d['message']}" for d in details))
        self.details = details


@dataclass(frozen=True)
class Simulation:
    """What `parameters.simulate` asked for; None means the configured default."""

    outcome: str = SUCCEEDED
    error_message: str | None = None
    run_seconds: float | None = None
    queue_seconds: float | None = None


@dataclass(frozen=True)
class Submission:
    """A validated POST /jobs body."""

    pipeline_run_id: str
    pipeline: str
    input_path_prefix: str
    output_path_prefix: str
    parameters: dict[str, Any]
    simulation: Simulation


def parse_submission(body: dict[str, Any]) -> Submission:
    """Check every field of a POST /jobs body at once; raise ValidationError listing them all."""
    details: list[dict[str, str]] = []

    def bad(name: str, rule: str, message: str) -> None:
        details.append({"field": name, "rule": rule, "message": message})

    text: dict[str, str] = {}
    for name in ("pipeline_run_id", "pipeline", "input_path_prefix", "output_path_prefix"):
        value = body.get(name)
        if name not in body or value is None:
            bad(name, "required", f"{name} is required")
        elif not isinstance(value, str):
            bad(name, "type", f"{name} must be a string")
        elif not value.strip():
            bad(name, "not_empty", f"{name} must not be empty")
        elif name.endswith("_prefix") and len(value) > MAX_PREFIX_LENGTH:
            bad(name, "max_length", f"{name} must be at most {MAX_PREFIX_LENGTH} characters")
        elif name.endswith("_prefix") and not (urlsplit(value).scheme and "://" in value):
            bad(name, "uri", f"{name} must be a URI such as s3://bucket/path or file:///dir")
        else:
            text[name] = value

    parameters = body.get("parameters")
    simulation = Simulation()
    if "parameters" not in body or parameters is None:
        bad("parameters", "required", "parameters is required (send {} when there are none)")
    elif not isinstance(parameters, dict):
        bad("parameters", "type", "parameters must be a JSON object")
    elif "simulate" in parameters:
        simulation = _parse_simulation(parameters["simulate"], bad)

    if details:
        raise ValidationError(details)
    return Submission(parameters=parameters, simulation=simulation, **text)


def _parse_simulation(raw: Any, bad: Callable[[str, str, str], None]) -> Simulation:
    prefix = "parameters.simulate"
    if not isinstance(raw, dict):
        bad(prefix, "type", f"{prefix} must be a JSON object")
        return Simulation()
    for key in sorted(set(raw) - {"outcome", "error_message", "duration_seconds", "queue_seconds"}):
        bad(f"{prefix}.{key}", "unknown", f"{prefix}.{key} is not a simulation setting")

    outcome = raw.get("outcome", SUCCEEDED)
    if not isinstance(outcome, str) or outcome.upper() not in OUTCOMES:
        bad(f"{prefix}.outcome", "enum", f"{prefix}.outcome must be one of {', '.join(OUTCOMES)}")
        outcome = SUCCEEDED

    message = raw.get("error_message")
    if message is not None and not isinstance(message, str):
        bad(f"{prefix}.error_message", "type", f"{prefix}.error_message must be a string")
        message = None

    seconds: dict[str, float | None] = {}
    for key in ("duration_seconds", "queue_seconds"):
        value = raw.get(key)
        # bool is an int in Python, but `true` seconds is surely a mistake in the request.
        if value is None:
            seconds[key] = None
        elif (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 <= value <= MAX_SIMULATED_SECONDS
        ):
            bad(
                f"{prefix}.{key}",
                "range",
                f"{prefix}.{key} must be a number of seconds from 0 to {MAX_SIMULATED_SECONDS:g}",
            )
            seconds[key] = None
        else:
            seconds[key] = float(value)

    return Simulation(
        outcome=outcome.upper(),
        error_message=message,
        run_seconds=seconds["duration_seconds"],
        queue_seconds=seconds["queue_seconds"],
    )


@dataclass
class _Job:
    job_id: str
    idempotency_key: str
    submission: Submission
    created_at: float
    started_at: float
    finished_at: float
    submissions: int = 1
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
        job_log_path: Path | None = None,
    ):
        self._clock = clock
        self._queue_seconds = queue_seconds
        self._run_seconds = run_seconds
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
        if now < job.started_at:
            return QUEUED, None
        if now < job.finished_at:
            return RUNNING, None
        self._settle(job)
        return job.final_status or FAILED, job.final_error

    def _settle(self, job: _Job) -> bool:
        # The per-job lock makes the file processing happen once even when a read, a list
        # and the sweeper race; other jobs are not held up while one is hashed.
        with job.lock:
            if job.final_status is not None:
                return False
            sim = job.submission.simulation
            status, message = sim.outcome, sim.error_message
            if status == FAILED and not message:
                message = DEFAULT_FAILURE_MESSAGE
            summary = "no processing for a simulated " + status
            if status == SUCCEEDED:
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
        return view


def _public_fields(job: _Job, status: str, message: str | None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "job_id": job.job_id,
        "status": status,
        "pipeline_run_id": job.submission.pipeline_run_id,
        "created_at": iso(job.created_at),
    }
    if status != QUEUED:
        view["started_at"] = iso(job.started_at)
    if status in OUTCOMES:
        # The scheduled end, not the time somebody happened to look.
        view["finished_at"] = iso(job.finished_at)
    if message:
        view["error_message"] = message
    return view
