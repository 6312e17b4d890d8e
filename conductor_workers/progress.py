"""Whether a run's Conductor workflow moves: a pure judgement over its JSON, timeouts and now."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Conductor enforces poll and response timeouts only when a decider pass evaluates the
# workflow; a healthy server does so within its sweep offset (about 30 s). A task this far
# past its own timeout was not evaluated: the workflow is stuck, not slow.
MARGIN_SECONDS = 30
# A system task (SWITCH, TERMINATE, ...) runs inside the decision that scheduled it; one still
# SCHEDULED this long after, or a running workflow with no open task this long after its
# last change, lost its decision (a decider message popped and never handed out again).
DECISION_SECONDS = 30
OPEN = ("SCHEDULED", "IN_PROGRESS")
# Tasks that wait, by design, for something outside Conductor or for their children.
WAITING_TYPES = frozenset({"WAIT", "HUMAN", "DO_WHILE", "FORK_JOIN", "JOIN", "SUB_WORKFLOW"})


@dataclass(frozen=True)
class TaskTimeouts:
    """The timeouts Conductor enforces on a worker's task, in seconds (0: none)."""

    poll_seconds: int = 0
    response_seconds: int = 0

    @classmethod
    def of(cls, definition: Mapping) -> TaskTimeouts:
        """The timeouts of a task definition (JSON as registered)."""
        return cls(
            int(definition.get("pollTimeoutSeconds") or 0),
            int(definition.get("responseTimeoutSeconds") or 0),
        )


@dataclass(frozen=True)
class Verdict:
    """Stuck or moving; when stuck, the task it is stuck at and by how much."""

    stuck: bool
    reason: str = ""
    task_ref: str | None = None
    task_status: str | None = None
    overdue_seconds: int = 0

    def details(self) -> dict:
        """What an audit event keeps of the judgement."""
        return {
            "stuck_reason": self.reason,
            "stuck_task": self.task_ref,
            "stuck_task_status": self.task_status,
            "overdue_seconds": self.overdue_seconds,
        }


MOVING = Verdict(False)


def registered_timeouts(task_definitions: list[Mapping]) -> dict[str, TaskTimeouts]:
    """Timeouts by task name, from the definitions this service registers."""
    return {d["name"]: TaskTimeouts.of(d) for d in task_definitions}


def judge(
    workflow: Mapping,
    now_ms: int,
    timeouts: Mapping[str, TaskTimeouts] | None = None,
    margin_seconds: int = MARGIN_SECONDS,
) -> Verdict:
    """Stuck when a RUNNING workflow's open task sat SCHEDULED past its poll timeout, or
    IN_PROGRESS past its response timeout, by more than `margin_seconds`; or when a system
    task, or the decision after the last task, is overdue. `timeouts` (the current
    definitions) win over the copy a workflow took when it started, which may predate them."""
    if workflow.get("status") != "RUNNING":
        return MOVING
    tasks = workflow.get("tasks") or []
    open_tasks = [t for t in tasks if t.get("status") in OPEN]
    if not open_tasks:
        last = max(
            [_ms(t, "endTime", "updateTime") for t in tasks]
            + [_ms(workflow, "updateTime", "startTime")]
        )
        return _overdue(
            now_ms - last,
            DECISION_SECONDS + margin_seconds,
            "no task is scheduled: the decision after the last one was lost",
            tasks[-1] if tasks else {},
        )
    verdicts = [_judge_task(t, now_ms, timeouts or {}, margin_seconds) for t in open_tasks]
    stuck = [v for v in verdicts if v.stuck]
    return max(stuck, key=lambda v: v.overdue_seconds) if stuck else MOVING


def _judge_task(
    task: Mapping, now_ms: int, timeouts: Mapping[str, TaskTimeouts], margin: int
) -> Verdict:
    kind = (task.get("workflowTask") or {}).get("type") or task.get("taskType")
    status = task["status"]
    if kind != "SIMPLE":
        if status == "SCHEDULED" and kind not in WAITING_TYPES:
            waited = now_ms - _ms(task, "scheduledTime")
            return _overdue(
                waited, DECISION_SECONDS + margin, f"system task {kind} never ran", task
            )
        return MOVING
    limits = timeouts.get(task.get("taskDefName")) or TaskTimeouts.of(_definition(task))
    if status == "SCHEDULED":
        if not limits.poll_seconds:
            return MOVING  # without a poll timeout a task may wait for a worker for ever
        waited = now_ms - _ms(task, "scheduledTime")
        return _overdue(
            waited,
            limits.poll_seconds + margin,
            f"no worker took it within its poll timeout ({limits.poll_seconds} s)",
            task,
        )
    response = limits.response_seconds or int(task.get("responseTimeoutSeconds") or 0)
    if not response:
        return MOVING
    waited = now_ms - _ms(task, "updateTime", "startTime")
    return _overdue(
        waited,
        response + margin,
        f"its worker did not answer within its response timeout ({response} s)",
        task,
    )


def _overdue(waited_ms: int, limit_seconds: int, reason: str, task: Mapping) -> Verdict:
    overdue = waited_ms / 1000 - limit_seconds
    if overdue <= 0:
        return MOVING
    return Verdict(
        True,
        reason,
        task.get("referenceTaskName"),
        task.get("status"),
        int(overdue),
    )


def _definition(task: Mapping) -> Mapping:
    return (
        task.get("taskDefinition") or (task.get("workflowTask") or {}).get("taskDefinition") or {}
    )


def _ms(item: Mapping, *fields: str) -> int:
    """The latest of the given epoch-millisecond fields that are set (0 when none)."""
    return max((int(item.get(f) or 0) for f in fields), default=0)
