"""The components of the OpenAPI document: the schemas of bodies, the shared responses."""

from __future__ import annotations

import re

from batchcore.runs import lifecycle
from batchcore.runs.model import HISTORY_FIELDS, PUBLIC_FIELDS

from .. import validation
from ..path_prefixes import BUCKET_SCHEMES, CONTAINER_AT_ACCOUNT_SCHEMES, MAX_PATH_LENGTH
from ..rendering import PIPELINE_FIELDS

STATUS = {"type": "string", "enum": list(lifecycle.ALL)}
# The {run_id} of every run route.
RUN_ID_PARAMETER = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The run's UUID (anything else is a 404)",
}
_TIMESTAMP = {
    "type": "string",
    "format": "date-time",
    "description": "ISO 8601 in UTC with an explicit offset, e.g. 2026-11-25T17:00:00.123456+00:00",
}


def _nullable(schema: dict) -> dict:
    return {**schema, "nullable": True}


# What a pattern cannot say; each rule of gateway.path_prefixes beyond it is named here.
_PREFIX_RULES_IN_WORDS = (
    " No '..' or '.' segment in any encoding; percent-encoding must be valid UTF-8; no"
    " control characters (also none of Unicode's format characters); no whitespace at"
    " either end; no user-info; no IP host or port; no local or cloud-metadata host"
    " (localhost, *.localhost, *.local, *.internal, metadata, …)."
)
# Characters never allowed in a prefix: backslash, query, fragment, C0, DEL and C1 controls,
# line and paragraph separators.
_NEVER = r"\\?#\x00-\x1f\x7f-\x9f\u2028\u2029"


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


def path_prefix_pattern(schemes: frozenset[str]) -> str:
    """The shape of an acceptable prefix as an ECMA-262 pattern: an allowed scheme (any
    case) and its form: <bucket-scheme>://<bucket>[/path] (abfs: <container>[@<account>]),
    file:///path or file://localhost/path, other schemes <scheme>:...; no character of
    _NEVER. Wider than the rules, never narrower."""
    rest = f"[^{_NEVER}]*"
    name = f"[^/@{_NEVER}\\s][^/@{_NEVER}]*"
    forms = []
    for scheme in sorted(schemes):
        if scheme == "file":
            forms.append(f"{_any_case('file')}://(?:{_any_case('localhost')})?/{rest}")
        elif scheme in CONTAINER_AT_ACCOUNT_SCHEMES:
            forms.append(f"{_any_case(scheme)}://{name}(?:@[^/@{_NEVER}]+)?(?:/{rest})?")
        elif scheme in BUCKET_SCHEMES:
            forms.append(f"{_any_case(scheme)}://{name}(?:/{rest})?")
        else:
            forms.append(f"{_any_case(scheme)}:{rest}")
    return f"^(?:{'|'.join(forms)})$"


def with_schemes(schemas: dict, schemes: frozenset[str]) -> None:
    """Set the path prefixes' pattern and description for these allowed schemes."""
    pattern = path_prefix_pattern(schemes)
    words = (
        f" A URI whose scheme is one of {', '.join(sorted(schemes))} (ALLOWED_PATH_SCHEMES),"
        " of the form scheme://bucket/path (file:///path for file); no '?', '#' or"
        " backslash." + _PREFIX_RULES_IN_WORDS
    )
    for name in ("input_path_prefix", "output_path_prefix"):
        field = schemas["RunRequest"]["properties"][name]
        field["pattern"] = pattern
        field["description"] += words


PIPELINE_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": validation.MAX_PIPELINE_LENGTH,
    "pattern": validation.PIPELINE_PATTERN,
    "example": "demo-batch",
}

_RUN_FIELD_SCHEMAS = {
    "id": {"type": "string", "format": "uuid"},
    "pipeline": {"type": "string"},
    "mode": {"type": "string", "enum": list(validation.RUN_MODES)},
    "status": STATUS,
    "input_path_prefix": {"type": "string", "maxLength": MAX_PATH_LENGTH},
    "output_path_prefix": {"type": "string", "maxLength": MAX_PATH_LENGTH},
    "parameters": {"type": "object", "additionalProperties": True},
    "workbench_job_id": _nullable({"type": "string"}),
    "conductor_workflow_id": _nullable({"type": "string"}),
    "error_message": _nullable({"type": "string"}),
    "error_details": {
        "nullable": True,
        "description": "Structured detail of the failure (an object or an array), or null",
    },
    "created_at": _TIMESTAMP,
    "updated_at": _TIMESTAMP,
    "submitted_at": _nullable(_TIMESTAMP),
    "started_at": _nullable(_TIMESTAMP),
    "completed_at": _nullable(_TIMESTAMP),
    "poll_failures": {
        "type": "integer",
        "minimum": 0,
        "description": "Consecutive failed Workbench status polls (troubleshooting)",
    },
    "last_poll_error": _nullable({"type": "string"}),
    "last_polled_at": _nullable(_TIMESTAMP),
    "notify_url": _nullable(
        {"type": "string", "format": "uri", "description": "Where status changes are sent"}
    ),
    "submitted_by": {
        "type": "string",
        "description": "The name of the API token that created the run (GATEWAY_API_TOKENS"
        " entries are name:token; a bare token is named default)",
        "example": "default",
    },
    "cancel_requested_at": _nullable(
        {**_TIMESTAMP, "description": "When a cancel was asked for (by a client or a deadline)"}
    ),
    "cancel_requested_by": _nullable(
        {"type": "string", "description": "Who asked for the cancel: a token's name, or poller"}
    ),
    "deadline_at": _nullable(
        {**_TIMESTAMP, "description": "When an active run has its job cancelled and fails"}
    ),
    "rerun_of": _nullable(
        {"type": "string", "format": "uuid", "description": "The run this one re-runs"}
    ),
    "status_checked_at": _nullable(
        {**_TIMESTAMP, "description": "When the Workbench last confirmed the run's status"}
    ),
}
# In the order the API renders them; a public field without a schema fails at import.
_RUN_PROPERTIES = {name: _RUN_FIELD_SCHEMAS[name] for name in PUBLIC_FIELDS}

SCHEMAS = {
    "HistoryItem": {
        "type": "object",
        "additionalProperties": False,
        "required": list(HISTORY_FIELDS),
        "properties": {
            "status": STATUS,
            "previous_status": _nullable(STATUS),
            "at": _TIMESTAMP,
            "source": {
                "type": "string",
                "description": "Who made the change: gateway, submit, persist, poller, …",
            },
            "message": {"type": "string"},
            "details": {"type": "object", "additionalProperties": True},
            "actor": {
                "type": "string",
                "description": "Who caused the event: the token's name for an API request,"
                " else the component's (submit, persist, poller, reconciler, …)",
            },
        },
    },
    "RunSummary": {
        "type": "object",
        "description": "A run as listed: no reruns (a lookup per run; GET the run for them)"
        " and no history.",
        "additionalProperties": False,
        "required": list(_RUN_PROPERTIES),
        "properties": _RUN_PROPERTIES,
    },
    "Run": {
        "type": "object",
        "description": "A run with the runs that re-ran it and its audit trail, oldest first"
        " (a list of runs leaves both out: reruns would cost a lookup per run).",
        "additionalProperties": False,
        "required": [*_RUN_PROPERTIES, "reruns", "history"],
        "properties": {
            **_RUN_PROPERTIES,
            "reruns": {
                "type": "array",
                "items": {"type": "string", "format": "uuid"},
                "description": "The runs whose rerun_of is this run, oldest first",
            },
            "history": {"type": "array", "items": {"$ref": "#/components/schemas/HistoryItem"}},
        },
    },
    "RunPage": {
        "type": "object",
        "additionalProperties": False,
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/RunSummary"}},
            "next_cursor": _nullable(
                {"type": "string", "description": "Pass as ?cursor= for the next page"}
            ),
        },
    },
    "Workflow": {
        "type": "object",
        "description": "The Conductor execution behind a run; every field but tasks is null"
        " while the run has no workflow yet.",
        "additionalProperties": False,
        "required": ["workflow_id", "status", "start_time", "end_time", "tasks"],
        "properties": {
            "workflow_id": _nullable({"type": "string"}),
            "status": _nullable(
                {
                    "type": "string",
                    "description": "Conductor's: RUNNING, COMPLETED, FAILED, TIMED_OUT,"
                    " TERMINATED or PAUSED",
                }
            ),
            "start_time": _nullable(_TIMESTAMP),
            "end_time": _nullable(_TIMESTAMP),
            "tasks": {"type": "array", "items": {"$ref": "#/components/schemas/WorkflowTask"}},
        },
    },
    "WorkflowTask": {
        "type": "object",
        "description": "One task execution; a retried task appears once per attempt.",
        "additionalProperties": False,
        "required": [
            "reference_name",
            "task_type",
            "status",
            "attempt",
            "scheduled_at",
            "started_at",
            "ended_at",
            "reason",
        ],
        "properties": {
            "reference_name": {"type": "string"},
            "task_type": {"type": "string"},
            "status": {"type": "string", "description": "Conductor's task status"},
            "attempt": {"type": "integer", "minimum": 1},
            "scheduled_at": _nullable(_TIMESTAMP),
            "started_at": _nullable(_TIMESTAMP),
            "ended_at": _nullable(_TIMESTAMP),
            "reason": _nullable({"type": "string", "description": "Why it did not complete"}),
        },
    },
    "Pipeline": {
        "type": "object",
        "additionalProperties": False,
        "required": list(PIPELINE_FIELDS),
        "properties": {
            "name": {"type": "string"},
            "mode": {"type": "string", "enum": list(validation.RUN_MODES)},
            "description": {"type": "string"},
            "enabled": {"type": "boolean"},
            "workflow_name": {"type": "string"},
            "workflow_version": {"type": "integer", "minimum": 1},
            "max_runtime_seconds": _nullable(
                {
                    "type": "integer",
                    "minimum": validation.MIN_DEADLINE_SECONDS,
                    "maximum": validation.MAX_DEADLINE_SECONDS,
                    "description": "The default deadline_seconds of the pipeline's runs"
                    " (null: RUN_DEADLINE_SECONDS)",
                }
            ),
        },
    },
    "PipelineList": {
        "type": "object",
        "additionalProperties": False,
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Pipeline"}}
        },
    },
    "ErrorDetail": {
        "type": "object",
        "description": "One problem. Validation problems carry field, rule and message;"
        " other errors may add keys such as run_id or conductor_url.",
        "additionalProperties": True,
        "properties": {
            "field": {"type": "string"},
            "rule": {"type": "string"},
            "message": {"type": "string"},
            "run_id": {"type": "string", "format": "uuid"},
        },
    },
    "ErrorBody": {
        "type": "object",
        "additionalProperties": False,
        "required": ["code", "message", "details"],
        "properties": {
            "code": {
                "type": "string",
                "description": "Stable machine-readable name, e.g. validation_failed,"
                " invalid_json, unauthorized, run_not_found, pipeline_not_found, conflict,"
                " payload_too_large, conductor_unavailable, database_unavailable,"
                " internal_error",
            },
            "message": {"type": "string", "description": "A human sentence"},
            "details": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/ErrorDetail"},
            },
        },
    },
    "Error": {
        "type": "object",
        "additionalProperties": False,
        "required": ["error"],
        "properties": {"error": {"$ref": "#/components/schemas/ErrorBody"}},
    },
    "Health": {
        "type": "object",
        "additionalProperties": False,
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["ok"]}},
    },
    "Readiness": {
        "type": "object",
        "additionalProperties": False,
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ready", "not_ready"]},
            "checks": {
                "type": "object",
                "additionalProperties": False,
                "required": ["database", "conductor"],
                "properties": {
                    "database": {"type": "string", "enum": ["ok", "unavailable", "timeout"]},
                    "conductor": {"type": "string", "enum": ["ok", "unavailable", "timeout"]},
                },
            },
            "error": {"$ref": "#/components/schemas/ErrorBody"},
        },
    },
}


def error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


RESPONSES = {
    "Unauthorized": {
        **error("Missing or invalid bearer token"),
        "headers": {
            "WWW-Authenticate": {"schema": {"type": "string", "enum": ["Bearer"]}},
        },
    },
    "Unprocessable": error(
        "Invalid input: each bad field, header or query parameter is named in details"
    ),
    "Unavailable": {
        **error("The database (or, for POST, Conductor) cannot be reached"),
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
    },
    "InternalError": error("An unexpected error; the body carries no traceback"),
}
