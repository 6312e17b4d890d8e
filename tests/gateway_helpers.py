"""Helpers shared by the gateway's unit and integration tests: a fake Conductor, the API's
routes, refused Authorization headers, and a check of answers against the OpenAPI document."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from batchcore.errors import ConductorUnavailable


class FakeConductor:
    """Records the workflows it is asked to start; healthy unless told otherwise."""

    base_url = "http://conductor.test/api"

    def __init__(self, healthy: bool = True):
        self.healthy = healthy
        self.started: list[tuple] = []

    def start_workflow(self, name, version, correlation_id, inputs):
        self.started.append((name, version, correlation_id, inputs))
        return f"wf-{len(self.started)}"

    def terminate_correlated(self, name, correlation_id, reason):
        return []

    def check_health(self, timeout=2.0):
        if not self.healthy:
            raise ConductorUnavailable("Conductor is down")


def api_routes(app):
    """(method, url) of every route under /api/, with placeholders filled in."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        url = rule.rule.replace("<run_id>", str(uuid.uuid4()))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((method, url))
    return found


def bad_authorizations(token: str) -> dict[str, str | None]:
    """Authorization headers that must all be refused, by name; near-misses of `token`."""
    return {
        "missing": None,
        "empty": "",
        "wrong scheme": f"Basic {token}",
        "no scheme": token,
        "scheme only": "Bearer",
        "scheme and space": "Bearer ",
        "wrong token": "Bearer not-the-right-token-at-all",
        "truncated": f"Bearer {token[:-1]}",
        "extended": f"Bearer {token}x",
        "different case": f"Bearer {token.upper()}",
        "two tokens": f"Bearer {token} {token}",
        "non-ascii": "Bearer tökén-with-latin1-bytes",
    }


_TYPES = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
}


def resolve(doc: dict, ref: str) -> dict:
    node = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def schema_errors(instance, schema: dict, doc: dict, where: str = "$") -> list[str]:
    """The OpenAPI 3.0 subset this document uses, checked strictly enough for tests."""
    if "$ref" in schema:
        return schema_errors(instance, resolve(doc, schema["$ref"]), doc, where)
    if instance is None:
        return [] if schema.get("nullable") or "type" not in schema else [f"{where}: null"]
    kind = schema.get("type")
    if kind is not None:
        expected = _TYPES[kind]
        if not isinstance(instance, expected) or (
            kind in ("integer", "number") and isinstance(instance, bool)
        ):
            return [f"{where}: {type(instance).__name__} is not {kind}"]
    errors = []
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{where}: {instance!r} not in {schema['enum']}")
    if isinstance(instance, str):
        if len(instance) > schema.get("maxLength", len(instance)):
            errors.append(f"{where}: longer than maxLength")
        if len(instance) < schema.get("minLength", 0):
            errors.append(f"{where}: shorter than minLength")
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            errors.append(f"{where}: does not match {schema['pattern']}")
        if schema.get("format") == "date-time":
            parsed = datetime.fromisoformat(instance)
            if parsed.utcoffset() is None:
                errors.append(f"{where}: timestamp without a UTC offset")
    if isinstance(instance, int | float) and not isinstance(instance, bool):
        if "minimum" in schema and instance < schema["minimum"]:
            errors.append(f"{where}: below minimum")
        if "maximum" in schema and instance > schema["maximum"]:
            errors.append(f"{where}: above maximum")
    if isinstance(instance, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in instance:
                errors.append(f"{where}: missing {name}")
        extra = schema.get("additionalProperties", True)
        for name, value in instance.items():
            if name in properties:
                errors.extend(schema_errors(value, properties[name], doc, f"{where}.{name}"))
            elif extra is False:
                errors.append(f"{where}: unexpected property {name}")
            elif isinstance(extra, dict):
                errors.extend(schema_errors(value, extra, doc, f"{where}.{name}"))
    if isinstance(instance, list) and "items" in schema:
        for index, item in enumerate(instance):
            errors.extend(schema_errors(item, schema["items"], doc, f"{where}[{index}]"))
    return errors


def response_schema(doc: dict, path: str, method: str, status: int) -> dict | None:
    """The JSON schema documented for this answer, or None when it is not documented."""
    responses = doc["paths"][path][method.lower()]["responses"]
    response = responses.get(str(status))
    if response is None:
        return None
    if "$ref" in response:
        response = resolve(doc, response["$ref"])
    return response["content"]["application/json"]["schema"]


def assert_documented(doc: dict, path: str, method: str, response) -> None:
    """The answer's status is documented for the route and its body matches the schema."""
    schema = response_schema(doc, path, method, response.status_code)
    assert schema is not None, f"{method} {path} -> {response.status_code} is not documented"
    errors = schema_errors(response.get_json(), schema, doc)
    assert not errors, errors
