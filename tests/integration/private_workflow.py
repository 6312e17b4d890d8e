"""A private workflow like batch_pipeline_run whose `submit` task no worker polls, so a run's
workflow stays where a test puts it; the demo pipeline of the test's database runs it."""

from __future__ import annotations

import uuid

import pytest
import requests


@pytest.fixture
def private_workflow(conductor_url, database):
    """A private workflow with a SIMPLE task referenced as `submit` (no worker polls it),
    and a pipeline of this test's database that runs it; every execution is terminated after."""
    name = f"test_reconcile_{uuid.uuid4().hex[:8]}"
    register_private(
        conductor_url,
        name,
        [
            {"name": name, "taskReferenceName": "submit", "type": "SIMPLE"},
            {"name": "await_completion", "taskReferenceName": "await_completion", "type": "WAIT"},
        ],
        task_response_timeout=300,
    )
    with database.transaction() as cur:
        cur.execute("UPDATE pipelines SET workflow_name = %s WHERE name = 'demo-batch'", (name,))
    started: list[str] = []
    yield name, started
    remove_private(conductor_url, name, started, taskdef=name)


def register_private(
    conductor_url: str, name: str, tasks: list[dict], task_response_timeout: int | None = None
) -> None:
    """Register private workflow `name` (version 1) running `tasks`; with
    `task_response_timeout`, first a task definition of the same name (no retries)."""
    if task_response_timeout is not None:
        requests.post(
            f"{conductor_url}/metadata/taskdefs",
            json=[
                {
                    "name": name,
                    "retryCount": 0,
                    "timeoutSeconds": 600,
                    "responseTimeoutSeconds": task_response_timeout,
                }
            ],
            timeout=10,
        ).raise_for_status()
    requests.put(
        f"{conductor_url}/metadata/workflow",
        json=[{"name": name, "version": 1, "schemaVersion": 2, "tasks": tasks}],
        timeout=10,
    ).raise_for_status()


def remove_private(conductor_url: str, name: str, correlation_ids, taskdef: str | None) -> None:
    """Terminate the open executions of private workflow `name` (version 1) for these
    correlation ids, then delete its definition and, if named, its task's."""
    for correlation_id in correlation_ids:
        resp = requests.get(
            f"{conductor_url}/workflow/{name}/correlated/{correlation_id}",
            params={"includeClosed": "false"},
            timeout=10,
        )
        for wf in resp.json():
            requests.delete(
                f"{conductor_url}/workflow/{wf['workflowId']}",
                params={"reason": "test cleanup"},
                timeout=10,
            )
    requests.delete(f"{conductor_url}/metadata/workflow/{name}/1", timeout=10)
    if taskdef is not None:
        requests.delete(f"{conductor_url}/metadata/taskdefs/{taskdef}", timeout=10)
