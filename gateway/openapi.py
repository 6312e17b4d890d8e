"""The hand-written OpenAPI 3.0.3 description of the gateway, served at /openapi.json."""

from __future__ import annotations

import copy

from batchcore import statuses

from . import validation

_STATUS = {"type": "string", "enum": list(statuses.ALL)}
_TIMESTAMP = {
    "type": "string",
    "format": "date-time",
    "description": "ISO 8601 in UTC with an explicit offset, e.g. 2026-11-25T17:00:00.123456+00:00",
}


def _nullable(schema: dict) -> dict:
    return {**schema, "nullable": True}


def _path_prefix(description: str, example: str) -> dict:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": validation.MAX_PATH_LENGTH,
        "description": description
        + " A URI whose scheme is in ALLOWED_PATH_SCHEMES (default s3, gs, abfs, file);"
        " no '..' or '.' segment in any encoding, no control characters, no user-info,"
        " no query or fragment, no IP host or port, no local or cloud-metadata host"
        " (localhost, *.localhost, *.local, *.internal, metadata, …).",
        "example": example,
    }


_PIPELINE_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": validation.MAX_PIPELINE_LENGTH,
    "pattern": validation.PIPELINE_PATTERN,
    "example": "demo-batch",
}

_RUN_PROPERTIES = {
    "id": {"type": "string", "format": "uuid"},
    "pipeline": {"type": "string"},
    "mode": {"type": "string", "enum": list(validation.RUN_MODES)},
    "status": _STATUS,
    "input_path_prefix": {"type": "string", "maxLength": validation.MAX_PATH_LENGTH},
    "output_path_prefix": {"type": "string", "maxLength": validation.MAX_PATH_LENGTH},
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
}

_SCHEMAS = {
    "RunRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["pipeline", "mode", "input_path_prefix", "output_path_prefix"],
        "properties": {
            "pipeline": _PIPELINE_NAME,
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
            "parameters": {
                "type": "object",
                "additionalProperties": True,
                "description": f"Free-form job parameters: at most"
                f" {validation.MAX_PARAMETERS_BYTES} bytes as compact JSON, nested at most"
                f" {validation.MAX_PARAMETERS_DEPTH} levels, no NaN/Infinity, no NUL.",
                "default": {},
            },
        },
    },
    "HistoryItem": {
        "type": "object",
        "additionalProperties": False,
        "required": ["status", "previous_status", "at", "source", "message", "details"],
        "properties": {
            "status": _STATUS,
            "previous_status": _nullable(_STATUS),
            "at": _TIMESTAMP,
            "source": {
                "type": "string",
                "description": "Who made the change: gateway, submit, persist, poller, …",
            },
            "message": {"type": "string"},
            "details": {"type": "object", "additionalProperties": True},
        },
    },
    "RunSummary": {
        "type": "object",
        "description": "A run as listed (no history).",
        "additionalProperties": False,
        "required": list(_RUN_PROPERTIES),
        "properties": _RUN_PROPERTIES,
    },
    "Run": {
        "type": "object",
        "description": "A run with its audit trail, oldest event first.",
        "additionalProperties": False,
        "required": [*_RUN_PROPERTIES, "history"],
        "properties": {
            **_RUN_PROPERTIES,
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
    "Pipeline": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "name",
            "mode",
            "description",
            "enabled",
            "workflow_name",
            "workflow_version",
        ],
        "properties": {
            "name": {"type": "string"},
            "mode": {"type": "string", "enum": list(validation.RUN_MODES)},
            "description": {"type": "string"},
            "enabled": {"type": "boolean"},
            "workflow_name": {"type": "string"},
            "workflow_version": {"type": "integer", "minimum": 1},
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


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(schema_name: str, description: str, headers: dict | None = None) -> dict:
    response = {
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}
        },
    }
    if headers:
        response["headers"] = headers
    return response


_RESPONSES = {
    "Unauthorized": {
        **_error("Missing or invalid bearer token"),
        "headers": {
            "WWW-Authenticate": {"schema": {"type": "string", "enum": ["Bearer"]}},
        },
    },
    "Unprocessable": _error(
        "Invalid input: each bad field, header or query parameter is named in details"
    ),
    "Unavailable": {
        **_error("The database (or, for POST, Conductor) cannot be reached"),
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
    },
    "InternalError": _error("An unexpected error; the body carries no traceback"),
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/responses/{name}"}


_API_ERRORS = {
    "401": _ref("Unauthorized"),
    "422": _ref("Unprocessable"),
    "500": _ref("InternalError"),
    "503": _ref("Unavailable"),
}
_SECURED = [{"bearerAuth": []}]
_LOCATION = {
    "Location": {
        "description": "The run's URL",
        "schema": {"type": "string", "example": "/api/v1/pipeline-runs/<id>"},
    }
}

_PATHS = {
    "/api/v1/pipeline-runs": {
        "post": {
            "operationId": "createPipelineRun",
            "summary": "Submit a batch pipeline run",
            "description": "Stores the run PENDING and starts its Conductor workflow. With an"
            " Idempotency-Key already used for the same body, answers 200 with the earlier"
            " run (header Idempotent-Replayed: true) and starts nothing; with another body,"
            " 409. The body is read as JSON whatever its Content-Type.",
            "security": _SECURED,
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 255,
                        # HTTP drops spaces at either end of a header value, so a key
                        # cannot start or end with one.
                        "pattern": "^[!-~]([ -~]*[!-~])?$",
                    },
                    "description": "1 to 255 printable ASCII characters, not starting or"
                    " ending with a space",
                },
                {
                    "name": "wait",
                    "in": "query",
                    "required": False,
                    "schema": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": validation.MAX_WAIT_SECONDS,
                        "default": 0,
                    },
                    "description": "Seconds to wait for the run to leave PENDING before"
                    " answering (the answer comes as soon as it does)",
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/RunRequest"}}
                },
            },
            "responses": {
                "202": _json("Run", "The run was created and its workflow started", _LOCATION),
                "200": _json(
                    "Run",
                    "Idempotent replay: the run an earlier request with this key created",
                    {
                        **_LOCATION,
                        "Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}},
                    },
                ),
                "400": _error("The body is not UTF-8 JSON (code invalid_json)"),
                "404": _error("The pipeline is not in the catalog (code pipeline_not_found)"),
                "409": _error("The Idempotency-Key was used with a different body"),
                "413": _error("The body is over 1 MiB (code payload_too_large)"),
                **_API_ERRORS,
                "503": {
                    **_error(
                        "The database is unavailable, or Conductor could not start the workflow:"
                        " then the run is stored FAILED with the reason, and the message and"
                        " details (run_id) name it"
                    ),
                    "headers": {"Retry-After": {"schema": {"type": "string"}}},
                },
            },
        },
        "get": {
            "operationId": "listPipelineRuns",
            "summary": "List runs, newest first",
            "security": _SECURED,
            "parameters": [
                {
                    "name": "status",
                    "in": "query",
                    "required": False,
                    # status=RUNNING,FAILED; the parameter may also be repeated.
                    "style": "form",
                    "explode": False,
                    "schema": {"type": "array", "minItems": 1, "items": _STATUS},
                    "description": "One or more of " + ", ".join(statuses.ALL) + ","
                    " comma-separated or repeated",
                },
                {
                    "name": "pipeline",
                    "in": "query",
                    "required": False,
                    "schema": _PIPELINE_NAME,
                },
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": validation.MAX_LIST_LIMIT,
                        "default": validation.DEFAULT_LIST_LIMIT,
                    },
                },
                {
                    "name": "cursor",
                    "in": "query",
                    "required": False,
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": validation.MAX_CURSOR_LENGTH,
                    },
                    "description": "next_cursor of the previous page, as given",
                },
            ],
            "responses": {"200": _json("RunPage", "A page of runs"), **_API_ERRORS},
        },
    },
    "/api/v1/pipeline-runs/{run_id}": {
        "get": {
            "operationId": "getPipelineRun",
            "summary": "One run with its history",
            "security": _SECURED,
            "parameters": [
                {
                    "name": "run_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "The run's UUID (anything else is a 404)",
                }
            ],
            "responses": {
                "200": _json("Run", "The run"),
                "404": _error("No run has this id (code run_not_found); the message names it"),
                **_API_ERRORS,
            },
        }
    },
    "/api/v1/pipelines": {
        "get": {
            "operationId": "listPipelines",
            "summary": "The pipeline catalog",
            "security": _SECURED,
            "responses": {"200": _json("PipelineList", "Every pipeline"), **_API_ERRORS},
        }
    },
    "/healthz": {
        "get": {
            "operationId": "healthz",
            "summary": "Liveness",
            "security": [],
            "responses": {"200": _json("Health", "The process is alive")},
        }
    },
    "/readyz": {
        "get": {
            "operationId": "readyz",
            "summary": "Readiness: database and Conductor answer",
            "security": [],
            "responses": {
                "200": _json("Readiness", "Both dependencies answer"),
                "503": _json("Readiness", "At least one does not; checks say which"),
            },
        }
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics",
            "security": [],
            "responses": {
                "200": {
                    "description": "Prometheus text exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [],
            "responses": {
                "200": {
                    "description": "OpenAPI 3.0.3",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    },
}

_DOCUMENT = {
    "openapi": "3.0.3",
    "info": {
        "title": "Batch pipeline runs gateway",
        "version": "1.0.0",
        "description": "Submit batch pipeline runs, executed by Conductor workflows on the"
        " Workbench, and follow their status and history. Every error has the shape"
        ' {"error": {"code", "message", "details"}}.',
    },
    "paths": _PATHS,
    "components": {
        "schemas": _SCHEMAS,
        "responses": _RESPONSES,
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
    },
}


def document() -> dict:
    """The OpenAPI document (a copy: callers may not change the served one)."""
    return copy.deepcopy(_DOCUMENT)
