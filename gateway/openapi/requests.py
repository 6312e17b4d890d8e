"""The request bodies of the OpenAPI document: a run request and a rerun's."""

from __future__ import annotations

from .. import validation
from ..path_prefixes import MAX_PATH_LENGTH
from .schemas import PIPELINE_NAME

DEADLINE_SECONDS = {
    "type": "integer",
    "nullable": True,
    "minimum": validation.MIN_DEADLINE_SECONDS,
    "maximum": validation.MAX_DEADLINE_SECONDS,
    "description": "Seconds from now after which the run, if still active, has its Workbench"
    " job cancelled and ends FAILED (error_details.code deadline_exceeded); deadline_at shows"
    " when. Absent or null: the pipeline's max_runtime_seconds, else RUN_DEADLINE_SECONDS"
    " (86400 unless configured).",
    "example": 3600,
}
_PARAMETERS = {
    "type": "object",
    "additionalProperties": True,
    "description": f"Free-form job parameters: at most"
    f" {validation.MAX_PARAMETERS_BYTES} bytes as compact JSON, nested at most"
    f" {validation.MAX_PARAMETERS_DEPTH} levels, no NaN/Infinity, no NUL.",
}


def _path_prefix(description: str, example: str) -> dict:
    # The pattern and the schemes in the description are set per gateway (with_schemes).
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_PATH_LENGTH,
        "description": description,
        "example": example,
    }


REQUEST_SCHEMAS = {
    "RunRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["pipeline", "mode", "input_path_prefix", "output_path_prefix"],
        "properties": {
            "pipeline": PIPELINE_NAME,
            "mode": {"type": "string", "enum": list(validation.RUN_MODES)},
            "input_path_prefix": _path_prefix(
                "Where the job reads its input.", "s3://bucket/input/"
            ),
            # A different example: the same prefix for both is refused (same_as_input).
            "output_path_prefix": _path_prefix(
                "Where the job writes its output; must differ from the input prefix and"
                " neither may contain the other.",
                "s3://bucket/output/",
            ),
            "parameters": {**_PARAMETERS, "default": {}},
            "notify_url": {
                "type": "string",
                "nullable": True,
                "format": "uri",
                "minLength": 1,
                "maxLength": 2048,
                "description": "Every status change of the run is POSTed here as a"
                " Standard Webhooks delivery signed with WEBHOOK_SECRET: https only (http too"
                " for a host in WEBHOOK_ALLOWED_HOSTS), no user-info, no #fragment; a"
                " loopback, private, link-local or metadata address is refused here and"
                " again after DNS resolution at delivery.",
                "example": "https://receiver.example.com/hooks/runs",
            },
            "deadline_seconds": DEADLINE_SECONDS,
        },
    },
    "RerunRequest": {
        "type": "object",
        "additionalProperties": False,
        "description": "Optional: without a body (or without parameters) the new run takes"
        " the original's parameters.",
        "properties": {
            "parameters": {
                **_PARAMETERS,
                "description": "Replace the original run's parameters. "
                + _PARAMETERS["description"],
            }
        },
    },
}
