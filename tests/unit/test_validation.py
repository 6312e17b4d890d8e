"""Unit tests of client input rules: run requests, path prefixes, list filters, ?wait=."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from batchcore.errors import ValidationFailed
from batchcore.runs.model import NewRun
from gateway.inputs import parse_wait
from gateway.path_prefixes import MAX_PATH_LENGTH, validate_path_prefix
from gateway.validation import (
    MAX_PARAMETERS_BYTES,
    MAX_PARAMETERS_DEPTH,
    ListFilters,
    parse_list_filters,
    parse_run_request,
)
from tests.hostile_prefixes import (
    FAMILIES,
    backslashes,
    control_characters,
    disallowed_schemes,
    internal_addresses,
    refused_prefixes,
    user_infos,
)

SCHEMES = frozenset({"s3", "gs", "abfs", "file"})


def rules(problems: list[dict]) -> set[str]:
    return {problem["rule"] for problem in problems}


def body(**overrides: object) -> dict:
    request = {
        "pipeline": "demo-pipeline",
        "mode": "BATCH",
        "input_path_prefix": "s3://bucket/in/",
        "output_path_prefix": "s3://bucket/out/",
        "parameters": {"threads": 4},
    }
    request.update(overrides)
    return {key: value for key, value in request.items() if value is not ...}


def failure(request: object) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        parse_run_request(request, SCHEMES)
    return caught.value


def field_rules(error: ValidationFailed) -> set[tuple[str, str]]:
    return {(detail["field"], detail["rule"]) for detail in error.details}


def padded(prefix: str, length: int) -> str:
    return prefix + "x" * (length - len(prefix))


# ------------------------------------------------------------------------ path prefixes

GOOD_PREFIXES = [
    "s3://bucket/in/",
    "s3://bucket",
    "s3://bucket/",
    "s3://my-bucket.example/a/b.c/d_e-f",
    "S3://bucket/upper-case-scheme",
    "gs://b/x",
    # abfs: '@' separates container from storage account; it is not user-info.
    "abfs://container@account.dfs.core.windows.net/x",
    "abfs://container@account.dfs.core.windows.net",
    "file:///tmp/data/in",
    "file:///",
    "file://localhost/tmp/data/in",
    "file://LOCALHOST/tmp/data/in",
    "s3://bucket/a%20b/c",
    "s3://bucket/with space/x",
    "s3://bucket/.hidden/x",
    "s3://bucket/a..b/x",
    "s3://bucket/a.../x",
    "s3://bucket/100%25",
    "s3://bucket/données/été",
    "s3://bucket/a%2Fb",
    "s3://2024.01.15/x",  # dotted digits but not an IPv4 address
    "s3://1.2.3.4.5/x",
    "s3://my-localhost/x",  # only the name localhost and names under it are local
    "s3://localhost-data/x",
    "s3://bucket/localhost/metadata",
    "gs://internal/x",
    padded("s3://bucket/", MAX_PATH_LENGTH),
]


@pytest.mark.parametrize("value", GOOD_PREFIXES)
def test_good_prefixes_have_no_problems(value: str) -> None:
    assert validate_path_prefix(value, "input_path_prefix", SCHEMES) == []


BAD_PREFIXES = [
    # (value, a rule it must break)
    ("", "required"),
    (None, "type"),
    (17, "type"),
    (["s3://b/x"], "type"),
    ("bucket/path", "scheme_missing"),
    ("/tmp/data", "scheme_missing"),
    ("://bucket/x", "scheme_missing"),
    ("http://example.com/x", "scheme_not_allowed"),
    ("HTTPS://example.com/x", "scheme_not_allowed"),
    ("hdfs://namenode/x", "scheme_not_allowed"),
    (padded("s3://bucket/", MAX_PATH_LENGTH + 1), "length"),
    (padded("s3://bucket/", 100_000), "length"),
    (" s3://bucket/x", "whitespace"),
    ("s3://bucket/x ", "whitespace"),
    ("s3://bucket/x\u3000", "whitespace"),
    # control characters, literal and percent-encoded
    ("s3://bucket/a\x00b", "control_character"),
    ("s3://bucket/a\nb", "control_character"),
    ("s3://bucket/a\rb", "control_character"),
    ("s3://bucket/a\tb", "control_character"),
    ("s3://bucket/a\x1fb", "control_character"),
    ("s3://bucket/a\x7fb", "control_character"),
    ("s3://bucket/a\x85b", "control_character"),
    ("s3://bucket/a\x9fb", "control_character"),
    ("s3://bucket/a\u2028b", "control_character"),
    ("s3://bucket/a\u2029b", "control_character"),
    ("s3://bucket/a\u202eb", "control_character"),  # right-to-left override
    ("s3://bucket/a\u200bb", "control_character"),  # zero-width space
    ("s3://bucket/a%00b", "control_character"),
    ("s3://bucket/a%0Ab", "control_character"),
    ("s3://bucket/a%250ab", "control_character"),
    ("s3://bucket/a%e2%80%a8b", "control_character"),
    # '..' in every encoding
    ("s3://bucket/../x", "traversal"),
    ("s3://bucket/a/..", "traversal"),
    ("s3://bucket/a/../", "traversal"),
    ("s3://../x", "traversal"),
    ("file:///tmp/../etc/passwd", "traversal"),
    ("s3://bucket/%2e%2e/x", "traversal"),
    ("s3://bucket/%2E%2E/x", "traversal"),
    ("s3://bucket/.%2e/x", "traversal"),
    ("s3://bucket/%2e./x", "traversal"),
    ("s3://bucket/.%2E/x", "traversal"),
    ("s3://bucket/%252e%252e/x", "traversal"),
    ("s3://bucket/%25252e%25252e/x", "traversal"),
    ("s3://bucket/a%2f..%2fx", "traversal"),
    ("s3://bucket/a%2f%2e%2e%2fx", "traversal"),
    ("s3://bucket/a/\\..\\x", "traversal"),
    ("s3://bucket/..\\x", "traversal"),
    ("s3://bucket/a%5c..%5cx", "traversal"),
    ("s3://bucket/\uff0e\uff0e/x", "traversal"),  # fullwidth full stops
    ("s3://bucket/\u2024\u2024/x", "traversal"),  # one dot leaders
    ("s3://bucket/\u2025/x", "traversal"),  # two dot leader
    ("s3://bucket/\ufe52\ufe52/x", "traversal"),  # small full stops
    ("s3://bucket/\u3002\u3002/x", "traversal"),  # ideographic full stops
    ("s3://bucket/%ef%bc%8e%ef%bc%8e/x", "traversal"),  # encoded fullwidth dots
    ("s3://bucket/\uff05\uff12\uff45\uff05\uff12\uff45/x", "traversal"),  # fullwidth %2e%2e
    ("s3://bucket/a\uff0f..\uff0fx", "traversal"),  # fullwidth solidus
    ("s3://bucket/..;/x", "traversal"),
    ("s3://bucket/..;jsessionid=1/x", "traversal"),
    ("s3://bucket/.. /x", "traversal"),
    ("s3://bucket/.../x", "traversal"),
    # '.' segments
    ("s3://bucket/./x", "dot_segment"),
    ("s3://bucket/a/.", "dot_segment"),
    ("s3://bucket/%2e/x", "dot_segment"),
    ("s3://bucket/%252E/x", "dot_segment"),
    ("s3://bucket/\uff0e/x", "dot_segment"),
    # encodings that cannot be decoded to text
    ("s3://bucket/%c0%ae%c0%ae/x", "encoding"),  # overlong '.'
    ("s3://bucket/%c0%2e/x", "encoding"),
    ("s3://bucket/%e0%80%ae/x", "encoding"),  # three-byte overlong '.'
    ("s3://bucket/%25c0%25ae/x", "encoding"),  # double-encoded overlong
    ("s3://bucket/%ff/x", "encoding"),
    ("s3://bucket/%ed%a0%80/x", "encoding"),  # encoded surrogate
    ("s3://bucket/%u002e%u002e/x", "encoding"),  # IIS-style %u
    ("s3://bucket/%2/x", "encoding"),
    ("s3://bucket/%zz/x", "encoding"),
    ("s3://bucket/50%", "encoding"),
    ("s3://bucket/\ud800", "encoding"),  # lone surrogate in the JSON string
    ("s3://bucket/%" + "25" * 6 + "2e/x", "encoding"),  # encoded too many times over
    # backslashes anywhere
    ("s3://bucket\\x", "backslash"),
    ("s3://bucket/a\\b", "backslash"),
    ("s3://bucket/a%5cb", "backslash"),
    ("s3://bucket/a\uff3cb", "backslash"),
    # user-info
    ("s3://user@bucket/x", "userinfo"),
    ("s3://user:pass@bucket/x", "userinfo"),
    ("s3://@bucket/x", "userinfo"),
    ("gs://user@b/x", "userinfo"),
    ("s3://user%40bucket/x", "userinfo"),
    ("file://user@localhost/tmp", "file_host"),
    ("abfs://user:pass@account.dfs.core.windows.net/x", "userinfo"),
    ("abfs://user:pass@container@account.dfs.core.windows.net/x", "userinfo"),
    ("abfs://a@b@account.dfs.core.windows.net/x", "userinfo"),
    # buckets and hosts
    ("s3:///x", "bucket_missing"),
    ("s3://", "bucket_missing"),
    ("s3:bucket/x", "bucket_missing"),
    ("gs:///x", "bucket_missing"),
    ("abfs://@account.dfs.core.windows.net/x", "bucket_missing"),
    ("abfs:///x", "bucket_missing"),
    ("file://host/tmp/x", "file_host"),
    ("file://localhost:8080/tmp/x", "file_host"),
    ("file:/tmp/x", "file_host"),
    ("file:tmp/x", "file_host"),
    ("file://", "file_host"),
    ("file://localhost", "file_host"),
    ("s3://bucket/x?versionId=1", "query_or_fragment"),
    ("s3://bucket/x#frag", "query_or_fragment"),
    ("s3://bucket?x", "query_or_fragment"),
    ("s3://bucket/a%3fb", "query_or_fragment"),
    ("s3://bucket/a%23b", "query_or_fragment"),
    ("s3://bucket:443/x", "port"),
    ("s3://bucket:/x", "port"),
    ("abfs://c@account.dfs.core.windows.net:443/x", "port"),
    ("s3://127.0.0.1/x", "ip_host"),
    ("s3://127.0.0.1./x", "ip_host"),
    ("s3://127.0.0.1:9000/x", "ip_host"),
    ("gs://169.254.169.254/latest/meta-data", "ip_host"),
    ("s3://10.0.0.1", "ip_host"),
    ("s3://[::1]/x", "ip_host"),
    ("s3://[fd00::1]:9000/x", "ip_host"),
    ("s3://::1/x", "ip_host"),
    ("s3://2130706433/x", "ip_host"),
    ("s3://0x7f000001/x", "ip_host"),
    ("s3://0x7f.1/x", "ip_host"),
    ("s3://0177.0.0.1/x", "ip_host"),
    ("s3://127.1/x", "ip_host"),
    ("s3://%31%32%37.0.0.1/x", "ip_host"),
    ("s3://\uff11\uff12\uff17.\uff10.\uff10.\uff11/x", "ip_host"),  # fullwidth digits
    ("abfs://container@10.0.0.1/x", "ip_host"),
    # local and cloud-metadata host names (found missing by the properties below)
    ("s3://localhost/x", "internal_host"),
    ("s3://LocalHost./x", "internal_host"),
    ("s3://localhost:9000/x", "internal_host"),
    ("s3://bucket.localhost/x", "internal_host"),
    ("gs://metadata/computeMetadata/v1/", "internal_host"),
    ("gs://metadata.google.internal/computeMetadata/v1/", "internal_host"),
    ("gs://metadata.goog/x", "internal_host"),
    ("s3://instance-data/latest/meta-data", "internal_host"),
    ("s3://printer.local/x", "internal_host"),
    ("s3://%6c%6f%63%61%6c%68%6f%73%74/x", "internal_host"),
    ("s3://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/x", "internal_host"),
    ("s3://a\u3002localhost/x", "internal_host"),
    ("abfs://container@localhost/x", "internal_host"),
    ("abfs://container@metadata.google.internal/x", "internal_host"),
]


@pytest.mark.parametrize(("value", "rule"), BAD_PREFIXES)
def test_bad_prefixes_break_their_rule(value: object, rule: str) -> None:
    problems = validate_path_prefix(value, "input_path_prefix", SCHEMES)
    assert rule in rules(problems)
    for problem in problems:
        assert set(problem) == {"field", "rule", "message"}
        assert problem["field"] == "input_path_prefix"
        assert problem["message"].startswith("input_path_prefix: ")


def test_scheme_not_allowed_message_names_scheme_and_allowed_ones() -> None:
    [problem] = validate_path_prefix("http://example.com/x", "input_path_prefix", SCHEMES)
    assert problem == {
        "field": "input_path_prefix",
        "rule": "scheme_not_allowed",
        "message": "input_path_prefix: scheme 'http' is not allowed;"
        " allowed schemes are abfs, file, gs, s3",
    }


def test_allowed_schemes_come_from_the_caller() -> None:
    assert validate_path_prefix("gs://b/x", "f", frozenset({"s3"}))[0]["rule"] == (
        "scheme_not_allowed"
    )
    assert validate_path_prefix("S3://b/x", "f", frozenset({"S3"})) == []


def test_several_problems_of_one_prefix_are_all_reported() -> None:
    problems = validate_path_prefix(
        "http://user@127.0.0.1/../a\\b?x", "output_path_prefix", SCHEMES
    )
    assert {
        "scheme_not_allowed",
        "userinfo",
        "ip_host",
        "traversal",
        "backslash",
        "query_or_fragment",
    } <= rules(problems)
    assert len(problems) == len(rules(problems)), "one problem per rule"


def test_length_boundary() -> None:
    assert validate_path_prefix(padded("s3://b/", 1024), "f", SCHEMES) == []
    assert rules(validate_path_prefix(padded("s3://b/", 1025), "f", SCHEMES)) == {"length"}


# ------------------------------------------------------------------------ run requests


def test_valid_request_is_parsed() -> None:
    assert parse_run_request(body(), SCHEMES) == NewRun(
        pipeline="demo-pipeline",
        mode="BATCH",
        input_path_prefix="s3://bucket/in/",
        output_path_prefix="s3://bucket/out/",
        parameters={"threads": 4},
    )


def test_parameters_default_to_empty_object() -> None:
    request = parse_run_request(body(parameters=...), SCHEMES)
    assert request.parameters == {}
    hash(request)  # frozen and hashable despite the dict


@pytest.mark.parametrize("request_body", [[], "x", None, 5, True, [{"pipeline": "p"}]])
def test_body_must_be_an_object(request_body: object) -> None:
    error = failure(request_body)
    assert field_rules(error) == {("body", "type")}
    assert "JSON object" in error.message


@pytest.mark.parametrize("name", ["pipeline", "mode", "input_path_prefix", "output_path_prefix"])
def test_required_fields(name: str) -> None:
    assert field_rules(failure(body(**{name: ...}))) == {(name, "required")}


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (5, "type"),
        (None, "type"),
        (["demo"], "type"),
        ("", "length"),
        ("a" * 101, "length"),
        ("Demo", "pattern"),
        ("-demo", "pattern"),
        ("_demo", "pattern"),
        (".demo", "pattern"),
        ("demo pipeline", "pattern"),
        ("demo/x", "pattern"),
        ("demo\n", "pattern"),
        ("démo", "pattern"),
        ("demo\uff41", "pattern"),
    ],
)
def test_bad_pipeline(value: object, rule: str) -> None:
    assert field_rules(failure(body(pipeline=value))) == {("pipeline", rule)}


@pytest.mark.parametrize("value", ["a", "a" * 100, "0", "demo_1.2-x", "a-", "9.9"])
def test_good_pipeline(value: str) -> None:
    assert parse_run_request(body(pipeline=value), SCHEMES).pipeline == value


@pytest.mark.parametrize(
    ("value", "rule"),
    [("batch", "enum"), ("STREAM", "enum"), ("", "enum"), (" BATCH", "enum"), (1, "type")],
)
def test_bad_mode(value: object, rule: str) -> None:
    assert field_rules(failure(body(mode=value))) == {("mode", rule)}


def test_parameters_size_boundary() -> None:
    overhead = len('{"k":""}')
    at_limit = {"k": "x" * (MAX_PARAMETERS_BYTES - overhead)}
    assert len(json.dumps(at_limit, separators=(",", ":"))) == MAX_PARAMETERS_BYTES
    assert parse_run_request(body(parameters=at_limit), SCHEMES).parameters == at_limit
    over = {"k": "x" * (MAX_PARAMETERS_BYTES - overhead + 1)}
    assert field_rules(failure(body(parameters=over))) == {("parameters", "size")}


def test_parameters_size_counts_utf8_bytes() -> None:
    # 'é' is two bytes: half as many characters already reach the limit.
    over = {"k": "é" * (MAX_PARAMETERS_BYTES // 2)}
    assert field_rules(failure(body(parameters=over))) == {("parameters", "size")}


def nested(depth: int, container: str = "object") -> object:
    value: object = {} if container == "object" else []
    for _ in range(depth - 1):
        value = {"a": value} if container == "object" else [value]
    return value


@pytest.mark.parametrize("container", ["object", "array"])
def test_parameters_depth_boundary(container: str) -> None:
    inner = nested(MAX_PARAMETERS_DEPTH - 1, container)
    assert parse_run_request(body(parameters={"p": inner}), SCHEMES)
    too_deep = {"p": nested(MAX_PARAMETERS_DEPTH, container)}
    assert field_rules(failure(body(parameters=too_deep))) == {("parameters", "depth")}


def test_very_deep_parameters_do_not_recurse() -> None:
    error = failure(body(parameters=nested(50_000)))
    assert field_rules(error) == {("parameters", "depth")}


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ([], "type"),
        ("x", "type"),
        (None, "type"),
        (3, "type"),
        ({1: "a"}, "type"),
        ({"a": {1, 2}}, "type"),
        ({"a": float("nan")}, "not_finite"),
        ({"a": [float("inf")]}, "not_finite"),
        ({"a": "x\x00y"}, "control_character"),
        ({"a\x00": 1}, "control_character"),
        ({"a": "\udc80"}, "encoding"),
    ],
)
def test_bad_parameters(value: object, rule: str) -> None:
    assert field_rules(failure(body(parameters=value))) == {("parameters", rule)}


def test_unknown_fields_are_each_named() -> None:
    error = failure(body(priority=1, callback_url="http://x"))
    assert field_rules(error) == {
        ("priority", "unknown_field"),
        ("callback_url", "unknown_field"),
    }
    assert error.message == "The request has 2 invalid fields: callback_url, priority."


def test_many_unknown_fields_are_capped() -> None:
    error = failure(body(**{f"junk{i}": i for i in range(1000)}))
    assert len(error.details) <= 60
    assert ("body", "unknown_field") in field_rules(error)


def test_every_bad_field_is_listed() -> None:
    error = failure(
        body(
            pipeline="Bad Name",
            mode="STREAM",
            input_path_prefix="http://example.com/../in",
            output_path_prefix="s3://user@bucket/%2e%2e/out",
            parameters=[1],
            extra=True,
        )
    )
    assert field_rules(error) == {
        ("pipeline", "pattern"),
        ("mode", "enum"),
        ("input_path_prefix", "scheme_not_allowed"),
        ("input_path_prefix", "traversal"),
        ("output_path_prefix", "userinfo"),
        ("output_path_prefix", "traversal"),
        ("parameters", "type"),
        ("extra", "unknown_field"),
    }
    assert error.message == (
        "The request has 6 invalid fields:"
        " extra, input_path_prefix, mode, output_path_prefix, parameters, pipeline."
    )
    assert all(set(detail) == {"field", "rule", "message"} for detail in error.details)
    assert error.code == "validation_failed"


def test_summary_for_two_fields() -> None:
    error = failure(body(mode="batch", input_path_prefix="http://x/in"))
    assert error.message == "The request has 2 invalid fields: input_path_prefix, mode."


def test_summary_for_one_field() -> None:
    assert failure(body(mode="x")).message == "The request has 1 invalid field: mode."


@pytest.mark.parametrize(
    ("source", "target", "rule"),
    [
        ("s3://b/a", "s3://b/a", "same_as_input"),
        ("s3://b/a", "s3://b/a/", "same_as_input"),
        ("s3://b/a/", "S3://B/a//", "same_as_input"),
        ("s3://b/a", "s3://b/%61", "same_as_input"),
        ("file:///tmp/x", "file://localhost/tmp/x", "same_as_input"),
        (
            "abfs://c@acct.dfs.core.windows.net/x",
            "abfs://C@ACCT.dfs.core.windows.net/x/",
            "same_as_input",
        ),
        ("s3://b/a", "s3://b/a/x", "nested"),
        ("s3://b/a/x", "s3://b/a", "nested"),
        ("s3://b", "s3://b/out", "nested"),
        ("s3://b/out/", "s3://b", "nested"),
        ("s3://b/a", "s3://B/a/x/y/", "nested"),
        ("file:///tmp", "file:///tmp/out", "nested"),
        ("file:///", "file:///tmp/out", "nested"),
    ],
)
def test_output_must_not_equal_or_nest_with_input(source: str, target: str, rule: str) -> None:
    error = failure(body(input_path_prefix=source, output_path_prefix=target))
    assert field_rules(error) == {("output_path_prefix", rule)}


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("s3://b/a", "s3://b/ab"),
        ("s3://b/ab", "s3://b/a"),
        ("s3://b/a/x", "s3://b/a/y"),
        ("s3://b1/a", "s3://b2/a"),
        ("s3://b/a", "gs://b/a"),
        ("s3://b/a", "s3://b/A"),
        ("file:///tmp/in", "file:///tmp/out"),
    ],
)
def test_separate_locations_are_accepted(source: str, target: str) -> None:
    request = parse_run_request(body(input_path_prefix=source, output_path_prefix=target), SCHEMES)
    assert (request.input_path_prefix, request.output_path_prefix) == (source, target)


def test_invalid_prefixes_are_not_compared() -> None:
    error = failure(body(input_path_prefix="s3://b/../a", output_path_prefix="s3://b/../a"))
    assert field_rules(error) == {
        ("input_path_prefix", "traversal"),
        ("output_path_prefix", "traversal"),
    }


# ------------------------------------------------------------------------- list filters


def list_failure(args: object) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        parse_list_filters(args)
    return caught.value


def test_list_filter_defaults() -> None:
    assert parse_list_filters({}) == ListFilters(statuses=(), pipeline=None, limit=50, cursor=None)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"status": "RUNNING"}, ListFilters(statuses=("RUNNING",))),
        (
            {"status": "RUNNING,FAILED"},
            ListFilters(statuses=("RUNNING", "FAILED")),
        ),
        (
            {"status": "PENDING, SUBMITTED,RUNNING,COMPLETED,FAILED,PENDING"},
            ListFilters(statuses=("PENDING", "SUBMITTED", "RUNNING", "COMPLETED", "FAILED")),
        ),
        (
            MultiDict([("status", "RUNNING"), ("status", "FAILED")]),
            ListFilters(statuses=("RUNNING", "FAILED")),
        ),
        ({"pipeline": "demo-pipeline"}, ListFilters(pipeline="demo-pipeline")),
        ({"limit": "1"}, ListFilters(limit=1)),
        ({"limit": "200"}, ListFilters(limit=200)),
        ({"limit": "007"}, ListFilters(limit=7)),
        ({"cursor": "opaque=="}, ListFilters(cursor="opaque==")),
        ({"cursor": "c" * 512}, ListFilters(cursor="c" * 512)),
        (
            MultiDict([("status", "FAILED"), ("pipeline", "p"), ("limit", "10"), ("cursor", "x")]),
            ListFilters(statuses=("FAILED",), pipeline="p", limit=10, cursor="x"),
        ),
    ],
)
def test_good_list_filters(args: object, expected: ListFilters) -> None:
    assert parse_list_filters(args) == expected


@pytest.mark.parametrize(
    ("args", "field", "rule"),
    [
        ({"status": "running"}, "status", "enum"),
        ({"status": "DONE"}, "status", "enum"),
        ({"status": ""}, "status", "enum"),
        ({"status": "RUNNING,"}, "status", "enum"),
        ({"pipeline": "Bad"}, "pipeline", "pattern"),
        ({"pipeline": ""}, "pipeline", "length"),
        ({"pipeline": "a" * 101}, "pipeline", "length"),
        ({"limit": "0"}, "limit", "range"),
        ({"limit": "201"}, "limit", "range"),
        ({"limit": "-1"}, "limit", "range"),
        ({"limit": "9" * 5000}, "limit", "range"),
        ({"limit": "abc"}, "limit", "type"),
        ({"limit": "1.5"}, "limit", "type"),
        ({"limit": ""}, "limit", "type"),
        ({"limit": " 5"}, "limit", "type"),
        ({"limit": "\u0665"}, "limit", "type"),  # Arabic-Indic digit five
        ({"cursor": "c" * 513}, "cursor", "length"),
        ({"cursor": ""}, "cursor", "length"),
        ({"sort": "asc"}, "sort", "unknown_field"),
        (MultiDict([("limit", "1"), ("limit", "2")]), "limit", "repeated"),
    ],
)
def test_bad_list_filters(args: object, field: str, rule: str) -> None:
    assert field_rules(list_failure(args)) == {(field, rule)}


def test_every_bad_list_filter_is_listed() -> None:
    error = list_failure({"status": "NOPE", "limit": "0", "pipeline": "X", "page": "2"})
    assert field_rules(error) == {
        ("status", "enum"),
        ("limit", "range"),
        ("pipeline", "pattern"),
        ("page", "unknown_field"),
    }
    assert error.message == "The query has 4 invalid parameters: limit, page, pipeline, status."


def test_many_unknown_query_parameters_are_capped() -> None:
    error = list_failure({f"junk{i}": "1" for i in range(1000)})
    assert len(error.details) == 51
    assert error.details[-1]["field"] == "query"
    assert "950 more unknown query parameters" in error.details[-1]["message"]


def test_list_limit_bounds_are_configurable() -> None:
    assert parse_list_filters({}, default_limit=10).limit == 10
    with pytest.raises(ValidationFailed):
        parse_list_filters({"limit": "20"}, max_limit=10)


# ---------------------------------------------------------------------------------- wait


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 0.0),
        ("0", 0.0),
        ("30", 30.0),
        ("2.5", 2.5),
        ("30.0", 30.0),
        (".5", 0.5),
        ("1.", 1.0),
        # Exponents, as clients serialize numbers (found by fuzzing: 5.960464477539063e-08).
        ("1e1", 10.0),
        ("3E1", 30.0),
        ("5.960464477539063e-08", 5.960464477539063e-08),
        ("1e-999", 0.0),
    ],
)
def test_good_wait(value: str | None, expected: float) -> None:
    assert parse_wait(value) == expected


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("31", "range"),
        ("30.001", "range"),
        ("-1", "range"),
        ("abc", "type"),
        ("", "type"),
        ("nan", "type"),
        ("inf", "type"),
        ("1e2", "range"),
        ("1e999", "range"),
        ("-1e-5", "range"),
        ("1e", "type"),
        ("1e+", "type"),
        ("e1", "type"),
        (" 5", "type"),
        ("1_0", "type"),
        ("\u0665", "type"),
    ],
)
def test_bad_wait(value: str, rule: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_wait(value)
    assert field_rules(caught.value) == {("wait", rule)}
    assert caught.value.message == "The query has 1 invalid parameter: wait."


# ------------------------------------------------------------------------------ properties

DOT_DOT_ENCODINGS = [
    "..",
    "%2e%2e",
    "%2E%2E",
    ".%2e",
    "%2e.",
    "%252e%252e",
    "%25252E%25252E",
    "\uff0e\uff0e",
    "\u2024\u2024",
    "\u2025",
    "\ufe52\ufe52",
    "%ef%bc%8e%ef%bc%8e",
    "%c0%ae%c0%ae",
    "%e0%80%ae%e0%80%ae",
    "..;",
    ".. ",
]
SEPARATORS = ["/", "\\", "%2f", "%2F", "%5c", "%252f", "\uff0f", "\uff3c"]
CONTROL_CHARACTERS = [chr(code) for code in [*range(0x20), *range(0x7F, 0xA0)]] + [
    "\u2028",
    "\u2029",
]


@settings(max_examples=400, database=None, deadline=None)
@given(
    scheme=st.sampled_from(["s3://bucket/", "gs://b/", "file:///tmp/", "abfs://c@a.x/"]),
    before=st.text(max_size=40),
    after=st.text(max_size=40),
    opening=st.sampled_from(SEPARATORS),
    dots=st.sampled_from(DOT_DOT_ENCODINGS),
    closing=st.sampled_from([*SEPARATORS, ""]),
)
def test_dot_dot_segment_in_any_encoding_is_refused(
    scheme: str, before: str, after: str, opening: str, dots: str, closing: str
) -> None:
    tail = closing + after if closing else ""
    value = scheme + before + opening + dots + tail
    assert validate_path_prefix(value, "input_path_prefix", SCHEMES) != []


@settings(
    max_examples=400,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    before=st.text(max_size=60),
    control=st.sampled_from(CONTROL_CHARACTERS),
    after=st.text(max_size=60),
    prefixed=st.booleans(),
)
def test_any_control_character_is_refused(
    before: str, control: str, after: str, prefixed: bool
) -> None:
    value = ("s3://bucket/" if prefixed else "") + before + control + after
    assert validate_path_prefix(value, "input_path_prefix", SCHEMES) != []


SAFE_SEGMENT = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-éü", min_size=1, max_size=12
).map(lambda segment: segment if segment.strip(".") else "x")


@settings(max_examples=200, database=None, deadline=None)
@given(
    scheme=st.sampled_from(["s3://bucket", "gs://my.bucket", "file://", "abfs://c@acct.dfs.x"]),
    segments=st.lists(SAFE_SEGMENT, min_size=1, max_size=8),
    trailing=st.booleans(),
)
def test_plain_paths_are_accepted(scheme: str, segments: list[str], trailing: bool) -> None:
    value = scheme + "/" + "/".join(segments) + ("/" if trailing else "")
    assert validate_path_prefix(value, "input_path_prefix", SCHEMES) == []


# Each family of hostile prefixes (tests/hostile_prefixes.py) is refused for its own rule,
# in every encoding; and a request carrying one is refused naming that field.

FAMILY_SETTINGS = settings(
    max_examples=200,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FAMILY_SETTINGS
@given(value=backslashes())
def test_backslash_in_any_encoding_is_refused(value: str) -> None:
    assert "backslash" in rules(validate_path_prefix(value, "input_path_prefix", SCHEMES))


@FAMILY_SETTINGS
@given(value=control_characters())
def test_nul_and_control_characters_literal_or_encoded_are_refused(value: str) -> None:
    found = rules(validate_path_prefix(value, "input_path_prefix", SCHEMES))
    # A leading or trailing space-like control is (also) a whitespace problem.
    assert found & {"control_character", "whitespace"}, value


@FAMILY_SETTINGS
@given(value=user_infos())
def test_user_info_in_any_encoding_is_refused(value: str) -> None:
    assert "userinfo" in rules(validate_path_prefix(value, "input_path_prefix", SCHEMES))


@FAMILY_SETTINGS
@given(value=disallowed_schemes())
def test_schemes_outside_the_allowed_ones_are_refused(value: str) -> None:
    found = rules(validate_path_prefix(value, "input_path_prefix", SCHEMES))
    assert found & {"scheme_not_allowed", "scheme_missing"}, value


@FAMILY_SETTINGS
@given(
    allowed=st.sets(st.sampled_from(["s3", "gs", "abfs", "file", "hdfs", "s3a"]), min_size=1),
    scheme=st.sampled_from(["s3", "gs", "abfs", "file", "hdfs", "s3a", "http"]),
    upper=st.booleans(),
)
def test_only_the_configured_schemes_are_accepted(
    allowed: set[str], scheme: str, upper: bool
) -> None:
    head = {"abfs": "abfs://c@acct.dfs.core.windows.net", "file": "file://"}.get(
        scheme, f"{scheme}://bucket"
    )
    value = (head.upper()[: len(scheme)] if upper else scheme) + head[len(scheme) :] + "/in/x"
    found = rules(validate_path_prefix(value, "input_path_prefix", frozenset(allowed)))
    if scheme in allowed:
        assert found == set(), value
    else:
        assert found == {"scheme_not_allowed"}, value


@FAMILY_SETTINGS
@given(value=internal_addresses())
def test_internal_addresses_are_refused(value: str) -> None:
    found = rules(validate_path_prefix(value, "input_path_prefix", SCHEMES))
    if value.startswith("file:"):
        assert "file_host" in found, value
    else:
        assert found & {"ip_host", "internal_host"}, value


@settings(max_examples=300, database=None, deadline=None)
@given(family_and_value=refused_prefixes(), field=st.sampled_from(["input", "output"]))
def test_a_request_with_a_hostile_prefix_is_refused_naming_that_field(
    family_and_value: tuple[str, str], field: str
) -> None:
    family, value = family_and_value
    name = f"{field}_path_prefix"
    error = failure(body(**{name: value}))
    assert {detail["field"] for detail in error.details} == {name}
    assert {detail["rule"] for detail in error.details} & FAMILIES[family][1], value
