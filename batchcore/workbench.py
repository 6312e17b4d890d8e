"""The one Workbench API client: submit a job, read a job's status, cancel a job.

The client makes exactly one HTTP attempt per call: whether and when to retry is decided by
the caller (Conductor's task retry for submission, the poller's own backoff, in
:mod:`batchcore.backoff`, for status and cancel). Every failure becomes a
:class:`~batchcore.errors.WorkbenchError`, classified in :mod:`batchcore.workbench_errors`.

A caller that retries a call (a status or a cancel) retries only a ``transient`` error, at
most its retry limit times, waiting ``backoff.backoff_delay(attempt, base, cap,
error.retry_after)`` before each retry: jittered exponential backoff with the server's
``Retry-After`` as a floor, as ``conductor_workers.polling.fetch_status`` does for status.
Repeating a cancel is harmless, so a cancel whose answer was lost is simply sent again.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import metadata
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import DecodeError, HTTPError, ProtocolError, ReadTimeoutError, SSLError
from urllib3.util.retry import Retry

from batchcore.errors import WorkbenchError
from batchcore.http_errors import safe_url
from batchcore.runs import lifecycle
from batchcore.workbench_errors import KIND_MALFORMED, KIND_TIMEOUT, Answer, Call
from batchcore.workbench_normalise import clean_message, storable_timestamp
from batchcore.workbench_results import CancelResult, JobStatus, SubmittedJob

__all__ = [
    "DEFAULT_POOL_MAXSIZE",
    "MAX_ANSWER_BYTES",
    "CancelResult",
    "JobStatus",
    "SubmittedJob",
    "WorkbenchClient",
]

log = logging.getLogger(__name__)

DEFAULT_POOL_MAXSIZE = 32
# No answer of the contract comes near this; a larger one is refused while it is read.
MAX_ANSWER_BYTES = 8 * 1024 * 1024
# An answer trickled byte by byte never trips the read timeout (it bounds each wait for data,
# not the whole answer), so the whole answer must arrive within this many read timeouts.
ANSWER_TIMEOUT_READ_TIMEOUTS = 3
_CHUNK_BYTES = 64 * 1024


def _user_agent() -> str:
    try:
        version = metadata.version("batch-pipeline-runs")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        version = "0"
    return (
        f"batch-pipeline-runs/{version} (workbench-client) python-requests/{requests.__version__}"
    )


USER_AGENT = _user_agent()


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
    A session passed in is used as it is and left open by :meth:`close`. Every answer is
    normalised here (see :mod:`batchcore.workbench_normalise`); ``clock`` stands in for a
    timestamp that cannot be stored.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        session: requests.Session | None = None,
        pool_maxsize: int = DEFAULT_POOL_MAXSIZE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
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
        self.answer_timeout = self.read_timeout * ANSWER_TIMEOUT_READ_TIMEOUTS
        self._clock = clock
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
            f"WorkbenchClient(base_url={safe_url(self.base_url)!r}, "
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
        answer = self._request(
            "POST",
            "/jobs",
            what="the job",
            headers={"Idempotency-Key": run_id, "Content-Type": "application/json"},
            data=payload.encode("utf-8"),
        )
        data = answer.json_object()
        return SubmittedJob(
            job_id=answer.job_id(data),
            status=answer.workbench_status(data),
            created=answer.response.status_code == 201,
        )

    def get_job(self, job_id: str, timeout: float | None = None) -> JobStatus:
        """The current state of a Workbench job; ``timeout`` (seconds) caps the whole call
        below the client's own timeouts (a caller's deadline)."""
        answer = self._job_request("GET", job_id, "", "the status request", timeout)
        data, workbench_status = self._job_answer(answer, job_id)
        error_message = data.get("error_message")
        if error_message is not None and not isinstance(error_message, str):
            raise answer.malformed("its error_message is not a string")
        notes: dict[str, Any] = {}
        now = self._clock()
        return JobStatus(
            job_id=job_id,
            workbench_status=workbench_status,
            run_status=lifecycle.run_status_for(workbench_status),
            error_message=clean_message(error_message or "", "error_message", notes),
            started_at=storable_timestamp(data.get("started_at"), "started_at", now, notes),
            finished_at=storable_timestamp(data.get("finished_at"), "finished_at", now, notes),
            normalised=notes,
        )

    def cancel_job(self, job_id: str, timeout: float | None = None) -> CancelResult:
        """Asks the Workbench to cancel a job; harmless to repeat. ``timeout`` as in get_job.

        HTTP 202: accepted, the job reaches CANCELLED asynchronously (or ends first; a status
        call tells). HTTP 200: the job had already ended, with the final status answered.
        """
        answer = self._job_request("POST", job_id, "/cancel", "the cancel request", timeout)
        _, workbench_status = self._job_answer(answer, job_id)
        run_status = lifecycle.run_status_for(workbench_status)
        already_ended = answer.response.status_code == 200
        if already_ended and not lifecycle.is_terminal(run_status):
            raise answer.malformed(
                f"it answered 200 (the job has ended) with status {workbench_status}, "
                "which is not a final one"
            )
        return CancelResult(
            job_id=job_id,
            workbench_status=workbench_status,
            run_status=run_status,
            already_ended=already_ended,
        )

    # -- answers about one job

    def _job_request(
        self, method: str, job_id: str, suffix: str, what: str, timeout: float | None
    ) -> Answer:
        if not isinstance(job_id, str) or not job_id:
            raise ValueError("job_id must be a non-empty string")
        path = f"/jobs/{quote(job_id, safe='')}{suffix}"
        return self._request(
            method, path, what=f"{what} for job {job_id}", job_id=job_id, cap=timeout
        )

    @staticmethod
    def _job_answer(answer: Answer, job_id: str) -> tuple[dict[str, Any], str]:
        """The answer's JSON object and Workbench status, once it is known to be about job_id."""
        data = answer.json_object()
        answered_id = answer.job_id(data)
        if answered_id != job_id:
            raise answer.malformed(f"it describes job {answered_id!r} instead of {job_id!r}")
        return data, answer.workbench_status(data)

    # -- transport

    def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        job_id: str | None = None,
        cap: float | None = None,
        **kwargs: Any,
    ) -> Answer:
        """One attempt, within ``cap`` seconds if given; the 2xx answer, or the WorkbenchError
        saying what went wrong."""
        call = Call(self.base_url, self._token, method, path)
        connect, read, whole = self.connect_timeout, self.read_timeout, self.answer_timeout
        if cap is not None:
            cap = max(cap, 0.001)
            connect, read, whole = min(connect, cap), min(read, cap), min(whole, cap)
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        headers.update(kwargs.pop("headers", {}))
        started = time.monotonic()
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                headers=headers,
                auth=self._auth,
                timeout=(connect, read),
                allow_redirects=False,
                stream=True,
                **kwargs,
            )
            body = self._read_body(call, response, started, whole)
        except requests.exceptions.RequestException as exc:
            error = call.transport_error(exc, connect, read)
            log.debug("workbench %s %s failed: %s", method, path, error.message)
            raise error from exc
        log.debug(
            "workbench %s %s -> %s in %.3f s",
            method,
            path,
            response.status_code,
            time.monotonic() - started,
        )
        answer = Answer(call, response, body)
        if 200 <= response.status_code < 300:
            return answer
        raise answer.status_error(what, job_id)

    def _read_body(
        self, call: Call, response: requests.Response, started: float, whole: float
    ) -> bytes:
        """The whole body, refused past MAX_ANSWER_BYTES or once ``whole`` seconds passed."""
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := _read_some(response):
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    problem = f"its answer is over {MAX_ANSWER_BYTES} bytes"
                    raise Answer(call, response).malformed(problem, KIND_MALFORMED)
                if time.monotonic() - started > whole:
                    raise WorkbenchError(
                        f"{call.where} did not finish its answer within {whole:g} s",
                        transient=True,
                        kind=KIND_TIMEOUT,
                        status_code=response.status_code,
                        details=call.details(status_code=response.status_code),
                    )
                chunks.append(chunk)
        finally:
            response.close()
        return b"".join(chunks)


def _read_some(response: requests.Response) -> bytes:
    """What has arrived of the body (at most one read), as requests' own errors would say."""
    try:
        return response.raw.read1(_CHUNK_BYTES, decode_content=True) or b""
    except ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except ReadTimeoutError as exc:
        raise requests.exceptions.ReadTimeout(exc) from exc
    except SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc
    except (HTTPError, OSError) as exc:
        raise requests.exceptions.ConnectionError(exc) from exc
