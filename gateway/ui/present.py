"""What the templates show: times, ages, durations, and the geometry of the workflow timeline."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from batchcore.runs import lifecycle

# The timeline's drawing area in SVG user units (the SVG scales to the page's width).
TIMELINE_WIDTH = 800
LABEL_WIDTH = 230
ROW_HEIGHT = 30
BAR_HEIGHT = 16
AXIS_HEIGHT = 24
MIN_BAR = 2.0
REASON_ROOM = 200


def as_datetime(value) -> datetime | None:
    """A datetime from a datetime or an ISO 8601 string (None stays None)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value))


def iso(value) -> str:
    """ISO 8601 in UTC, for <time datetime=...>."""
    moment = as_datetime(value)
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else ""


def utc_text(value) -> str:
    """A readable UTC time: the page's text before the script shows the reader's zone."""
    moment = as_datetime(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def duration(seconds: float | None) -> str:
    """A short human duration: 850 ms, 4.2 s, 3 min 5 s, 2 h 10 min, 3 d 4 h."""
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def age(value, now: datetime) -> str:
    """How long ago `value` was, e.g. '4.2 s ago'; '' for no time."""
    moment = as_datetime(value)
    return f"{duration((now - moment).total_seconds())} ago" if moment else ""


def pretty_json(value) -> str:
    """Indented JSON for a <pre> (autoescaped by the template like any text)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def is_active(status: str | None) -> bool:
    """True while a run can still change."""
    return status in lifecycle.ALL and not lifecycle.is_terminal(status)


@dataclass(frozen=True)
class Bar:
    """One task execution on the timeline."""

    label: str
    status: str
    y: float
    wait_x: float
    wait_width: float
    run_x: float
    run_width: float
    waited: str
    ran: str
    reason: str | None
    retry: bool
    # Where the failure's reason is written beside the bar (None: no room, or no reason).
    reason_x: float | None = None


@dataclass(frozen=True)
class Timeline:
    """The workflow's tasks laid out on one time axis, from the first schedule to the end."""

    width: int
    height: int
    label_width: int
    bar_height: int
    bars: list[Bar]
    total: str
    axis_y: float


def timeline(workflow: dict, now: datetime) -> Timeline | None:
    """The SVG geometry of the workflow's tasks: each one's wait and run; None without tasks."""
    tasks = workflow.get("tasks") or []
    if not tasks:
        return None
    start = as_datetime(workflow.get("start_time")) or min(
        as_datetime(t["scheduled_at"]) or now for t in tasks
    )
    ends = [_end(task, now) for task in tasks]
    end = max([*ends, as_datetime(workflow.get("end_time")) or start])
    span = max((end - start).total_seconds(), 0.001)
    scale = (TIMELINE_WIDTH - LABEL_WIDTH - 10) / span

    def x_of(moment: datetime) -> float:
        return LABEL_WIDTH + max(0.0, (moment - start).total_seconds()) * scale

    bars = []
    for row, (task, task_end) in enumerate(zip(tasks, ends, strict=True)):
        scheduled = as_datetime(task["scheduled_at"]) or start
        started = as_datetime(task["started_at"])
        wait_end = started or task_end
        run_start = started or task_end
        label = task["reference_name"] or task["task_type"] or "task"
        if task["attempt"] > 1:
            label = f"{label} (attempt {task['attempt']})"
        bars.append(
            Bar(
                label=label,
                status=task["status"] or "UNKNOWN",
                y=row * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) / 2,
                wait_x=x_of(scheduled),
                wait_width=max(x_of(wait_end) - x_of(scheduled), 0.0),
                run_x=x_of(run_start),
                run_width=max(x_of(task_end) - x_of(run_start), MIN_BAR if started else 0.0),
                waited=duration((wait_end - scheduled).total_seconds()),
                ran=duration((task_end - started).total_seconds()) if started else "",
                reason=task.get("reason"),
                retry=task["attempt"] > 1,
                reason_x=_reason_x(task.get("reason"), x_of(task_end)),
            )
        )
    return Timeline(
        width=TIMELINE_WIDTH,
        height=len(tasks) * ROW_HEIGHT + AXIS_HEIGHT,
        label_width=LABEL_WIDTH,
        bar_height=BAR_HEIGHT,
        bars=bars,
        total=duration(span),
        axis_y=len(tasks) * ROW_HEIGHT + 16,
    )


def _reason_x(reason: str | None, bar_end: float) -> float | None:
    """Right of the bar when the drawing has room there for a few words of the reason."""
    if not reason or bar_end > TIMELINE_WIDTH - REASON_ROOM:
        return None
    return bar_end + 6


def _end(task: dict, now: datetime) -> datetime:
    """When a task ended, or now while it has not."""
    return as_datetime(task.get("ended_at")) or now


def task_times(task: dict, now: datetime) -> tuple[str, str]:
    """(waited, ran) of one task as text, for the table beside the drawing."""
    scheduled = as_datetime(task.get("scheduled_at"))
    started = as_datetime(task.get("started_at"))
    ended = as_datetime(task.get("ended_at"))
    waited = duration(((started or ended or now) - scheduled).total_seconds()) if scheduled else ""
    ran = duration(((ended or now) - started).total_seconds()) if started else ""
    return waited, ran
