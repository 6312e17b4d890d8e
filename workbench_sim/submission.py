"""A POST /jobs body, validated: the contract's fields and what `parameters.simulate` asks."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

QUEUED = "QUEUED"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
OUTCOMES = (SUCCEEDED, FAILED, CANCELLED)

MAX_PREFIX_LENGTH = 1024
MAX_SIMULATED_SECONDS = 86_400.0
_SECONDS_KEYS = ("duration_seconds", "queue_seconds", "cancel_seconds")


class ValidationError(ValueError):
    """A submission broke the contract; `details` names each bad field."""

    def __init__(self, details: list[dict[str, str]]):
        super().__init__("; ".join(f"{d['field']}: {d['message']}" for d in details))
        self.details = details


@dataclass(frozen=True)
class Simulation:
    """What `parameters.simulate` asked for; None means the configured default."""

    outcome: str = SUCCEEDED
    error_message: str | None = None
    run_seconds: float | None = None
    queue_seconds: float | None = None
    # How long a cancel of this job takes to take effect.
    cancel_seconds: float | None = None


@dataclass(frozen=True)
class Submission:
    """A validated POST /jobs body."""

    pipeline_run_id: str
    pipeline: str
    input_path_prefix: str
    output_path_prefix: str
    parameters: dict[str, Any]
    simulation: Simulation


def parse_submission(body: dict[str, Any]) -> Submission:
    """Check every field of a POST /jobs body at once; raise ValidationError listing them all."""
    details: list[dict[str, str]] = []

    def bad(name: str, rule: str, message: str) -> None:
        details.append({"field": name, "rule": rule, "message": message})

    text: dict[str, str] = {}
    for name in ("pipeline_run_id", "pipeline", "input_path_prefix", "output_path_prefix"):
        value = body.get(name)
        if name not in body or value is None:
            bad(name, "required", f"{name} is required")
        elif not isinstance(value, str):
            bad(name, "type", f"{name} must be a string")
        elif not value.strip():
            bad(name, "not_empty", f"{name} must not be empty")
        elif name.endswith("_prefix") and len(value) > MAX_PREFIX_LENGTH:
            bad(name, "max_length", f"{name} must be at most {MAX_PREFIX_LENGTH} characters")
        elif name.endswith("_prefix") and not (urlsplit(value).scheme and "://" in value):
            bad(name, "uri", f"{name} must be a URI such as s3://bucket/path or file:///dir")
        else:
            text[name] = value

    parameters = body.get("parameters")
    simulation = Simulation()
    if "parameters" not in body or parameters is None:
        bad("parameters", "required", "parameters is required (send {} when there are none)")
    elif not isinstance(parameters, dict):
        bad("parameters", "type", "parameters must be a JSON object")
    elif "simulate" in parameters:
        simulation = _parse_simulation(parameters["simulate"], bad)

    if details:
        raise ValidationError(details)
    return Submission(parameters=parameters, simulation=simulation, **text)


def _parse_simulation(raw: Any, bad: Callable[[str, str, str], None]) -> Simulation:
    prefix = "parameters.simulate"
    if not isinstance(raw, dict):
        bad(prefix, "type", f"{prefix} must be a JSON object")
        return Simulation()
    for key in sorted(set(raw) - {"outcome", "error_message", *_SECONDS_KEYS}):
        bad(f"{prefix}.{key}", "unknown", f"{prefix}.{key} is not a simulation setting")

    outcome = raw.get("outcome", SUCCEEDED)
    if not isinstance(outcome, str) or outcome.upper() not in OUTCOMES:
        bad(f"{prefix}.outcome", "enum", f"{prefix}.outcome must be one of {', '.join(OUTCOMES)}")
        outcome = SUCCEEDED

    message = raw.get("error_message")
    if message is not None and not isinstance(message, str):
        bad(f"{prefix}.error_message", "type", f"{prefix}.error_message must be a string")
        message = None

    seconds: dict[str, float | None] = {}
    for key in _SECONDS_KEYS:
        value = raw.get(key)
        # bool is an int in Python, but `true` seconds is surely a mistake in the request.
        if value is None:
            seconds[key] = None
        elif (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 <= value <= MAX_SIMULATED_SECONDS
        ):
            bad(
                f"{prefix}.{key}",
                "range",
                f"{prefix}.{key} must be a number of seconds from 0 to {MAX_SIMULATED_SECONDS:g}",
            )
            seconds[key] = None
        else:
            seconds[key] = float(value)

    return Simulation(
        outcome=outcome.upper(),
        error_message=message,
        run_seconds=seconds["duration_seconds"],
        queue_seconds=seconds["queue_seconds"],
        cancel_seconds=seconds["cancel_seconds"],
    )
