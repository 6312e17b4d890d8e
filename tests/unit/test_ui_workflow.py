"""The workflow behind a run: Conductor's execution shaped for the API and the run page."""

from __future__ import annotations

import uuid

import pytest

from batchcore.errors import ConductorUnavailable
from gateway import services, workflow_view
from gateway.services import RunView, WorkflowNotFound

EXECUTION = {
    "workflowId": "wf-1",
    "status": "FAILED",
    "startTime": 1_764_090_000_000,
    "endTime": 1_764_090_009_500,
    "tasks": [
        {
            "seq": 2,
            "referenceTaskName": "submit_to_workbench",
            "taskType": "submit_to_workbench",
            "status": "FAILED",
            "retryCount": 1,
            "scheduledTime": 1_764_090_002_000,
            "startTime": 1_764_090_004_000,
            "endTime": 1_764_090_005_000,
            "reasonForIncompletion": "Workbench answered 503",
        },
        {
            "seq": 1,
            "referenceTaskName": "submit_to_workbench",
            "taskType": "submit_to_workbench",
            "status": "FAILED",
            "retryCount": 0,
            "scheduledTime": 1_764_090_000_000,
            "startTime": 1_764_090_000_100,
            "endTime": 1_764_090_001_000,
            "reasonForIncompletion": "",
        },
        {
            "seq": 3,
            "referenceTaskName": "wait_for_job",
            "taskType": "WAIT",
            "status": "SCHEDULED",
            "scheduledTime": 1_764_090_006_000,
            "startTime": 0,
            "endTime": 0,
        },
    ],
}


def test_workflow_shape_orders_tasks_counts_attempts_and_converts_times():
    shaped = workflow_view.shape(EXECUTION)
    assert list(shaped) == ["workflow_id", "status", "start_time", "end_time", "tasks"]
    assert shaped["workflow_id"] == "wf-1"
    assert shaped["start_time"] == "2025-11-25T17:00:00.000+00:00"
    assert shaped["end_time"] == "2025-11-25T17:00:09.500+00:00"
    first, retry, wait = shaped["tasks"]
    assert (first["attempt"], retry["attempt"], wait["attempt"]) == (1, 2, 1)
    assert first["reason"] is None  # Conductor's empty string means no reason
    assert retry["reason"] == "Workbench answered 503"
    assert wait["started_at"] is None and wait["ended_at"] is None  # 0: not yet
    assert set(wait) == {
        "reference_name",
        "task_type",
        "status",
        "attempt",
        "scheduled_at",
        "started_at",
        "ended_at",
        "reason",
    }


class Conductor:
    """Answers get_workflow with an execution, or raises the given error."""

    def __init__(self, answer):
        self.answer = answer
        self.asked: list[str] = []

    def get_workflow(self, workflow_id, include_tasks=True):
        self.asked.append(workflow_id)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def run_view(workflow_id):
    run = {"id": uuid.uuid4(), "status": "PENDING", "conductor_workflow_id": workflow_id}
    return RunView(run=run, history=[])


def test_a_run_without_a_workflow_answers_nulls_and_asks_conductor_nothing(monkeypatch):
    monkeypatch.setattr(services, "get_run", lambda db, run_id: run_view(None))
    conductor = Conductor(AssertionError("not to be called"))
    assert services.get_run_workflow(None, conductor, "x") == {
        "workflow_id": None,
        "status": None,
        "start_time": None,
        "end_time": None,
        "tasks": [],
    }
    assert conductor.asked == []


def test_a_workflow_conductor_no_longer_has_is_workflow_not_found(monkeypatch):
    monkeypatch.setattr(services, "get_run", lambda db, run_id: run_view("wf-gone"))
    gone = ConductorUnavailable("404", details=[{"status_code": 404}])
    with pytest.raises(WorkflowNotFound, match="wf-gone"):
        services.get_run_workflow(None, Conductor(gone), "x")


def test_conductor_down_stays_conductor_unavailable(monkeypatch):
    monkeypatch.setattr(services, "get_run", lambda db, run_id: run_view("wf-1"))
    down = ConductorUnavailable("Conductor is down", details=[{"status_code": 502}])
    with pytest.raises(ConductorUnavailable) as raised:
        services.get_run_workflow(None, Conductor(down), "x")
    assert not isinstance(raised.value, WorkflowNotFound)


def test_the_workflow_of_a_run_is_read_by_its_id(monkeypatch):
    monkeypatch.setattr(services, "get_run", lambda db, run_id: run_view("wf-1"))
    conductor = Conductor(EXECUTION)
    assert services.get_run_workflow(None, conductor, "x")["status"] == "FAILED"
    assert conductor.asked == ["wf-1"]
