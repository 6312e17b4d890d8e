"""The API's JSON of runs, their history and pipelines; timestamps in UTC with an offset."""

from __future__ import annotations

from datetime import UTC, datetime

from batchcore.runs.model import HISTORY_FIELDS, PUBLIC_FIELDS
from batchcore.setting_checks import DEFAULT_TOKEN_NAME

PIPELINE_FIELDS = (
    "name",
    "mode",
    "description",
    "enabled",
    "workflow_name",
    "workflow_version",
    "max_runtime_seconds",
)


def render_run(run: dict, history: list[dict] | None = None) -> dict:
    """The API's JSON of a run row (and its history when given)."""
    rendered = {name: _json_value(run.get(name)) for name in PUBLIC_FIELDS}
    rendered["id"] = str(run["id"])
    rendered["poll_failures"] = run.get("poll_failures") or 0
    # A snapshot taken before runs had a submitter (a queued notification's) was a bare
    # token's run, and a bare token is named default.
    rendered["submitted_by"] = run.get("submitted_by") or DEFAULT_TOKEN_NAME
    if history is not None:
        # One run's answer also names the runs that re-ran it (lists leave that out: a
        # lookup per row); a run the gateway could not read back has none yet.
        rendered["reruns"] = [str(rerun_id) for rerun_id in run.get("reruns") or ()]
        rendered["history"] = [
            {name: _json_value(event.get(name)) for name in HISTORY_FIELDS} for event in history
        ]
    return rendered


def render_pipeline(pipeline: dict) -> dict:
    """The API's JSON of a catalog row."""
    return {name: pipeline.get(name) for name in PIPELINE_FIELDS}


def _json_value(value):
    if isinstance(value, datetime):
        # ISO 8601 in UTC with an explicit offset and a fixed number of digits.
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value
