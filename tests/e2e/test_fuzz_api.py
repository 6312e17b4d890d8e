"""Fuzzing the running gateway with schemathesis against its own OpenAPI document.

Every operation of /openapi.json is exercised with schema-valid and schema-invalid input
(examples, coverage and fuzzing phases) over HTTP against the stack's gunicorn gateway,
with the dev token, and every answer goes through all of schemathesis's checks: no 5xx,
the status code is documented, the content type and headers are the documented ones, the
body matches its schema, schema-invalid input is refused, and authentication is enforced.

POSTs create real runs that the real workers submit to the simulator. The document's
examples steer valid bodies to `demo-batch` with s3:// prefixes, so no run ever asks the
simulator to touch the local file system.

The schema is gateway.openapi's document, checked to be exactly what /openapi.json serves:
loading it from the URL inside a fixture (schemathesis.pytest.from_fixture) does not work
with pytest 9, whose nodes no longer have the `_nodeid` attribute schemathesis rewrites.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json

import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.failures import Failure

from gateway import openapi

# Per operation, bounded so that the whole module runs in well under a minute.
MAX_EXAMPLES = 60

# Rules that JSON Schema cannot express (the schema's pattern states a path prefix's scheme
# and shape, but not its '..' segments in any encoding, its hosts, or that input and output
# do not overlap; a cursor must be one this API issued). Input the schema calls valid may
# break these, and then 422 is the right answer; the description of each field documents
# the rule. Schema-valid input may get 422 *only* for these fields.
SEMANTIC_FIELDS = {
    "createPipelineRun": {"input_path_prefix", "output_path_prefix"},
    "listPipelineRuns": {"cursor"},
}

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            # Deterministic, so a failure seen once is seen again on the next run.
            "deterministic": True,
            # NUL is refused in every string (PostgreSQL cannot store it); that rule is
            # covered by the validation properties, here it would only mask others.
            "allow-x00": False,
        },
        "request-timeout": 45,
        "operations": [
            {
                "include-operation-id": sorted(SEMANTIC_FIELDS),
                "checks": {
                    "positive_data_acceptance": {
                        # The defaults (2xx, 3xx, 401, 403, 404, 409, 429, 5xx) plus 422,
                        # narrowed by positive_422_names_only_semantic_fields below.
                        "expected-statuses": [
                            "2xx",
                            "3xx",
                            "401",
                            "403",
                            "404",
                            "409",
                            "422",
                            "429",
                            "5xx",
                        ]
                    }
                },
            }
        ],
    }
)

schema = schemathesis.openapi.from_dict(openapi.document(), config=CONFIG)

# ?wait= may be up to 30 s, and a POST waits that long when the workers are slow to take
# the run (say, while another test has them stopped). Valid waits are capped at 2 s so
# that the module stays bounded in time; invalid ones are left as generated.
MAX_WAIT = 2


@schema.hook
def map_query(context, query):
    wait = (query or {}).get("wait")
    if isinstance(wait, int | float) and not isinstance(wait, bool) and MAX_WAIT < wait <= 30:
        query["wait"] = MAX_WAIT
    return query


def old_style_cursor(created: str) -> str:
    """A cursor in the shape the gateway once issued, unsigned: Python's fromisoformat took
    these dates, PostgreSQL did not (a 500)."""
    raw = json.dumps([created, "6f1c1f5e-7d64-4d5c-9d0b-1b2f6d8c9e01"]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@functools.cache
def cursor_samples(base: str, token: str) -> dict[str, str]:
    """Cursors to put in place of generated ones: one the gateway issued (kept by the
    schema's own rules, 200 expected) and hostile ones (422 naming cursor expected)."""
    page = requests.get(
        f"{base}/api/v1/pipeline-runs",
        params={"limit": 1},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    issued = page["next_cursor"]
    assert issued, "the stack's database has fewer than two runs to page through"
    position, _, signature = issued.rpartition(".")
    return {
        "issued": issued,
        "tampered signature": f"{position}.{signature[::-1]}",
        "unsigned position": position,
        "ISO week date": old_style_cursor("2024-W01-1"),
        "offset of 20 hours": old_style_cursor("2024-01-01T00:00:00+20:00"),
    }


_cursor_turns = itertools.count()


def with_real_cursor(case, base: str, token: str) -> str | None:
    """Positive cases of the list that carry a cursor get one of cursor_samples, each in
    turn (the generation is deterministic, so is the pick): random strings alone would only
    ever test the refusal. Returns the sample's name."""
    query = case.query or {}
    generated = query.get("cursor")
    if case.operation.definition.raw.get("operationId") != "listPipelineRuns":
        return None
    if not isinstance(generated, str) or case.meta is None:
        return None
    if case.meta.generation.mode.value != "positive":
        return None
    samples = cursor_samples(base, token)
    name = sorted(samples)[next(_cursor_turns) % len(samples)]
    query["cursor"] = samples[name]
    return name


def positive_422_names_only_semantic_fields(ctx, response, case) -> bool | None:
    """Schema-valid input may be refused only for the rules the schema cannot express."""
    if response.status_code != 422 or case.meta is None:
        return None
    if case.meta.generation.mode.value != "positive":
        return None
    allowed = SEMANTIC_FIELDS.get(case.operation.definition.raw.get("operationId"), set())
    details = json.loads(response.content)["error"]["details"]
    named = {detail.get("field") for detail in details}
    if not named <= allowed:
        raise Failure(
            operation=case.operation.label,
            title="Schema-valid input refused for a field the schema fully describes",
            message=f"422 names {sorted(named - allowed)}; only {sorted(allowed)} have rules"
            f" beyond the schema. Answer: {response.content[:500]!r}",
            case_id=case.id,
        )
    return True


def test_served_document_is_the_one_fuzzed(stack_env):
    """The fuzzing below uses gateway.openapi; the gateway serves exactly that document."""
    served = requests.get(f"{stack_env['GATEWAY_URL']}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.headers["Content-Type"].startswith("application/json")
    assert served.json() == openapi.document()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_conforms_to_the_document(case, stack_env):
    base, token = stack_env["GATEWAY_URL"], stack_env["GATEWAY_API_TOKEN"]
    cursor = with_real_cursor(case, base, token)
    response = case.call_and_validate(
        base_url=base,
        headers={"Authorization": f"Bearer {token}"},
        additional_checks=[positive_422_names_only_semantic_fields],
        timeout=45,
    )
    if cursor == "issued":
        # Valid in every other parameter too (a positive case): nothing to refuse.
        assert response.status_code == 200, response.text
    elif cursor is not None:
        assert response.status_code == 422, (cursor, response.text)
        assert [d["field"] for d in response.json()["error"]["details"]] == ["cursor"]
