"""The operations of the OpenAPI document: every route, its parameters and its answers."""

from __future__ import annotations

from batchcore.runs import lifecycle

from .. import validation
from ..inputs import IDEMPOTENCY_HEADER, MAX_WAIT_SECONDS
from .schemas import PIPELINE_NAME, RUN_ID_PARAMETER, STATUS, error


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

_IDEMPOTENCY_KEY = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        # HTTP drops spaces at either end of a header value, so a key cannot start or end
        # with one.
        "pattern": "^[!-~]([ -~]*[!-~])?$",
    },
    "description": "1 to 255 printable ASCII characters, not starting or ending with a space",
}

PATHS = {
    "/api/v1/pipeline-runs": {
        "post": {
            "operationId": "createPipelineRun",
            "summary": "Submit a batch pipeline run",
            "description": "Stores the run PENDING and starts its Conductor workflow. With an"
            " Idempotency-Key already used for the same body, answers 200 with the earlier"
            " run (header Idempotent-Replayed: true) and starts nothing, unless that run failed"
            " before its workflow started (Conductor unreachable): then the key passes to a new"
            " attempt (202) and the failed run's history names it; with another body, 409."
            " The body is read as JSON whatever its Content-Type.",
            "security": _SECURED,
            "parameters": [
                _IDEMPOTENCY_KEY,
                {
                    "name": "wait",
                    "in": "query",
                    "required": False,
                    "schema": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": MAX_WAIT_SECONDS,
                        "default": 0,
                    },
                    "description": "Seconds to wait for the run to leave PENDING before"
                    " answering (the answer comes as soon as it does). Waits are bounded: when"
                    " as many requests already wait as the gateway allows (half its threads),"
                    " the answer comes at once, the run as it is (often PENDING)",
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
                "400": error("The body is not UTF-8 JSON (code invalid_json)"),
                "404": error("The pipeline is not in the catalog (code pipeline_not_found)"),
                "409": error("The Idempotency-Key was used with a different body"),
                "413": error("The body is over 1 MiB (code payload_too_large)"),
                **_API_ERRORS,
                "503": {
                    **error(
                        "The database is unavailable before the run was stored, or Conductor"
                        " could not start the workflow: then the run is stored FAILED with the"
                        " reason, and the message, details (run_id) and Location name it; a"
                        " retry with the same Idempotency-Key makes a new attempt. Once a run"
                        " is stored every answer names it: a database lost after that answers"
                        " 202 with the run as this request knows it (history may be empty)"
                    ),
                    "headers": {
                        "Retry-After": {"schema": {"type": "string"}},
                        "Location": {
                            "description": "The stored run's URL, when a run was stored",
                            "schema": {"type": "string"},
                        },
                    },
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
                    "schema": {"type": "array", "minItems": 1, "items": STATUS},
                    "description": "One or more of " + ", ".join(lifecycle.ALL) + ","
                    " comma-separated or repeated",
                },
                {
                    "name": "pipeline",
                    "in": "query",
                    "required": False,
                    "schema": PIPELINE_NAME,
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
            "parameters": [RUN_ID_PARAMETER],
            "responses": {
                "200": _json("Run", "The run"),
                "404": error("No run has this id (code run_not_found); the message names it"),
                **_API_ERRORS,
            },
        }
    },
    "/api/v1/pipeline-runs/{run_id}/cancel": {
        "post": {
            "operationId": "cancelPipelineRun",
            "summary": "Cancel a run",
            "description": "A run for which no Workbench job was asked for yet ends CANCELLED"
            " at once (its workflow is terminated). Otherwise the cancel is requested"
            " (cancel_requested_at set) and the poller sends it to the Workbench: the run"
            " becomes CANCELLED once the Workbench confirms its job CANCELLED; a job that"
            " ended first gives the run its outcome, and the history says the cancel came too"
            " late. Repeating the request is harmless. The token's name is the actor of the"
            " audit event.",
            "security": _SECURED,
            "parameters": [RUN_ID_PARAMETER],
            "responses": {
                "202": _json("Run", "The run, CANCELLED or with its cancel requested"),
                "404": error("No run has this id (code run_not_found); the message names it"),
                "409": error("The run has already ended (code run_terminal)"),
                **_API_ERRORS,
            },
        }
    },
    "/api/v1/pipeline-runs/{run_id}/rerun": {
        "post": {
            "operationId": "rerunPipelineRun",
            "summary": "Re-run an ended run",
            "description": "Creates a new run with the original's pipeline, mode, path"
            " prefixes, notify_url and parameters (unless the body replaces them), a fresh"
            " deadline (the pipeline's max_runtime_seconds, else RUN_DEADLINE_SECONDS), the"
            " caller's token name as submitted_by and rerun_of = the original's id, and starts"
            " its workflow as POST /api/v1/pipeline-runs does; the original's reruns and"
            " history name it. The body is optional. An Idempotency-Key (scoped to the token's"
            " name) repeated for the same run and parameters answers 200 with the earlier"
            " re-run; with another run or other parameters, 409.",
            "security": _SECURED,
            "parameters": [RUN_ID_PARAMETER, _IDEMPOTENCY_KEY],
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/RerunRequest"}}
                },
            },
            "responses": {
                "202": _json("Run", "The new run, its workflow started", _LOCATION),
                "200": _json(
                    "Run",
                    "Idempotent replay: the re-run an earlier request with this key created",
                    {
                        **_LOCATION,
                        "Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}},
                    },
                ),
                "400": error("The body is not UTF-8 JSON (code invalid_json)"),
                "404": error("No run has this id (code run_not_found); the message names it"),
                "409": error(
                    "The run is still active (code run_not_terminal), or the Idempotency-Key"
                    " was used for another request (code conflict)"
                ),
                "413": error("The body is over 1 MiB (code payload_too_large)"),
                **_API_ERRORS,
            },
        }
    },
    "/api/v1/pipeline-runs/{run_id}/workflow": {
        "get": {
            "operationId": "getPipelineRunWorkflow",
            "summary": "The Conductor workflow behind a run, with its tasks",
            "description": "Read from Conductor at each call. A run that has no workflow yet"
            " (just created, or stored FAILED because Conductor could not start it) answers"
            " 200 with workflow_id, status, start_time and end_time null and no tasks.",
            "security": _SECURED,
            "parameters": [RUN_ID_PARAMETER],
            "responses": {
                "200": _json("Workflow", "The workflow and its tasks, in the order scheduled"),
                "404": error(
                    "No run has this id (code run_not_found), or Conductor no longer has the"
                    " run's workflow (code workflow_not_found)"
                ),
                **_API_ERRORS,
                "503": {
                    **error("Conductor (or the database) cannot be reached"),
                    "headers": {"Retry-After": {"schema": {"type": "string"}}},
                },
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
