"""The typed run: a request to store, a stored run built from its row, a requested change."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from batchcore import settings
from batchcore.setting_checks import DEFAULT_TOKEN_NAME

from . import lifecycle

# The run's public JSON field names, in the order the API renders them.
PUBLIC_FIELDS = (
    "id",
    "pipeline",
    "mode",
    "status",
    "input_path_prefix",
    "output_path_prefix",
    "parameters",
    "workbench_job_id",
    "conductor_workflow_id",
    "error_message",
    "error_details",
    "created_at",
    "updated_at",
    "submitted_at",
    "started_at",
    "completed_at",
    # Beyond the contract's list: the poller's view of the run, for troubleshooting.
    "poll_failures",
    "last_poll_error",
    "last_polled_at",
    # Where the run's status changes are sent (issue 15), or null.
    "notify_url",
    # The name of the API token that created the run (issue 13).
    "submitted_by",
    # Cancelling, re-running, deadlines and freshness (issue 13).
    "cancel_requested_at",
    "cancel_requested_by",
    "deadline_at",
    "rerun_of",
    "status_checked_at",
)
# An audit event's public JSON field names.
# actor: who caused the event (the token's name for API actions, else the component's).
HISTORY_FIELDS = ("status", "previous_status", "at", "source", "message", "details", "actor")
_DEFAULT_DEADLINE_SECONDS = settings.default("RUN_DEADLINE_SECONDS")


# A NewRun field's role, in its metadata. "request": a client may name it in a request's body.
# "fingerprint": it tells two requests apart ("always", or "when_set": only when not None, so
# that a request without it keeps the fingerprint it had before the field existed).
_ASKED = {"request": True, "fingerprint": "always"}
_ASKED_LATER = {"request": True, "fingerprint": "when_set"}


@dataclass(frozen=True)
class NewRun:
    """A validated run request, ready to store."""

    pipeline: str = field(metadata=_ASKED)
    mode: str = field(metadata=_ASKED)
    input_path_prefix: str = field(metadata=_ASKED)
    output_path_prefix: str = field(metadata=_ASKED)
    parameters: dict = field(default_factory=dict, hash=False, metadata=_ASKED)
    idempotency_key: str | None = None
    # After the idempotency key, so positional callers are unchanged.
    notify_url: str | None = field(default=None, metadata=_ASKED_LATER)
    # Who asks (the token's name), not what: it scopes the key and is no request field.
    submitted_by: str = DEFAULT_TOKEN_NAME
    # Seconds from its creation until an active run is cancelled and fails (issue 13).
    deadline_seconds: int | None = field(default=None, metadata=_ASKED_LATER)
    # The run this one re-runs: set by the rerun route, never by a body, yet a rerun of
    # another run is another request.
    rerun_of: uuid.UUID | None = field(default=None, metadata={"fingerprint": "when_set"})
    # The deadline when neither the request nor the pipeline has one (RUN_DEADLINE_SECONDS).
    default_deadline_seconds: int = _DEFAULT_DEADLINE_SECONDS

    def request(self) -> dict:
        """The request's fields (what a client's body may name), in declaration order."""
        return {name: getattr(self, name) for name in REQUEST_FIELDS}

    def fingerprint(self) -> str:
        """sha256 of the canonical request: what makes two submissions 'the same'."""
        values = []
        for item in dataclasses.fields(self):
            role = item.metadata.get("fingerprint")
            value = getattr(self, item.name)
            if role == "always" or (role == "when_set" and value is not None):
                values.append(str(value) if isinstance(value, uuid.UUID) else value)
        canonical = json.dumps(values, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


# What a client asks for: the fields of a run request's body, in declaration order.
REQUEST_FIELDS = tuple(f.name for f in dataclasses.fields(NewRun) if f.metadata.get("request"))


@dataclass(frozen=True)
class Run:
    """One stored run; a query that selects fewer columns leaves the others at their default."""

    id: uuid.UUID
    status: str
    pipeline: str | None = None
    mode: str | None = None
    input_path_prefix: str | None = None
    output_path_prefix: str | None = None
    parameters: dict = field(default_factory=dict)
    idempotency_key: str | None = None
    conductor_workflow_id: str | None = None
    workbench_job_id: str | None = None
    error_message: str | None = None
    error_details: dict | list | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    last_polled_at: datetime | None = None
    next_poll_at: datetime | None = None
    poll_failures: int = 0
    last_poll_error: str | None = None
    last_poll_error_kind: str | None = None
    poll_lease_until: datetime | None = None
    # The poller's streaks and the claim that holds the run (migration 0007).
    poll_failing_since: datetime | None = None
    poll_kind_failures: int = 0
    poll_lease_token: uuid.UUID | None = None
    workflow_synced_at: datetime | None = None
    workflow_checked_at: datetime | None = None
    notify_url: str | None = None
    submitted_by: str | None = None
    # Cancelling, deadlines, re-running, freshness (migration 0011).
    cancel_requested_at: datetime | None = None
    cancel_requested_by: str | None = None
    cancel_reason: str | None = None
    cancel_sent_at: datetime | None = None
    submit_started_at: datetime | None = None
    deadline_at: datetime | None = None
    rerun_of: uuid.UUID | None = None
    status_checked_at: datetime | None = None
    # The runs that re-ran this one, oldest first, when the query read them (get_run).
    reruns: list[uuid.UUID] | None = None
    # The pipeline's Conductor workflow, when the query joined the catalog.
    workflow_name: str | None = None
    workflow_version: int | None = None

    @classmethod
    def from_row(cls, row: dict) -> Run:
        """The run in a row; columns the model does not name (internal ones) are left out."""
        return cls(**{k: v for k, v in row.items() if k in _RUN_FIELDS})

    def to_dict(self) -> dict:
        """Every field by name (JSON rendering picks PUBLIC_FIELDS from it)."""
        return {name: getattr(self, name) for name in _RUN_FIELDS}

    @property
    def is_terminal(self) -> bool:
        """True once the run can never change again."""
        return lifecycle.is_terminal(self.status)

    def can_move_to(self, status: str) -> bool:
        """True when the lifecycle allows this run to move to `status`."""
        return lifecycle.can_transition(self.status, status)


_RUN_FIELDS = tuple(f.name for f in dataclasses.fields(Run))


@dataclass(frozen=True)
class Transition:
    """One requested status change and what comes with it."""

    status: str
    source: str
    message: str
    details: dict = field(default_factory=dict)
    workbench_job_id: str | None = None
    error_message: str | None = None
    error_details: dict | list | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    # The token's name when a request caused the change; None: the source acted by itself.
    actor: str | None = None


@dataclass
class PollOutcome:
    """What one status call taught the poller about one claimed run."""

    run_id: str
    expected: str
    new_status: str | None = None
    message: str | None = None
    details: dict = field(default_factory=dict)
    error_message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    poll_error: str | None = None
    error_kind: str | None = None
    retry_at: datetime | None = None
    # The claim's lease token: the write-back applies only while the run is still held by it.
    lease_token: uuid.UUID | None = None
    # Not asked: the sweep's time ran out first; nothing is written and the lease lapses.
    deferred: bool = False
    # The Workbench accepted the cancel of the run's job in this poll.
    cancel_sent: bool = False
