"""In-memory Conductor and Workbench clients for unit tests of the poller and reconciler."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

from batchcore.errors import ConductorUnavailable, WorkbenchError
from batchcore.runs.lifecycle import run_status_for
from batchcore.workbench import JobStatus
from batchcore.workbench_results import CancelResult


def not_found(what: str) -> ConductorUnavailable:
    """The error ConductorClient raises for a 404."""
    return ConductorUnavailable(f"{what}: HTTP 404", details=[{"status_code": 404}])


class FakeConductor:
    """Workflows in a dict; WAIT tasks by reference; failures armed per method."""

    def __init__(self):
        self.workflows: dict[str, dict] = {}
        self.started: list[tuple] = []
        self.completed: list[tuple] = []
        self.complete_failures: list[Exception] = []
        self.decided: list[str] = []
        self.overwritten_completions = 0
        self.on_decide: Callable[[dict], None] | None = None
        self.unreachable = False
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, name: str, correlation_id: str, status: str = "RUNNING", **extra) -> str:
        """A workflow as if started earlier; returns its id."""
        with self._lock:
            workflow_id = f"wf-{next(self._ids)}"
            self.workflows[workflow_id] = {
                "workflowId": workflow_id,
                "workflowName": name,
                "correlationId": correlation_id,
                "status": status,
                "startTime": len(self.workflows) + 1,
                # Conductor's clock (epoch ms): a workflow added now has just moved.
                "updateTime": int(time.time() * 1000),
                "tasks": [],
                "waiting": {"await_completion"},
                **extra,
            }
        return workflow_id

    def _check(self) -> None:
        if self.unreachable:
            raise ConductorUnavailable("Conductor at http://conductor.test/api unreachable")

    def start_workflow(self, name, version, correlation_id, inputs) -> str:
        self._check()
        self.started.append((name, version, correlation_id, inputs))
        return self.add(name, correlation_id, input=inputs)

    def correlated(self, name, correlation_id, include_closed=False) -> list[dict]:
        self._check()
        return [
            dict(w)
            for w in self.workflows.values()
            if w["workflowName"] == name
            and w["correlationId"] == correlation_id
            and (include_closed or w["status"] in ("RUNNING", "PAUSED"))
        ]

    def get_workflow(self, workflow_id, include_tasks=True) -> dict:
        self._check()
        if workflow_id not in self.workflows:
            raise not_found(f"workflow {workflow_id}")
        return dict(self.workflows[workflow_id])

    def terminate(self, workflow_id, reason) -> None:
        self._check()
        self.workflows[workflow_id].update(status="TERMINATED", reasonForIncompletion=reason)

    def decide(self, workflow_id) -> None:
        """Conductor's decider pass: `on_decide` plays what it does to the workflow."""
        self._check()
        self.decided.append(workflow_id)
        if self.on_decide is not None:
            self.on_decide(self.workflows[workflow_id])

    def complete_task(self, workflow_id, task_ref, status, output) -> str:
        self._check()
        with self._lock:
            if self.complete_failures:
                raise self.complete_failures.pop(0)
        workflow = self.workflows.get(workflow_id)
        if workflow is None or task_ref not in workflow["waiting"]:
            return ""  # as Conductor 3.32 does: 200, no task id, nothing completed
        self.completed.append((workflow_id, task_ref, status, output))
        if self.overwritten_completions:
            # Conductor, still scheduling the WAIT, wrote it IN_PROGRESS over the completion.
            self.overwritten_completions -= 1
        else:
            workflow["waiting"].discard(task_ref)
            workflow["status"] = "COMPLETED"
        return f"task-{len(self.completed)}"


class FakeWorkbench:
    """Job statuses in a dict; a job missing from it answers 404; errors armed per job."""

    def __init__(self):
        self.jobs: dict[str, str] = {}
        self.errors: dict[str, WorkbenchError] = {}
        self.calls: list[str] = []
        self.timeouts: list[float | None] = []
        self.cancelled: list[str] = []
        self._lock = threading.Lock()

    def get_job(self, job_id: str, timeout: float | None = None) -> JobStatus:
        with self._lock:
            self.calls.append(job_id)
            self.timeouts.append(timeout)
        if job_id in self.errors:
            raise self.errors[job_id]
        if job_id not in self.jobs:
            raise WorkbenchError(
                f"job {job_id}: HTTP 404", transient=False, kind="not_found", status_code=404
            )
        status = self.jobs[job_id]
        return JobStatus(job_id, status, run_status_for(status), None, None, None)

    def cancel_job(self, job_id: str, timeout: float | None = None) -> CancelResult:
        """Cancel at once (a job that ended keeps its status), as the contract allows."""
        status = self.get_job(job_id, timeout).workbench_status
        ended = status in ("SUCCEEDED", "FAILED", "CANCELLED")
        self.cancelled.append(job_id)
        if not ended:
            self.jobs[job_id] = "CANCELLED"
        final = self.jobs[job_id]
        return CancelResult(job_id, final, run_status_for(final), ended)


class MidpointRandom:
    """An rng whose uniform(a, b) is always the midpoint: jitter without chance."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2

    def random(self) -> float:
        return 0.5
