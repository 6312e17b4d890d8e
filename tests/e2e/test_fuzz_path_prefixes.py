"""Hostile path prefixes over HTTP: the running gateway answers 422 and writes nothing.

The same strategies as the unit properties of gateway.path_prefixes (tests/hostile_prefixes.py):
traversal in any encoding, backslashes, NUL and other control characters, user-info,
schemes outside ALLOWED_PATH_SCHEMES and internal addresses. Other runs may be written
to the same database meanwhile (the workers, other tests), so "nothing written" is checked
by a marker that only this test's requests carry: in the Idempotency-Key and in the other,
valid, prefix of each request. No run row carries it afterwards.
"""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import rows_marked
from tests.hostile_prefixes import FAMILIES, refused_prefixes

EXAMPLES = 150


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(family_and_value=refused_prefixes(), field=st.sampled_from(["input", "output"]))
def test_every_hostile_prefix_gets_422_and_writes_nothing(
    api, pipelines_db, family_and_value, field
):
    family, value = family_and_value
    marker = f"fuzz-{uuid.uuid4().hex}"
    name = f"{field}_path_prefix"
    other = "output_path_prefix" if field == "input" else "input_path_prefix"
    body = {
        "pipeline": "demo-batch",
        "mode": "BATCH",
        name: value,
        other: f"s3://fuzz-bucket/{marker}/",
    }
    response = api.post_run(body, key=marker)
    assert response.status_code == 422, (value, response.text)
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert {detail["field"] for detail in error["details"]} == {name}, error
    assert {detail["rule"] for detail in error["details"]} & FAMILIES[family][1], error
    assert rows_marked(pipelines_db, marker) == 0


def test_one_hostile_prefix_of_each_family_gets_422_and_writes_nothing(api, pipelines_db):
    """Fixed examples, so that these stay covered whatever the properties draw."""
    samples = [
        ("input_path_prefix", "s3://bucket/%252e%252e/etc"),
        ("input_path_prefix", "s3://bucket/a%5c..%5cb"),
        ("input_path_prefix", "s3://bucket/a%00b"),
        ("output_path_prefix", "s3://user:secret@bucket/out"),
        ("output_path_prefix", "HTTP://example.com/out"),
        ("output_path_prefix", "gs://metadata.google.internal/computeMetadata/v1/"),
        ("input_path_prefix", "s3://169.254.169.254/latest/meta-data/"),
        ("input_path_prefix", "s3://0xa9fea9fe/x"),
        ("input_path_prefix", "s3://localhost/x"),
    ]
    marker = f"fuzz-{uuid.uuid4().hex}"
    for name, value in samples:
        other = "output_path_prefix" if name == "input_path_prefix" else "input_path_prefix"
        body = {
            "pipeline": "demo-batch",
            "mode": "BATCH",
            name: value,
            other: f"s3://fuzz-bucket/{marker}/",
        }
        response = api.post_run(body, key=f"{marker}-{len(value)}")
        assert response.status_code == 422, (value, response.text)
        assert {d["field"] for d in response.json()["error"]["details"]} == {name}, value
    assert rows_marked(pipelines_db, marker) == 0
