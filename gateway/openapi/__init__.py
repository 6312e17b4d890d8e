"""The hand-written OpenAPI 3.0.3 description of the gateway, served at /openapi.json."""

from __future__ import annotations

import copy

from batchcore import settings

from . import paths, webhooks
from .paths import PATHS
from .requests import REQUEST_SCHEMAS
from .schemas import RESPONSES, SCHEMAS, error, with_schemes

_NOTIFICATIONS_PATH = webhooks.notifications_path(
    paths._SECURED, paths._API_ERRORS, paths._json, error
)

_DOCUMENT = {
    "openapi": "3.0.3",
    "info": {
        "title": "Batch pipeline runs gateway",
        "version": "1.0.0",
        "description": "Submit batch pipeline runs, executed by Conductor workflows on the"
        " Workbench, and follow their status and history. Every error has the shape"
        ' {"error": {"code", "message", "details"}}.',
    },
    "paths": {**PATHS, "/api/v1/pipeline-runs/{run_id}/notifications": _NOTIFICATIONS_PATH},
    # OpenAPI 3.1's webhooks: what a run's notify_url receives.
    "x-webhooks": webhooks.X_WEBHOOKS,
    "components": {
        "schemas": {**SCHEMAS, **REQUEST_SCHEMAS, **webhooks.SCHEMAS},
        "responses": RESPONSES,
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
    },
}


def document(allowed_schemes: frozenset[str] | None = None) -> dict:
    """The OpenAPI document for these ALLOWED_PATH_SCHEMES (the default when None); a copy,
    which callers may change."""
    doc = copy.deepcopy(_DOCUMENT)
    schemes = allowed_schemes or settings.default("ALLOWED_PATH_SCHEMES")
    with_schemes(doc["components"]["schemas"], frozenset(schemes))
    return doc
