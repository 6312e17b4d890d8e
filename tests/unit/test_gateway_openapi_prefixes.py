"""The path prefixes' schema says what JSON Schema can (allowed schemes, shape, characters,
length), so that a schema-valid prefix is refused only for rules its description names."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import openapi
from gateway.path_prefixes import MAX_PATH_LENGTH, validate_path_prefix
from tests.unit.test_gateway_http import make_app

DEFAULT_SCHEMES = ("abfs", "file", "gs", "s3")
# Rules beyond what a pattern can say; the field's description names each in words.
WORDED_RULES = {
    "traversal": "'..'",
    "dot_segment": "'.' segment",
    "userinfo": "user-info",
    "ip_host": "IP host",
    "port": "port",
    "internal_host": "local or cloud-metadata host",
    "encoding": "percent-encoding",
    "control_character": "control characters",
    "whitespace": "whitespace",
}


def prefix_schema(doc: dict, field: str = "input_path_prefix") -> dict:
    return doc["components"]["schemas"]["RunRequest"]["properties"][field]


def test_the_prefix_schema_has_a_pattern_of_the_allowed_schemes():
    for field in ("input_path_prefix", "output_path_prefix"):
        schema = prefix_schema(openapi.document(), field)
        assert schema["maxLength"] == MAX_PATH_LENGTH
        pattern = re.compile(schema["pattern"])
        assert pattern.search("s3://bucket/in/") and pattern.search("file:///data/in/")
        for refused in ("bucket/in/", "/data/in", "http://host/in/", "s3:/bucket/in", "s3:bucket"):
            assert not pattern.search(refused), refused
            assert validate_path_prefix(refused, field, DEFAULT_SCHEMES)
    for rule, words in WORDED_RULES.items():
        assert words in schema["description"], rule


def test_the_served_pattern_follows_allowed_path_schemes():
    app = make_app(allowed_path_schemes=frozenset({"s3", "hdfs"}))
    doc = app.test_client().get("/openapi.json").get_json()
    pattern = re.compile(prefix_schema(doc)["pattern"])
    assert pattern.search("hdfs://cluster/in/") and pattern.search("S3://bucket/in/")
    assert not pattern.search("gs://bucket/in/")
    assert "hdfs, s3" in prefix_schema(doc)["description"]


PATTERN = prefix_schema(openapi.document())["pattern"]


@settings(max_examples=400, deadline=None)
@given(st.from_regex(PATTERN, fullmatch=True).filter(lambda v: len(v) <= MAX_PATH_LENGTH))
def test_a_schema_valid_prefix_is_refused_only_for_worded_rules(value):
    rules = {p["rule"] for p in validate_path_prefix(value, "input_path_prefix", DEFAULT_SCHEMES)}
    assert rules <= set(WORDED_RULES), (value, rules)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=40).map(lambda tail: "s3" + tail) | st.text(max_size=40))
def test_a_prefix_outside_the_pattern_is_refused(value):
    if re.search(PATTERN, value) is None and value:
        assert validate_path_prefix(value, "input_path_prefix", DEFAULT_SCHEMES), value


@pytest.mark.parametrize("value", ["S3://Bucket/in/", "FILE://localhost/data/", "gs://b/%41/"])
def test_the_pattern_takes_what_the_gateway_takes(value):
    assert not validate_path_prefix(value, "input_path_prefix", DEFAULT_SCHEMES)
    assert re.search(PATTERN, value)
