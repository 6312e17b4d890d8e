"""The Conductor REST calls the gateway and the workers make, with requests (never the SDK).

The conductor-python SDK switches multiprocessing to `spawn` when imported, which
gunicorn workers must not inherit; the few calls needed here do not need it anyway.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from urllib.parse import quote

import requests

from .errors import ConductorUnavailable
from .http_errors import CONNECT_TIMEOUT, READ_TIMEOUT, UNREACHABLE, transport_failure
from .kept_alive import KeptAliveConnections, TransportError, ca_bundle

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
    """Start, find, read and terminate workflows, complete tasks, check the server's health.

    Every failure is a ConductorUnavailable (WorkflowNotStarted for start_workflow).
    """

    def __init__(self, base_url: str, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        # requests.Session is not documented as thread-safe, and both gunicorn's gthread
        # workers and the poller's thread pool call from many threads: one per thread.
        self._local = threading.local()
        self._sessions: weakref.WeakSet[requests.Session] = weakref.WeakSet()
        self._sessions_lock = threading.Lock()
        # The gateway's one call per accepted POST skips requests (see kept_alive), unless a
        # proxy is configured for this server: then requests, which speaks to proxies.
        proxied = bool(requests.utils.get_environ_proxies(self.base_url))
        self._starts = None if proxied else KeptAliveConnections(self.base_url, timeout)

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
            # requests reads the proxy variables from the environment on every request while
            # trust_env is on (a third of a workflow start's CPU in the gateway's profile):
            # they are read once here, for this server, with the CA bundle they may name.
            session.proxies = requests.utils.get_environ_proxies(self.base_url)
            session.verify = ca_bundle() or True
            session.trust_env = False
            with self._sessions_lock:
                self._sessions.add(session)
        return session

    def start_workflow(self, name: str, version: int, correlation_id: str, inputs: dict) -> str:
        """Start one workflow and return its id; WorkflowNotStarted otherwise.

        Never retried here: a POST that reached Conductor may have started the workflow.
        """
        body = {"name": name, "version": version, "correlationId": correlation_id, "input": inputs}
        try:
            if self._starts is not None:
                status, text = self._starts.post_json("/workflow", json.dumps(body).encode())
            else:
                resp = self._session().post(
                    f"{self.base_url}/workflow", json=body, timeout=self.timeout
                )
                status, text = resp.status_code, resp.text
        except TransportError as exc:
            raise WorkflowNotStarted(
                self.base_url,
                self._cause(exc.failure, exc.reason),
                exception=_exception_text(exc.cause),
                maybe_started=exc.failure == READ_TIMEOUT,
            ) from exc
        except requests.RequestException as exc:
            cause, sent = self._transport_cause(exc)
            raise WorkflowNotStarted(
                self.base_url, cause, exception=_exception_text(exc), maybe_started=sent
            ) from exc
        if status >= 400:
            raise WorkflowNotStarted(
                self.base_url,
                f"refused to start workflow {name} v{version}: HTTP {status}{_reason(text)}",
                status_code=status,
                response=text[:MAX_RESPONSE_CHARS],
            )
        # The answer is the bare workflow id as text (some versions quote it as JSON).
        workflow_id = text.strip().strip('"')
        if not workflow_id or len(workflow_id) > 255 or any(c.isspace() for c in workflow_id):
            raise WorkflowNotStarted(
                self.base_url,
                f"answered HTTP {status} without a workflow id",
                status_code=status,
                response=text[:MAX_RESPONSE_CHARS],
                maybe_started=True,
            )
        return workflow_id

    def correlated(self, name: str, correlation_id: str, include_closed: bool = False) -> list:
        """Workflows of `name` with this correlation id (a consistent read, not the index)."""
        resp = self._call(
            "GET",
            f"/workflow/{quote(name, safe='')}/correlated/{quote(correlation_id, safe='')}",
            f"find {name} workflows",
            params={"includeClosed": str(include_closed).lower(), "includeTasks": "false"},
        )
        return resp.json()

    def get_workflow(self, workflow_id: str, include_tasks: bool = True) -> dict:
        """One workflow execution."""
        return self._call(
            "GET",
            f"/workflow/{quote(workflow_id, safe='')}",
            "read a workflow",
            params={"includeTasks": str(include_tasks).lower()},
        ).json()

    def complete_task(self, workflow_id: str, task_ref: str, status: str, output: dict) -> str:
        """Complete a task (such as a WAIT) from outside by its reference name; return its id,
        or "" when the workflow has no such task pending (Conductor then answers 200, empty)."""
        return self._call(
            "POST",
            f"/tasks/{quote(workflow_id, safe='')}/{quote(task_ref, safe='')}/{status}",
            f"complete task {task_ref}",
            json=output,
        ).text.strip()

    def decide(self, workflow_id: str) -> None:
        """Have Conductor evaluate the workflow once now: it enforces task timeouts only in such
        a pass, and a workflow whose decider message was lost gets none otherwise."""
        self._call("PUT", f"/workflow/decide/{quote(workflow_id, safe='')}", "decide a workflow")

    def terminate(self, workflow_id: str, reason: str) -> None:
        """Terminate a running workflow."""
        self._call(
            "DELETE",
            f"/workflow/{quote(workflow_id, safe='')}",
            "terminate a workflow",
            params={"reason": reason},
        )

    def terminate_correlated(self, name: str, correlation_id: str, reason: str) -> list[str]:
        """Terminate running workflows of `name` with this correlation id; return their ids.

        Best effort: used after a start whose outcome is unknown, so that a workflow the
        gateway gave up on cannot go on to start a Workbench job for a FAILED run.
        """
        terminated = []
        for workflow in self.correlated(name, correlation_id):
            workflow_id = workflow.get("workflowId")
            if not workflow_id:
                continue
            self.terminate(workflow_id, reason)
            terminated.append(workflow_id)
        return terminated

    def check_health(self, timeout: float = 2.0) -> None:
        """Raise ConductorUnavailable unless GET <server root>/health answers healthy."""
        url = f"{self.server_root}/health"
        try:
            resp = self._session().get(url, timeout=timeout)
        except requests.RequestException as exc:
            failure, reason = transport_failure(exc)
            cause = self._cause(failure, reason, timeout)
            raise ConductorUnavailable(
                f"Conductor at {self.server_root} {cause} (health check)"
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

    def healthy(self, timeout: float = 2.0) -> bool:
        """True when the server's health endpoint answers healthy (see check_health)."""
        try:
            self.check_health(timeout)
        except ConductorUnavailable:
            return False
        return True

    def close(self) -> None:
        """Close the sessions of every thread that used this client."""
        with self._sessions_lock:
            sessions = list(self._sessions)
            self._sessions.clear()
        for session in sessions:
            session.close()
        self._local = threading.local()
        if self._starts is not None:
            self._starts.close()

    def _call(self, method: str, path: str, what: str, **kwargs) -> requests.Response:
        """One request; ConductorUnavailable naming the server and `what` unless it is < 400."""
        url = f"{self.base_url}{path}"
        try:
            resp = self._session().request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            cause, _ = self._transport_cause(exc)
            raise ConductorUnavailable(
                f"Conductor at {self.base_url} {cause} ({what})",
                details=[{"conductor_url": self.base_url, "exception": _exception_text(exc)}],
            ) from exc
        if resp.status_code >= 400:
            raise ConductorUnavailable(
                f"Conductor at {self.base_url} refused to {what}: HTTP {resp.status_code}"
                f"{_reason(resp.text) or _text(resp.text)}",
                details=[
                    {
                        "conductor_url": self.base_url,
                        "status_code": resp.status_code,
                        "response": resp.text[:MAX_RESPONSE_CHARS],
                    }
                ],
            )
        return resp

    def _transport_cause(self, exc: requests.RequestException) -> tuple[str, bool]:
        """Why a call got no answer, and whether Conductor may have acted on it anyway."""
        failure, reason = transport_failure(exc)
        if failure not in (CONNECT_TIMEOUT, READ_TIMEOUT, UNREACHABLE):
            return f"could not be called: {type(exc).__name__}", False
        return self._cause(failure, reason), failure == READ_TIMEOUT

    def _cause(self, failure: str, reason: str, timeout: float | None = None) -> str:
        """The message's words for a class of transport failure."""
        timeout = self.timeout if timeout is None else timeout
        if failure == CONNECT_TIMEOUT:
            return f"unreachable: no connection within {timeout:g} s"
        if failure == READ_TIMEOUT:
            return f"did not answer within {timeout:g} s"
        if failure == UNREACHABLE:
            return f"unreachable: {reason}"
        return f"could not be called: {reason}"


def _exception_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:500]}"


def _reason(text: str) -> str:
    """Conductor's own one-line message, when its error body has one."""
    try:
        message = json.loads(text).get("message")
    except (ValueError, AttributeError):
        return ""
    return f" ({str(message)[:300]})" if message else ""


def _text(body: str) -> str:
    """The start of a body without a message field, for errors that are only logged."""
    text = " ".join(body.split())[:300]
    return f" ({text})" if text else ""


def is_not_found(exc: ConductorUnavailable) -> bool:
    """True when Conductor answered 404: the workflow or task does not exist."""
    return any(isinstance(d, dict) and d.get("status_code") == 404 for d in exc.details)
