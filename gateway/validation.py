"""Validation of a run request's body and of the run list's filters.

Each parser collects every problem before it gives up and raises one ValidationFailed
(gateway.problems), so a client learns every bad field at once.

Rule names (the stable, machine-readable part of each detail):

- any field: `required`, `type`, `unknown_field`
- `pipeline`: `length`, `pattern`; `mode`: `enum`
- `parameters`: `size`, `depth`, `not_finite` (NaN/Infinity, which PostgreSQL's JSONB
  refuses), `control_character` (NUL, which JSONB refuses), `encoding` (lone surrogates)
- path prefixes: the rules of gateway.path_prefixes
- `deadline_seconds`: `type` (not a whole number), `range` (60 to 604800)
- `notify_url`: the rules of batchcore.notifications.urls (`type`, `length`, `scheme`,
  `user_info`, `fragment`, `format`, `control_character`, `private_address`)
- list filters: `enum` (status), `pattern`/`length` (pipeline), `type`/`range` (limit),
  `length` (cursor), `repeated` (a parameter given twice)

Only the shape of the input is checked here; whether the pipeline exists is the
database's question.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from batchcore.errors import ValidationFailed
from batchcore.notifications.urls import url_problems
from batchcore.runs import lifecycle
from batchcore.runs.model import REQUEST_FIELDS, NewRun

from .path_prefixes import relation_problems, validate_path_prefix
from .problems import (
    Detail,
    json_type,
    problem,
    quoted,
    raise_if_any,
    short_name,
    unknown_problems,
)

RUN_MODES = ("BATCH",)

MAX_PIPELINE_LENGTH = 100
PIPELINE_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
# fullmatch with \Z semantics: `$` alone would also accept a trailing newline.
_PIPELINE_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*", re.ASCII)

MAX_PARAMETERS_BYTES = 64 * 1024  # of the compact UTF-8 JSON serialization
MAX_PARAMETERS_DEPTH = 32  # the parameters object itself is depth 1

# A run's deadline_seconds (the same bounds as RUN_DEADLINE_SECONDS).
MIN_DEADLINE_SECONDS = 60
MAX_DEADLINE_SECONDS = 604800
# What the body of a rerun may name.
RERUN_FIELDS = ("parameters",)

LIST_QUERY_PARAMS = ("status", "pipeline", "limit", "cursor")
DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 200
MAX_CURSOR_LENGTH = 512
_LIMIT_RE = re.compile(r"-?[0-9]+", re.ASCII)

_SURROGATE_RE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class ListFilters:
    """The filters of GET /api/v1/pipeline-runs; `cursor` is still opaque here."""

    statuses: tuple[str, ...] = ()
    pipeline: str | None = None
    limit: int = DEFAULT_LIST_LIMIT
    cursor: str | None = None


def pipeline_problems(value: object, field_name: str) -> list[Detail]:
    if not isinstance(value, str):
        return [problem(field_name, "type", f"must be a string, not {json_type(value)}")]
    if not 1 <= len(value) <= MAX_PIPELINE_LENGTH:
        return [
            problem(
                field_name,
                "length",
                f"must be 1 to {MAX_PIPELINE_LENGTH} characters long, not {len(value)}",
            )
        ]
    if not _PIPELINE_RE.fullmatch(value):
        return [
            problem(
                field_name,
                "pattern",
                f"must match {PIPELINE_PATTERN}: lowercase letters, digits, '_', '.' and '-',"
                " starting with a letter or digit",
            )
        ]
    return []


# --------------------------------------------------------------------------- parameters


def _parameters_problems(value: object) -> list[Detail]:
    name = "parameters"
    if not isinstance(value, dict):
        return [problem(name, "type", f"must be a JSON object, not {json_type(value)}")]
    found: dict[str, str] = {}

    def add(rule: str, text: str) -> None:
        found.setdefault(rule, text)

    def check_text(text: str, where: str) -> None:
        if "\x00" in text:
            add("control_character", f"must not contain NUL characters (at {where})")
        if _SURROGATE_RE.search(text):
            add("encoding", f"must not contain unpaired surrogates (at {where})")

    # Iterative walk: depth is bounded by the limit, not by Python's recursion limit.
    stack: list[tuple[object, int, str]] = [(value, 1, name)]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_PARAMETERS_DEPTH:
                add(
                    "depth",
                    f"must be nested at most {MAX_PARAMETERS_DEPTH} levels deep"
                    f" (exceeded at {short_name(where, 200)})",
                )
                continue
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        add("type", f"must have string keys (at {short_name(where, 200)})")
                        continue
                    child_where = f"{where}.{short_name(key, 40)}"
                    check_text(key, short_name(child_where, 200))
                    stack.append((child, depth + 1, child_where))
            else:
                for index, child in enumerate(item):
                    stack.append((child, depth + 1, f"{where}[{index}]"))
        elif isinstance(item, str):
            check_text(item, short_name(where, 200))
        elif isinstance(item, float):
            if not math.isfinite(item):
                add(
                    "not_finite",
                    f"must not contain NaN or Infinity (at {short_name(where, 200)})",
                )
        elif item is not None and not isinstance(item, bool | int):
            add(
                "type",
                f"must contain only JSON values, not {json_type(item)}"
                f" (at {short_name(where, 200)})",
            )

    if not found.keys() & {"type", "not_finite", "encoding"}:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        except (ValueError, TypeError, RecursionError):  # pragma: no cover - walk caught it
            text = ""
        size = len(text.encode("utf-8"))
        if size > MAX_PARAMETERS_BYTES:
            add(
                "size",
                f"must serialize to at most {MAX_PARAMETERS_BYTES} bytes of JSON, not {size}",
            )
    return [problem(name, rule, text) for rule, text in found.items()]


def deadline_problems(value: object) -> list[Detail]:
    """`deadline_seconds`: a whole number of seconds from MIN to MAX_DEADLINE_SECONDS."""
    name, bounds = "deadline_seconds", f"{MIN_DEADLINE_SECONDS} to {MAX_DEADLINE_SECONDS}"
    if isinstance(value, bool) or not isinstance(value, int):
        return [
            problem(
                name,
                "type",
                f"must be a whole number of seconds ({bounds}), not {json_type(value)}",
            )
        ]
    if not MIN_DEADLINE_SECONDS <= value <= MAX_DEADLINE_SECONDS:
        shown = str(value) if abs(value) < 10**12 else "a larger number"
        return [problem(name, "range", f"must be from {bounds} seconds, not {shown}")]
    return []


def parse_rerun_request(body: object | None) -> dict | None:
    """The body of POST .../{id}/rerun: the parameters that replace the run's, or None to
    keep them (no body, or no parameters in it); ValidationFailed naming every bad field."""
    if body is None:
        return None
    if not isinstance(body, dict):
        raise ValidationFailed(
            f"The request body must be a JSON object, not {json_type(body)}.",
            details=[problem("body", "type", f"must be a JSON object, not {json_type(body)}")],
        )
    details = unknown_problems(body, RERUN_FIELDS, "field", "body")
    if "parameters" in body:
        details.extend(_parameters_problems(body["parameters"]))
    raise_if_any(details, "request", "field")
    return body.get("parameters")


# ----------------------------------------------------------------------- run requests


def parse_run_request(
    body: object,
    allowed_schemes: frozenset[str],
    allowed_webhook_hosts: frozenset[str] = frozenset(),
) -> NewRun:
    """The body of POST /api/v1/pipeline-runs as a NewRun, or ValidationFailed
    naming every bad field. `allowed_schemes` comes from ALLOWED_PATH_SCHEMES,
    `allowed_webhook_hosts` from WEBHOOK_ALLOWED_HOSTS."""
    if not isinstance(body, dict):
        raise ValidationFailed(
            f"The request body must be a JSON object, not {json_type(body)}.",
            details=[problem("body", "type", f"must be a JSON object, not {json_type(body)}")],
        )
    details: list[Detail] = []

    def required(name: str) -> bool:
        if name in body:
            return True
        details.append(problem(name, "required", "is required"))
        return False

    if required("pipeline"):
        details.extend(pipeline_problems(body["pipeline"], "pipeline"))

    if required("mode"):
        mode = body["mode"]
        if not isinstance(mode, str):
            details.append(problem("mode", "type", f"must be a string, not {json_type(mode)}"))
        elif mode not in RUN_MODES:
            details.append(
                problem(
                    "mode",
                    "enum",
                    f"must be one of {', '.join(RUN_MODES)}, not {quoted(mode)}",
                )
            )

    paths_valid = True
    for name in ("input_path_prefix", "output_path_prefix"):
        if required(name):
            problems = validate_path_prefix(body[name], name, allowed_schemes)
            details.extend(problems)
            paths_valid = paths_valid and not problems
        else:
            paths_valid = False
    if paths_valid:
        details.extend(relation_problems(body["input_path_prefix"], body["output_path_prefix"]))

    parameters = body.get("parameters", {})
    if "parameters" in body:
        details.extend(_parameters_problems(parameters))

    notify_url = body.get("notify_url")
    if notify_url is not None:
        details.extend(
            problem("notify_url", rule, text)
            for rule, text in url_problems(notify_url, allowed_webhook_hosts)
        )

    if body.get("deadline_seconds") is not None:
        details.extend(deadline_problems(body["deadline_seconds"]))

    details.extend(unknown_problems(body, REQUEST_FIELDS, "field", "body"))

    raise_if_any(details, "request", "field")
    # The request's fields become the run's, one by one: a new field needs no line here.
    return NewRun(**{name: body[name] for name in REQUEST_FIELDS if name in body})


# ------------------------------------------------------------------------ list filters


def _query_values(args: Mapping[str, str], name: str) -> list[object]:
    """Every value of a query parameter; Werkzeug's MultiDict keeps repeats in getlist."""
    getlist = getattr(args, "getlist", None)
    if callable(getlist):
        return list(getlist(name))
    return [args[name]] if name in args else []


def parse_list_filters(
    args: Mapping[str, str],
    *,
    default_limit: int = DEFAULT_LIST_LIMIT,
    max_limit: int = MAX_LIST_LIMIT,
) -> ListFilters:
    """The query of GET /api/v1/pipeline-runs as ListFilters, or ValidationFailed naming
    every bad parameter. `status` takes several statuses, comma-separated or repeated."""
    details = unknown_problems(args, LIST_QUERY_PARAMS, "query parameter", "query")

    wanted: list[str] = []
    for raw in _query_values(args, "status"):
        if not isinstance(raw, str):
            details.append(problem("status", "type", "must be a string"))
            continue
        for item in raw.split(","):
            status = item.strip()
            if status not in lifecycle.ALL:
                details.append(
                    problem(
                        "status",
                        "enum",
                        f"must be one or more of {', '.join(lifecycle.ALL)}"
                        f" (comma-separated), not {quoted(status)}",
                    )
                )
                break
            if status not in wanted:
                wanted.append(status)

    def single(name: str) -> object | None:
        values = _query_values(args, name)
        if len(values) > 1:
            details.append(problem(name, "repeated", "must be given at most once"))
            return None
        return values[0] if values else None

    pipeline = single("pipeline")
    if pipeline is not None:
        problems = pipeline_problems(pipeline, "pipeline")
        details.extend(problems)
        if problems:
            pipeline = None

    limit = default_limit
    raw_limit = single("limit")
    if raw_limit is not None:
        if not isinstance(raw_limit, str) or not _LIMIT_RE.fullmatch(raw_limit):
            details.append(
                problem("limit", "type", f"must be a whole number from 1 to {max_limit}")
            )
        else:
            digits = raw_limit.lstrip("-").lstrip("0")
            number = int(raw_limit) if len(digits) <= 9 else max_limit + 1
            if not 1 <= number <= max_limit:
                details.append(
                    problem("limit", "range", f"must be from 1 to {max_limit}, not {raw_limit}")
                )
            else:
                limit = number

    cursor = single("cursor")
    if cursor is not None:
        if not isinstance(cursor, str):
            details.append(problem("cursor", "type", "must be a string"))
            cursor = None
        elif not 1 <= len(cursor) <= MAX_CURSOR_LENGTH:
            details.append(
                problem(
                    "cursor",
                    "length",
                    f"must be 1 to {MAX_CURSOR_LENGTH} characters long, not {len(cursor)}",
                )
            )
            cursor = None

    raise_if_any(details, "query", "parameter")
    return ListFilters(statuses=tuple(wanted), pipeline=pipeline, limit=limit, cursor=cursor)
