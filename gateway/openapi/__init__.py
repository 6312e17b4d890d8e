"""The hand-written OpenAPI 3.0.3 description of the gateway, served at /openapi.json."""

from __future__ import annotations

import copy

from .paths import PATHS
from .schemas import RESPONSES, SCHEMAS

_DOCUMENT = {
    "openapi": "3.0.3",
    "info": {
        "title": "Batch pipeline runs gateway",
        "version": "1.0.0",
        "description": "Submit batch pipeline runs, executed by Conductor workflows on the"
        " Workbench, and follow their status and history. Every error has the shape"
        ' {"error": {"code", "message", "details"}}.',
    },
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "responses": RESPONSES,
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
    },
}


def document() -> dict:
    """The OpenAPI document (a copy: callers may not change the served one)."""
    return copy.deepcopy(_DOCUMENT)
