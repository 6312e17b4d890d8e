"""Domain exceptions, translated to HTTP or Conductor outcomes once at each edge."""

from __future__ import annotations


class DomainError(Exception):
    """Base of the service's own errors; `code` is the stable machine-readable name."""

    code = "error"

    def __init__(self, message: str, details: list | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []

    def __init_subclass__(cls, code: str | None = None, **kwargs: object):
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code


class ValidationFailed(DomainError, code="validation_failed"):
    """Input broke a rule; `details` holds one {field, rule, message} per problem."""


class NotFound(DomainError, code="not_found"):
    """The thing asked for does not exist."""


class Conflict(DomainError, code="conflict"):
    """The request contradicts stored state (an idempotency key reused with another body)."""


class RunTerminal(Conflict, code="run_terminal"):
    """The run has ended: there is nothing left to cancel."""


class RunNotTerminal(Conflict, code="run_not_terminal"):
    """The run is still active: it cannot be re-run yet."""


class InvalidTransition(DomainError, code="invalid_transition"):
    """A status change that the run's lifecycle forbids."""


class DatabaseUnavailable(DomainError, code="database_unavailable"):
    """PostgreSQL cannot be reached."""


class ConductorUnavailable(DomainError, code="conductor_unavailable"):
    """The Conductor server cannot be reached or refused the request."""


class WorkbenchError(DomainError, code="workbench_error"):
    """A Workbench API call failed; `transient` says whether retrying may help."""

    def __init__(
        self,
        message: str,
        details: list | None = None,
        *,
        transient: bool,
        kind: str,
        status_code: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, details)
        self.transient = transient
        self.kind = kind
        self.status_code = status_code
        self.retry_after = retry_after
