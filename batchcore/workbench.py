"""The one Workbench API client, and the backoff helper its callers retry with.

The client makes exactly one HTTP attempt per call: whether and when to retry is decided by
the caller (Conductor's task retry for submission, the poller's own backoff for status). Every
failure becomes a :class:`~batchcore.errors.WorkbenchError` whose ``transient`` flag says whether
retrying may help, whose ``kind`` names the failure class, and whose message names the URL and
what to do -- never the token.
"""

from __future__ import annotations

import json
import logging
import math
import random
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.client import RemoteDisconnected
from importlib import metadata
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NameResolutionError, ProtocolError
from urllib3.util.retry import Retry

from batchcore import statuses
from batchcore.errors import WorkbenchError

__all__ = [
    "DEFAULT_POOL_MAXSIZE",
    "RETRY_AFTER_CEILING_SECONDS",
    "JobStatus",
    "SubmittedJob",
    "WorkbenchClient",
    "backoff_delay",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

DEFAULT_POOL_MAXSIZE = 32
# A server's Retry-After is honoured, even above the caller's cap, but never beyond this.
RETRY_AFTER_CEILING_SECONDS = 300.0
# How much of a response body is kept in messages and details.
EXCERPT_CHARS = 200

# Kinds of WorkbenchError raised here.
KIND_CONNECTION = "connection"
KIND_TIMEOUT = "timeout"
KIND_SERVER_ERROR = "server_error"
KIND_RATE_LIMITED = "rate_limited"
KIND_REJECTED = "rejected"
KIND_NOT_FOUND = "not_found"
KIND_MALFORMED = "malformed"
KIND_REDIRECT = "redirect"

_REDACTED = "[redacted]"


def _user_agent() -> str:
    try:
        version = metadata.version("batch-pipeline-runs")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        version = "0"
    return (
        f"batch-pipeline-runs/{version} (workbench-client) python-requests/{requests.__version__}"
    )


USER_AGENT = _user_agent()


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SubmittedJob:
    """The Workbench's answer to a submission."""

    job_id: str
    status: str  # the Workbench status, one of statuses.WORKBENCH_TO_RUN
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

    @property
    def terminal(self) -> bool:
        """True when the job has finished (its run status can never change again)."""
        return statuses.is_terminal(self.run_status)


# --------------------------------------------------------------------------- pure helpers


def backoff_delay(
    attempt: int,
    base: float,
    cap: float,
    retry_after: float | None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry).

    Exponential backoff with full jitter: uniformly random in ``[0, min(cap, base * 2**attempt)]``.
    A server's ``retry_after`` is a floor: the delay is never shorter, even when it exceeds
    ``cap``, but it is honoured only up to :data:`RETRY_AFTER_CEILING_SECONDS`.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    if not (math.isfinite(base) and base >= 0):
        raise ValueError(f"base must be a finite number >= 0, got {base}")
    if not (math.isfinite(cap) and cap >= 0):
        raise ValueError(f"cap must be a finite number >= 0, got {cap}")
    # 2**64 already dwarfs any sensible cap; bounding the exponent avoids float overflow.
    ceiling = min(cap, base * 2.0 ** min(attempt, 64))
    delay = (rng or random).uniform(0.0, ceiling)
    delay = min(max(delay, 0.0), ceiling)  # uniform() may round past its bounds
    if retry_after is not None and not math.isnan(retry_after):
        delay = max(delay, min(max(retry_after, 0.0), RETRY_AFTER_CEILING_SECONDS))
    return delay


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP-date; None if unusable.

    Past dates and negative numbers give 0. The result is not capped here; see
    :func:`backoff_delay` for the ceiling.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:  # pragma: no cover - older Pythons returned None for garbage
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no further information
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def _excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """One line of at most ``limit`` characters, control characters removed."""
    cleaned = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _safe_url(url: str) -> str:
    """``url`` without user-info, query or fragment (none of which belongs in a message)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else parts.path


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it wraps (causes, contexts, urllib3 reasons, args)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 20:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        for nested in (
            getattr(current, "reason", None),
            current.__cause__,
            current.__context__,
            *current.args,
        ):
            if isinstance(nested, BaseException):
                todo.append(nested)
    return seen


def _connection_reason(exc: BaseException) -> str:
    """A short phrase saying why a connection failed, from the wrapped low-level errors."""
    chain = _exception_chain(exc)

    def found(*kinds: type[BaseException]) -> bool:
        return any(isinstance(c, kinds) for c in chain)

    if found(NameResolutionError, socket.gaierror):
        return "its host name could not be resolved (DNS)"
    if found(ConnectionRefusedError):
        return "connection refused"
    if found(requests.exceptions.ProxyError):
        return "the proxy could not be reached"
    if found(ssl.SSLError, requests.exceptions.SSLError):
        return "the TLS handshake failed"
    if found(ConnectionResetError):
        return "connection reset"
    if found(ConnectionAbortedError):
        return "connection aborted"
    if found(RemoteDisconnected, ProtocolError):
        return "the connection closed without an answer"
    for cause in chain:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror[0].lower() + cause.strerror[1:]
    return f"connection failed ({type(exc).__name__})"


# --------------------------------------------------------------------------- client


class _BearerAuth(requests.auth.AuthBase):
    """Sets ``Authorization: Bearer`` on each request (and keeps requests from using .netrc)."""

    def __init__(self, token: str):
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(token=[redacted])"


class WorkbenchClient:
    """Client of the Workbench API: one attempt per call, every failure a WorkbenchError.

    Thread-safe for concurrent calls; ``pool_maxsize`` bounds the kept-alive connections.
    A session passed in is used as it is and left open by :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        session: requests.Session | None = None,
        pool_maxsize: int = DEFAULT_POOL_MAXSIZE,
    ):
        parts = urlsplit(base_url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Workbench base URL must be an http(s) URL with a host: {base_url!r}")
        if parts.username or parts.password:
            # Not echoed: the user-info may be a secret.
            raise ValueError("Workbench base URL must not carry credentials; pass the token")
        if parts.query or parts.fragment:
            raise ValueError(f"Workbench base URL must not have a query or fragment: {base_url!r}")
        if not isinstance(token, str) or not token.strip():
            raise ValueError("Workbench API token must not be empty")
        if token != token.strip() or not token.isprintable():
            # requests would refuse it later with the header value in its message.
            raise ValueError(
                "Workbench API token must not contain whitespace at its ends or control characters"
            )
        for name, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if pool_maxsize < 1:
            raise ValueError(f"pool_maxsize must be >= 1, got {pool_maxsize}")

        self.base_url = base_url.rstrip("/")
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self._auth = _BearerAuth(token)
        self._token = token
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            # No retries at this level: callers decide (Conductor for submit, poller backoff).
            adapter = HTTPAdapter(
                pool_maxsize=pool_maxsize, max_retries=Retry(total=0, read=False, redirect=False)
            )
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self._session = session

    # -- lifecycle

    def close(self) -> None:
        """Closes the pooled connections (of a session this client created)."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> WorkbenchClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"WorkbenchClient(base_url={_safe_url(self.base_url)!r}, "
            f"connect_timeout={self.connect_timeout}, read_timeout={self.read_timeout})"
        )

    # -- API

    def submit_job(
        self,
        run_id: str,
        pipeline: str,
        input_path_prefix: str,
        output_path_prefix: str,
        parameters: Mapping[str, Any] | None,
    ) -> SubmittedJob:
        """Starts a Workbench job for a run; the run id is the idempotency key.

        Submitting again for the same run returns the same job (HTTP 200, ``created`` False).
        """
        if not isinstance(run_id, str) or not run_id:
            raise ValueError("run_id must be a non-empty string")
        body = {
            "pipeline_run_id": run_id,
            "pipeline": pipeline,
            "input_path_prefix": input_path_prefix,
            "output_path_prefix": output_path_prefix,
            "parameters": dict(parameters or {}),
        }
        try:
            payload = json.dumps(body, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"run {run_id}: parameters are not JSON-serializable: {exc}") from None
        response = self._request(
            "POST",
            "/jobs",
            what="the job",
            headers={"Idempotency-Key": run_id, "Content-Type": "application/json"},
            data=payload.encode("utf-8"),
        )
        data = self._json_object(response, "POST", "/jobs")
        job_id = self._job_id(data, response, "POST", "/jobs")
        status = self._workbench_status(data, response, "POST", "/jobs")
        return SubmittedJob(job_id=job_id, status=status, created=response.status_code == 201)

    def get_job(self, job_id: str) -> JobStatus:
        """The current state of a Workbench job."""
        if not isinstance(job_id, str) or not job_id:
            raise ValueError("job_id must be a non-empty string")
        path = f"/jobs/{quote(job_id, safe='')}"
        response = self._request(
            "GET", path, what=f"the status request for job {job_id}", job_id=job_id
        )
        data = self._json_object(response, "GET", path)
        answered_id = self._job_id(data, response, "GET", path)
        if answered_id != job_id:
            raise self._malformed(
                response, "GET", path, f"it describes job {answered_id!r} instead of {job_id!r}"
            )
        workbench_status = self._workbench_status(data, response, "GET", path)
        error_message = data.get("error_message")
        if error_message is not None and not isinstance(error_message, str):
            raise self._malformed(response, "GET", path, "its error_message is not a string")
        return JobStatus(
            job_id=job_id,
            workbench_status=workbench_status,
            run_status=statuses.run_status_for(workbench_status),
            error_message=error_message or None,
            started_at=self._timestamp(data, "started_at", response, "GET", path),
            finished_at=self._timestamp(data, "finished_at", response, "GET", path),
        )

    # -- transport and classification

    def _request(
        self, method: str, path: str, *, what: str, job_id: str | None = None, **kwargs: Any
    ) -> requests.Response:
        url = self.base_url + path
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        headers.update(kwargs.pop("headers", {}))
        started = time.monotonic()
        try:
            response = self._session.request(
                method,
                url,
                headers=headers,
                auth=self._auth,
                timeout=(self.connect_timeout, self.read_timeout),
                allow_redirects=False,
                **kwargs,
            )
        except requests.exceptions.RequestException as exc:
            error = self._transport_error(exc, method, path)
            log.debug("workbench %s %s failed: %s", method, path, error.message)
            raise error from exc
        log.debug(
            "workbench %s %s -> %s in %.3f s",
            method,
            path,
            response.status_code,
            time.monotonic() - started,
        )
        if 200 <= response.status_code < 300:
            return response
        raise self._status_error(response, method, path, what, job_id)

    def _details(self, method: str, path: str, **facts: Any) -> list[dict[str, Any]]:
        fact = {"method": method, "url": _safe_url(self.base_url + path), "path": path}
        fact.update({k: v for k, v in facts.items() if v is not None})
        return [fact]

    def _redact(self, text: str) -> str:
        return text.replace(self._token, _REDACTED) if self._token in text else text

    def _transport_error(
        self, exc: requests.exceptions.RequestException, method: str, path: str
    ) -> WorkbenchError:
        where = f"Workbench API at {_safe_url(self.base_url)}"
        details = self._details(method, path, exception=type(exc).__name__)
        # ConnectTimeout is also a ConnectionError, so timeouts are checked first.
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            message = (
                f"{where} did not answer within {self.connect_timeout} s "
                "(no connection could be opened); check that it is running and reachable"
            )
            return WorkbenchError(message, transient=True, kind=KIND_TIMEOUT, details=details)
        if isinstance(exc, requests.exceptions.Timeout):
            message = f"{where} did not answer within {self.read_timeout} s"
            return WorkbenchError(message, transient=True, kind=KIND_TIMEOUT, details=details)
        if isinstance(exc, requests.exceptions.ConnectionError):
            message = f"{where} unreachable: {_connection_reason(exc)}"
            return WorkbenchError(message, transient=True, kind=KIND_CONNECTION, details=details)
        if isinstance(exc, requests.exceptions.ChunkedEncodingError):
            message = f"{where} unreachable: the connection broke off in the middle of its answer"
            return WorkbenchError(message, transient=True, kind=KIND_CONNECTION, details=details)
        if isinstance(exc, requests.exceptions.ContentDecodingError):
            message = f"{where} sent an answer that could not be decoded ({type(exc).__name__})"
            return WorkbenchError(message, transient=False, kind=KIND_MALFORMED, details=details)
        message = f"{where} unreachable: request failed ({type(exc).__name__})"
        return WorkbenchError(message, transient=True, kind=KIND_CONNECTION, details=details)

    def _body_text(self, response: requests.Response) -> str:
        raw = response.content or b""
        text = raw[: EXCERPT_CHARS * 8].decode(response.encoding or "utf-8", errors="replace")
        return self._redact(text)

    def _body_excerpt(self, response: requests.Response) -> str:
        return _excerpt(self._body_text(response))

    def _body_error_message(self, response: requests.Response) -> str:
        """The error sentence from a JSON error body, or an excerpt of the body."""
        try:
            data = json.loads(response.content or b"")
        except ValueError:
            data = None
        if isinstance(data, dict):
            for key in ("error", "message", "detail"):
                value = data.get(key)
                if isinstance(value, dict):
                    value = value.get("message") or value.get("detail")
                if isinstance(value, str) and value.strip():
                    return _excerpt(self._redact(value))
        return self._body_excerpt(response) or "(empty body)"

    def _status_error(
        self,
        response: requests.Response,
        method: str,
        path: str,
        what: str,
        job_id: str | None,
    ) -> WorkbenchError:
        """The WorkbenchError for a non-2xx answer; ``what`` names the request in messages."""
        status = response.status_code
        where = f"Workbench API at {_safe_url(self.base_url)}"
        excerpt = self._body_excerpt(response)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))

        def details(**extra: Any) -> list[dict[str, Any]]:
            return self._details(
                method, path, status_code=status, body_excerpt=excerpt or None, **extra
            )

        if 300 <= status < 400:
            location = response.headers.get("Location")
            target = (
                _excerpt(self._redact(urljoin(response.url or self.base_url + path, location)))
                if location
                else "(no Location header)"
            )
            message = (
                f"Workbench API at {_safe_url(self.base_url + path)} answered a redirect to "
                f"{target} (HTTP {status}); redirects are not followed so the token is not sent "
                "elsewhere; set WORKBENCH_API_URL to the final address"
            )
            return WorkbenchError(
                message,
                transient=False,
                kind=KIND_REDIRECT,
                status_code=status,
                details=details(location=target),
            )
        if status == 429:
            wait = f"; retry after {retry_after:g} s" if retry_after is not None else ""
            message = f"{where} is rate limiting requests (HTTP 429){wait}"
            return WorkbenchError(
                message,
                transient=True,
                kind=KIND_RATE_LIMITED,
                status_code=status,
                retry_after=retry_after,
                details=details(retry_after=retry_after),
            )
        if 500 <= status < 600:
            message = f"{where} failed with HTTP {status}: {self._body_error_message(response)}"
            return WorkbenchError(
                message,
                transient=True,
                kind=KIND_SERVER_ERROR,
                status_code=status,
                retry_after=retry_after,
                details=details(retry_after=retry_after),
            )
        if status == 404 and job_id is not None:
            message = f"{where} has no job {job_id} (HTTP 404)"
            return WorkbenchError(
                message, transient=False, kind=KIND_NOT_FOUND, status_code=status, details=details()
            )
        if 400 <= status < 500:
            hint = ""
            if status in (401, 403):
                hint = "; check WORKBENCH_API_TOKEN"
            elif status in (404, 405):
                hint = f"; check WORKBENCH_API_URL ({_safe_url(self.base_url)})"
            message = (
                f"Workbench API rejected {what} (HTTP {status}): "
                f"{self._body_error_message(response)}{hint}"
            )
            return WorkbenchError(
                message, transient=False, kind=KIND_REJECTED, status_code=status, details=details()
            )
        message = f"{where} answered with an unexpected HTTP status {status}"
        return WorkbenchError(
            message, transient=False, kind=KIND_MALFORMED, status_code=status, details=details()
        )

    def _malformed(
        self, response: requests.Response, method: str, path: str, problem: str
    ) -> WorkbenchError:
        message = (
            f"Workbench API at {_safe_url(self.base_url)} sent an answer to {method} {path} "
            f"that breaks its contract: {problem}"
        )
        details = self._details(
            method,
            path,
            status_code=response.status_code,
            body_excerpt=self._body_excerpt(response) or None,
        )
        return WorkbenchError(
            message,
            transient=False,
            kind=KIND_MALFORMED,
            status_code=response.status_code,
            details=details,
        )

    def _json_object(self, response: requests.Response, method: str, path: str) -> dict[str, Any]:
        try:
            data = json.loads(response.content or b"")
        except ValueError:
            raise self._malformed(response, method, path, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise self._malformed(response, method, path, "the body is not a JSON object")
        return data

    def _job_id(
        self, data: dict[str, Any], response: requests.Response, method: str, path: str
    ) -> str:
        job_id = data.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            raise self._malformed(response, method, path, "job_id is missing or not a string")
        return job_id

    def _workbench_status(
        self, data: dict[str, Any], response: requests.Response, method: str, path: str
    ) -> str:
        status = data.get("status")
        if not isinstance(status, str):
            raise self._malformed(response, method, path, "status is missing or not a string")
        try:
            statuses.run_status_for(status)
        except KeyError:
            known = ", ".join(statuses.WORKBENCH_TO_RUN)
            raise self._malformed(
                response, method, path, f"status {_excerpt(status, 50)!r} is not one of {known}"
            ) from None
        return status

    def _timestamp(
        self,
        data: dict[str, Any],
        key: str,
        response: requests.Response,
        method: str,
        path: str,
    ) -> datetime | None:
        value = data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self._malformed(response, method, path, f"{key} is not an ISO 8601 string")
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise self._malformed(
                response, method, path, f"{key} {_excerpt(value, 50)!r} is not ISO 8601"
            ) from None
        if when.tzinfo is None:  # no offset given: the contract's timestamps are UTC
            when = when.replace(tzinfo=UTC)
        return when
