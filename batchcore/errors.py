"""Domain exceptions, translated to HTTP or Conductor outcomes once at each edge."""

from __future__ import annotations


class DomainError(Exception):
    """Base of the service's own errors; `code` is the stable machine-readable name."""

    code = "error"

    def __init__(self, message: str, details: list | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []


class ValidationFailed(DomainError):
    """Input broke a rule; `details` holds one {field, rule, message} per problem."""

    code = "validation_failed"


class NotFound(DomainError):
    """The thing asked for does not exist."""

    code = "not_found"


class Conflict(DomainError):
    """The request contradicts stored state (an idempotency key reused with another body)."""

    code = "conflict"


class InvalidTransition(DomainError):
    """A status change that the run's lifecycle forbids."""

    code = "invalid_transition"


class DatabaseUnavailable(DomainError):
    """PostgreSQL cannot be reached."""

    code = "database_unavailable"


class ConductorUnavailable(DomainError):
    """The Conductor server cannot be reached or refused the request."""

    code = "conductor_unavailable"


class WorkbenchError(DomainError):
    """A Workbench API call failed; `transient` says whether retrying may help."""

    code = "workbench_error"

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        kind: str,
        status_code: int | None = None,
        retry_after: float | None = None,
        details: list | None = None,
    ):
        super().__init__(message, details)
        self.transient = transient
        self.kind = kind
        self.status_code = status_code
        self.retry_after = retry_after
