"""The few Conductor REST calls the service makes itself (no SDK import: it sets spawn)."""

from __future__ import annotations

from urllib.parse import quote

import requests

from .errors import ConductorUnavailable


class ConductorClient:
    """Start workflows, find them by correlation id, complete WAIT tasks."""

    def __init__(self, base_url: str, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def __repr__(self) -> str:
        return f"ConductorClient({self.base_url!r})"

    def _call(self, method: str, path: str, what: str, **kwargs) -> requests.Response:
        url = f"{self.base_url}{path}"
        try:
            resp = self._session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise ConductorUnavailable(
                f"Conductor at {self.base_url} did not answer within {self.timeout:g} s ({what})",
                details=[{"conductor_url": self.base_url, "exception": type(exc).__name__}],
            ) from exc
        except requests.RequestException as exc:
            reason = "connection refused" if "refused" in str(exc).lower() else type(exc).__name__
            raise ConductorUnavailable(
                f"Conductor at {self.base_url} unreachable: {reason} ({what})",
                details=[
                    {
                        "conductor_url": self.base_url,
                        "exception": type(exc).__name__,
                        "error": str(exc)[:500],
                    }
                ],
            ) from exc
        if resp.status_code >= 400:
            raise ConductorUnavailable(
                f"Conductor at {self.base_url} refused to {what} (HTTP {resp.status_code}): "
                f"{_reason(resp)}",
                details=[
                    {
                        "conductor_url": self.base_url,
                        "status_code": resp.status_code,
                        "response": resp.text[:2000],
                    }
                ],
            )
        return resp

    def start_workflow(self, name: str, version: int, correlation_id: str, inputs: dict) -> str:
        """Start a workflow; return its id."""
        resp = self._call(
            "POST",
            "/workflow",
            f"start workflow {name}",
            json={
                "name": name,
                "version": version,
                "correlationId": correlation_id,
                "input": inputs,
            },
        )
        return resp.text.strip().strip('"')

    def correlated(self, name: str, correlation_id: str, include_closed: bool = False) -> list:
        """Workflows of `name` with this correlation id (a consistent read, not the index)."""
        resp = self._call(
            "GET",
            f"/workflow/{quote(name)}/correlated/{quote(correlation_id, safe='')}",
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

    def complete_task(self, workflow_id: str, task_ref: str, status: str, output: dict) -> None:
        """Complete a task (such as a WAIT) from outside by its reference name."""
        self._call(
            "POST",
            f"/tasks/{quote(workflow_id, safe='')}/{quote(task_ref, safe='')}/{status}",
            f"complete task {task_ref}",
            json=output,
        )

    def terminate(self, workflow_id: str, reason: str) -> None:
        """Terminate a running workflow."""
        self._call(
            "DELETE",
            f"/workflow/{quote(workflow_id, safe='')}",
            "terminate a workflow",
            params={"reason": reason},
        )

    def healthy(self) -> bool:
        """True when the server's health endpoint answers."""
        try:
            root = self.base_url.removesuffix("/api")
            return self._session.get(f"{root}/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def close(self) -> None:
        self._session.close()


def _reason(resp: requests.Response) -> str:
    try:
        body = resp.json()
        return str(body.get("message") or body)[:500]
    except ValueError:
        return resp.text[:500] or resp.reason
