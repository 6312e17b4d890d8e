"""The progress judgement: a workflow is stuck when its open task is past its own timeout by
the margin, or when a decision it needed never came; never for a WAIT that waits."""

from __future__ import annotations

import pytest

from batchcore import registration
from conductor_workers import progress

NOW = 1_800_000_000_000
MARGIN = progress.MARGIN_SECONDS
TIMEOUTS = {"submit_to_workbench": progress.TaskTimeouts(poll_seconds=120, response_seconds=60)}


def task(ref, status, kind="SIMPLE", ago=0.0, name=None, **extra) -> dict:
    """A task as Conductor's workflow JSON has it, last changed `ago` seconds before NOW."""
    at = NOW - int(ago * 1000)
    return {
        "referenceTaskName": ref,
        "taskDefName": name or ref,
        "taskType": kind if kind != "SIMPLE" else (name or ref),
        "workflowTask": {"type": kind},
        "status": status,
        "scheduledTime": at,
        "startTime": at if status != "SCHEDULED" else 0,
        "updateTime": at,
        "endTime": at if status not in progress.OPEN else 0,
        **extra,
    }


def running(*tasks, status="RUNNING") -> dict:
    return {"workflowId": "wf-1", "status": status, "startTime": NOW - 10**7, "tasks": list(tasks)}


def submit(status, ago):
    return task("submit", status, ago=ago, name="submit_to_workbench")


@pytest.mark.parametrize(
    ("status", "limit"),
    [("SCHEDULED", 120), ("IN_PROGRESS", 60)],
    ids=["never-polled", "taken-never-answered"],
)
def test_a_task_is_stuck_only_past_its_timeout_and_the_margin(status, limit):
    at_limit = running(submit(status, limit + MARGIN - 1))
    assert progress.judge(at_limit, NOW, TIMEOUTS) == progress.MOVING
    past = progress.judge(running(submit(status, limit + MARGIN + 5)), NOW, TIMEOUTS)
    assert past.stuck
    assert (past.task_ref, past.task_status, past.overdue_seconds) == ("submit", status, 5)
    assert str(limit) in past.reason


def test_the_current_definitions_win_over_the_copy_the_workflow_started_with():
    old = submit("SCHEDULED", 600)
    old["workflowTask"]["taskDefinition"] = {"pollTimeoutSeconds": 0}
    assert progress.judge(running(old), NOW, {}) == progress.MOVING, "no poll timeout: it waits"
    assert progress.judge(running(old), NOW, TIMEOUTS).stuck


def test_the_definition_a_workflow_carries_is_used_for_tasks_not_registered_here():
    private = task("submit", "SCHEDULED", ago=200, name="private_task")
    private["taskDefinition"] = {"pollTimeoutSeconds": 10}
    assert progress.judge(running(private), NOW, TIMEOUTS).stuck


def test_an_in_progress_task_is_timed_from_its_last_update():
    held = submit("IN_PROGRESS", 0)
    held["startTime"] = NOW - 3_600_000  # taken an hour ago, answered IN_PROGRESS just now
    assert progress.judge(running(held), NOW, TIMEOUTS) == progress.MOVING


def test_a_waiting_wait_task_is_never_stuck():
    done = submit("COMPLETED", 7200)
    wait = task("await_completion", "IN_PROGRESS", kind="WAIT", ago=7200)
    assert progress.judge(running(done, wait), NOW, TIMEOUTS) == progress.MOVING


def test_a_system_task_never_run_means_a_lost_decision():
    switch = task("route_submission", "SCHEDULED", kind="SWITCH", ago=progress.DECISION_SECONDS)
    assert progress.judge(running(switch), NOW) == progress.MOVING
    switch = task("route_submission", "SCHEDULED", kind="SWITCH", ago=200)
    verdict = progress.judge(running(switch), NOW)
    assert verdict.stuck and "SWITCH" in verdict.reason


def test_a_running_workflow_with_nothing_scheduled_lost_its_next_decision():
    done = task("persist_submitted", "COMPLETED", ago=5)
    assert progress.judge(running(done), NOW) == progress.MOVING
    done = task("persist_submitted", "COMPLETED", ago=progress.DECISION_SECONDS + MARGIN + 1)
    verdict = progress.judge(running(done), NOW)
    assert verdict.stuck and verdict.task_ref == "persist_submitted"
    assert "decision" in verdict.reason


@pytest.mark.parametrize("status", ["PAUSED", "COMPLETED", "TERMINATED", "FAILED"])
def test_only_a_running_workflow_is_judged(status):
    assert progress.judge(running(submit("SCHEDULED", 9999), status=status), NOW, TIMEOUTS) == (
        progress.MOVING
    )


def test_the_most_overdue_task_is_named():
    a = task("a", "IN_PROGRESS", ago=500, name="submit_to_workbench")
    b = task("b", "IN_PROGRESS", ago=900, name="submit_to_workbench")
    assert progress.judge(running(a, b), NOW, TIMEOUTS).task_ref == "b"


@pytest.mark.parametrize("name", ["submit_to_workbench", "persist_run", "poll_status"])
def test_the_workers_tasks_of_the_run_and_poller_workflows_can_be_judged(name):
    limits = progress.registered_timeouts(registration.load("tasks"))[name]
    assert limits.poll_seconds > 0 and limits.response_seconds > 0
