"""What each Workbench failure means: a WorkbenchError saying what failed and the fix.

``transient`` says whether retrying may help, ``kind`` names the failure class; the decisions
for transport failures, non-2xx statuses and answers that break the contract are all here.
The message reaches API clients (a run's error, its poll error, its workflow's task reason), so
it names no address: the URL, redacted, is in the details, which reach only the logs and the
audit trail. The token is never in either.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from batchcore.backoff import parse_retry_after
from batchcore.errors import WorkbenchError
from batchcore.http_errors import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    UNDECODABLE,
    URL_IN_TEXT,
    excerpt,
    safe_url,
    scrub_urls,
    transport_failure,
)
from batchcore.runs import lifecycle
from batchcore.workbench_normalise import job_id_problem

__all__ = [
    "KIND_CONNECTION",
    "KIND_MALFORMED",
    "KIND_NOT_FOUND",
    "KIND_RATE_LIMITED",
    "KIND_REDIRECT",
    "KIND_REJECTED",
    "KIND_SERVER_ERROR",
    "KIND_TIMEOUT",
    "KIND_UNAUTHORIZED",
    "KIND_UNKNOWN_STATUS",
    "Answer",
    "Call",
]

# Kinds of WorkbenchError.
KIND_CONNECTION = "connection"
KIND_TIMEOUT = "timeout"
KIND_SERVER_ERROR = "server_error"
KIND_RATE_LIMITED = "rate_limited"
KIND_REJECTED = "rejected"
KIND_NOT_FOUND = "not_found"
KIND_MALFORMED = "malformed"
KIND_REDIRECT = "redirect"
# Permanent kinds that retrying cannot fix, each named so the poller can give up on them:
KIND_UNAUTHORIZED = "unauthorized"  # 401/403: the token was refused (rotated, revoked)
KIND_UNKNOWN_STATUS = "unknown_status"  # a status the contract lacks (CANCELLING, …)

# How much of a response body is kept in messages and details.
EXCERPT_CHARS = 200

_REDACTED = "[redacted]"
# Stands for the Workbench's own address in a message (an error page that names its URL).
_OWN_ADDRESS = "[the Workbench API]"


@dataclass(frozen=True)
class Call:
    """One request to the Workbench API, as errors name it; the token is here only to redact it."""

    base_url: str
    token: str = field(repr=False)
    method: str
    path: str

    # The subject of every message: no address, which clients must not see.
    where = "The Workbench API"

    def details(self, **facts: Any) -> list[dict[str, Any]]:
        """The error's details: the call, then each fact that is known."""
        fact = {
            "method": self.method,
            "url": safe_url(self.base_url + self.path),
            "path": self.path,
        }
        fact.update({k: v for k, v in facts.items() if v is not None})
        return [fact]

    def redact(self, text: str) -> str:
        """``text`` without the token, and each URL in it without user-info or query."""
        text = text.replace(self.token, _REDACTED) if self.token in text else text
        return scrub_urls(text)

    def for_message(self, text: str) -> str:
        """``text`` redacted, the Workbench's own URLs in it replaced by a name."""
        own = _origin(self.base_url)

        def hide(match: re.Match[str]) -> str:
            return _OWN_ADDRESS if _origin(match.group(0)) == own else match.group(0)

        return URL_IN_TEXT.sub(hide, self.redact(text))

    def transport_error(
        self,
        exc: requests.exceptions.RequestException,
        connect_timeout: float,
        read_timeout: float,
    ) -> WorkbenchError:
        """The WorkbenchError for a call that got no usable answer."""
        failure, reason = transport_failure(exc)
        transient, kind = True, KIND_CONNECTION
        if failure == CONNECT_TIMEOUT:
            kind = KIND_TIMEOUT
            message = (
                f"{self.where} did not answer within {connect_timeout} s ({reason}); "
                "check that it is running and reachable"
            )
        elif failure == READ_TIMEOUT:
            kind = KIND_TIMEOUT
            message = f"{self.where} did not answer within {read_timeout} s"
        elif failure == UNDECODABLE:
            transient, kind = False, KIND_MALFORMED
            message = f"{self.where} sent an answer that {reason}"
        else:
            message = f"{self.where} is unreachable: {reason}"
        details = self.details(exception=type(exc).__name__)
        return WorkbenchError(message, transient=transient, kind=kind, details=details)


@dataclass(frozen=True)
class Answer:
    """The Workbench's answer to one call, read against the contract."""

    call: Call
    response: requests.Response
    body: bytes = b""

    # -- failures

    def status_error(self, what: str, job_id: str | None) -> WorkbenchError:
        """The WorkbenchError for a non-2xx answer; ``what`` names the request in messages."""
        status = self.response.status_code
        where = self.call.where
        retry_after = parse_retry_after(self.response.headers.get("Retry-After"))

        def error(message: str, transient: bool, kind: str, **facts: Any) -> WorkbenchError:
            return WorkbenchError(
                message,
                transient=transient,
                kind=kind,
                status_code=status,
                retry_after=facts.get("retry_after"),
                details=self.details(**facts),
            )

        if 300 <= status < 400:
            target = self._redirect_target()
            message = (
                f"{where} answered {self.call.method} {self.call.path} with a redirect "
                f"(HTTP {status}); redirects are not followed so the token is not sent "
                "elsewhere; set WORKBENCH_API_URL to the final address"
            )
            return error(message, False, KIND_REDIRECT, location=target)
        if status == 429:
            wait = f"; retry after {retry_after:g} s" if retry_after is not None else ""
            message = f"{where} is rate limiting requests (HTTP 429){wait}"
            return error(message, True, KIND_RATE_LIMITED, retry_after=retry_after)
        if 500 <= status < 600:
            message = f"{where} failed with HTTP {status}: {self._error_sentence()}"
            return error(message, True, KIND_SERVER_ERROR, retry_after=retry_after)
        if status == 404 and job_id is not None:
            return error(f"{where} has no job {job_id} (HTTP 404)", False, KIND_NOT_FOUND)
        if 400 <= status < 500:
            hint = ""
            if status in (401, 403):
                hint = "; check WORKBENCH_API_TOKEN"
            elif status in (404, 405):
                hint = "; check WORKBENCH_API_URL"
            message = f"{where} rejected {what} (HTTP {status}): {self._error_sentence()}{hint}"
            kind = KIND_UNAUTHORIZED if status in (401, 403) else KIND_REJECTED
            return error(message, False, kind)
        message = f"{where} answered with an unexpected HTTP status {status}"
        return error(message, False, KIND_MALFORMED)

    def malformed(self, problem: str, kind: str = KIND_MALFORMED) -> WorkbenchError:
        """The WorkbenchError for a 2xx answer that breaks the contract."""
        message = (
            f"{self.call.where} sent an answer to {self.call.method} {self.call.path} "
            f"that breaks its contract: {problem}"
        )
        return WorkbenchError(
            message,
            transient=False,
            kind=kind,
            status_code=self.response.status_code,
            details=self.details(),
        )

    def details(self, **facts: Any) -> list[dict[str, Any]]:
        return self.call.details(
            status_code=self.response.status_code, body_excerpt=self._excerpt() or None, **facts
        )

    def _excerpt(self) -> str:
        return excerpt(self.call.redact(self._text()), EXCERPT_CHARS)

    def _text(self) -> str:
        """The start of the body as text, enough for an excerpt."""
        raw = self.body[: EXCERPT_CHARS * 8]
        return raw.decode(self.response.encoding or "utf-8", errors="replace")

    def _error_sentence(self) -> str:
        """The error sentence from a JSON error body, or an excerpt of the body."""
        try:
            data = json.loads(self.body)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict):
            for key in ("error", "message", "detail"):
                value = data.get(key)
                if isinstance(value, dict):
                    value = value.get("message") or value.get("detail")
                if isinstance(value, str) and value.strip():
                    return excerpt(self.call.for_message(value), EXCERPT_CHARS)
        return excerpt(self.call.for_message(self._text()), EXCERPT_CHARS) or "(empty body)"

    def _redirect_target(self) -> str:
        location = self.response.headers.get("Location")
        if not location:
            return "(no Location header)"
        here = self.response.url or self.call.base_url + self.call.path
        return excerpt(self.call.redact(urljoin(here, location)), EXCERPT_CHARS)

    # -- the contract's fields

    def json_object(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body)
        except (ValueError, RecursionError):  # RecursionError: nested too deep to be an answer
            content_type = excerpt(self.response.headers.get("Content-Type") or "", 50)
            said = f" (Content-Type {content_type})" if content_type else ""
            raise self.malformed(f"the body is not JSON{said}") from None
        if not isinstance(data, dict):
            raise self.malformed("the body is not a JSON object")
        return data

    def job_id(self, data: dict[str, Any]) -> str:
        job_id = data.get("job_id")
        problem = job_id_problem(job_id)
        if problem is not None:
            raise self.malformed(problem)
        return job_id

    def workbench_status(self, data: dict[str, Any]) -> str:
        status = data.get("status")
        if not isinstance(status, str):
            raise self.malformed("status is missing or not a string")
        if status not in lifecycle.WORKBENCH_TO_RUN:
            known = ", ".join(lifecycle.WORKBENCH_TO_RUN)
            raise self.malformed(
                f"status {excerpt(status, 50)!r} is not one of {known}", KIND_UNKNOWN_STATUS
            )
        return status


# Facts of an error's details that name where the Workbench is: for the log, never for clients.
ADDRESS_FACTS = frozenset({"url", "location"})


def public_details(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The error's details as a client may see them (in a run's history): no address."""
    return [{k: v for k, v in fact.items() if k not in ADDRESS_FACTS} for fact in details]


def _origin(url: str) -> tuple[str, str] | None:
    """(scheme, host:port) of ``url``, the default port filled in; None when it has no host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    port = port or {"http": 80, "https": 443}.get(scheme)
    return scheme, f"{parts.hostname.lower()}:{port}"
