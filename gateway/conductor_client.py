"""The gateway's calls to Conductor's REST API, made with requests (never the SDK).

The conductor-python SDK switches multiprocessing to `spawn` when imported, which
gunicorn workers must not inherit; the gateway needs only three calls anyway.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import quote

import requests

from batchcore.errors import ConductorUnavailable

log = logging.getLogger(__name__)

# Conductor's answers are echoed into error_details; keep a stored run row small.
MAX_RESPONSE_CHARS = 2000


class WorkflowNotStarted(ConductorUnavailable):
    """Conductor did not start the workflow; the fields say why, for the run's error_details."""

    def __init__(
        self,
        conductor_url: str,
        cause: str,
        *,
        status_code: int | None = None,
        response: str | None = None,
        exception: str | None = None,
        maybe_started: bool = False,
    ):
        super().__init__(f"Conductor at {conductor_url} {cause}")
        self.conductor_url = conductor_url
        self.cause = cause
        self.status_code = status_code
        self.response = response
        self.exception = exception
        # A timeout after the request was sent: Conductor may have started it anyway.
        self.maybe_started = maybe_started

    def error_details(self) -> dict:
        """What the run row keeps about the failure (only the keys that apply)."""
        details: dict = {"conductor_url": self.conductor_url}
        if self.status_code is not None:
            details["status_code"] = self.status_code
        if self.response is not None:
            details["response"] = self.response
        if self.exception is not None:
            details["exception"] = self.exception
        return details


class ConductorClient:
    """Start a workflow, terminate workflows by correlation id, check the server's health."""

    def __init__(self, base_url: str, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        # requests.Session is not documented as thread-safe; gthread serves many threads.
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"ConductorClient({self.base_url!r})"

    @property
    def server_root(self) -> str:
        """The server's root URL (CONDUCTOR_SERVER_URL without its /api suffix)."""
        return self.base_url.removesuffix("/api")

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def start_workflow(self, name: str, version: int, correlation_id: str, inputs: dict) -> str:
        """Start one workflow and return its id; WorkflowNotStarted otherwise.

        Never retried here: a POST that reached Conductor may have started the workflow.
        """
        body = {"name": name, "version": version, "correlationId": correlation_id, "input": inputs}
        try:
            resp = self._session().post(
                f"{self.base_url}/workflow", json=body, timeout=self.timeout
            )
        except requests.ConnectTimeout as exc:
            raise self._failed(
                f"unreachable: no connection within {self.timeout:g} s", exc
            ) from exc
        except requests.Timeout as exc:
            raise self._failed(
                f"did not answer within {self.timeout:g} s", exc, maybe_started=True
            ) from exc
        except requests.ConnectionError as exc:
            raise self._failed(f"unreachable: {_connection_reason(exc)}", exc) from exc
        except requests.RequestException as exc:
            raise self._failed(f"could not be called: {type(exc).__name__}", exc) from exc
        text = resp.text
        if resp.status_code >= 400:
            raise WorkflowNotStarted(
                self.base_url,
                f"refused to start workflow {name} v{version}: HTTP {resp.status_code}"
                f"{_reason(resp)}",
                status_code=resp.status_code,
                response=text[:MAX_RESPONSE_CHARS],
            )
        # The answer is the bare workflow id as text (some versions quote it as JSON).
        workflow_id = text.strip().strip('"')
        if not workflow_id or len(workflow_id) > 255 or any(c.isspace() for c in workflow_id):
            raise WorkflowNotStarted(
                self.base_url,
                f"answered HTTP {resp.status_code} without a workflow id",
                status_code=resp.status_code,
                response=text[:MAX_RESPONSE_CHARS],
                maybe_started=True,
            )
        return workflow_id

    def terminate_correlated(self, name: str, correlation_id: str, reason: str) -> list[str]:
        """Terminate running workflows of `name` with this correlation id; return their ids.

        Best effort: used after a start whose outcome is unknown, so that a workflow the
        gateway gave up on cannot go on to start a Workbench job for a FAILED run.
        """
        url = f"{self.base_url}/workflow/{quote(name, safe='')}/correlated/"
        url += quote(correlation_id, safe="")
        session = self._session()
        resp = session.get(
            url,
            params={"includeClosed": "false", "includeTasks": "false"},
            timeout=self.timeout,
        )
        resp.raise_for_status()
        terminated = []
        for workflow in resp.json():
            workflow_id = workflow.get("workflowId")
            if not workflow_id:
                continue
            session.delete(
                f"{self.base_url}/workflow/{quote(workflow_id, safe='')}",
                params={"reason": reason},
                timeout=self.timeout,
            ).raise_for_status()
            terminated.append(workflow_id)
        return terminated

    def check_health(self, timeout: float = 2.0) -> None:
        """Raise ConductorUnavailable unless GET <server root>/health answers healthy."""
        url = f"{self.server_root}/health"
        try:
            resp = self._session().get(url, timeout=timeout)
        except requests.RequestException as exc:
            raise ConductorUnavailable(
                f"Conductor at {self.server_root} is unreachable: {type(exc).__name__}"
            ) from exc
        if resp.status_code != 200:
            raise ConductorUnavailable(
                f"Conductor at {self.server_root} answered HTTP {resp.status_code} on /health"
            )
        try:
            healthy = resp.json().get("healthy", True)
        except (ValueError, AttributeError):
            healthy = True  # a 200 without the usual JSON body still means it is up
        if healthy is False:
            raise ConductorUnavailable(f"Conductor at {self.server_root} reports itself unhealthy")

    def _failed(
        self, cause: str, exc: BaseException, *, maybe_started: bool = False
    ) -> WorkflowNotStarted:
        return WorkflowNotStarted(
            self.base_url,
            cause,
            exception=f"{type(exc).__name__}: {str(exc)[:500]}",
            maybe_started=maybe_started,
        )


def _connection_reason(exc: requests.ConnectionError) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text:
        return "host name not found"
    if "reset" in text:
        return "connection reset"
    return f"connection failed ({type(exc).__name__})"


def _reason(resp: requests.Response) -> str:
    """Conductor's own one-line message, when its error body has one."""
    try:
        message = resp.json().get("message")
    except (ValueError, AttributeError):
        return ""
    return f" ({str(message)[:300]})" if message else ""
