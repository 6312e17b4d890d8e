"""Issue 15: the rules of a notify_url, on POST and for the addresses reached at delivery."""

from __future__ import annotations

import ipaddress

import pytest

from batchcore.errors import ValidationFailed
from batchcore.notifications.urls import is_refused_address, url_problems
from gateway.validation import parse_run_request

ALLOWED = frozenset({"127.0.0.1", "localhost"})
BODY = {
    "pipeline": "demo-batch",
    "mode": "BATCH",
    "input_path_prefix": "s3://in/a",
    "output_path_prefix": "s3://out/a",
}


def rules(url, allowed=frozenset()) -> set[str]:
    return {rule for rule, _ in url_problems(url, allowed)}


@pytest.mark.parametrize(
    "url",
    [
        "https://receiver.example.com/hooks",
        "https://receiver.example.com:8443/hooks?run=1",
        "https://93.184.216.34/hooks",
        "https://[2606:2800:220:1:248:1893:25c8:1946]/x",
    ],
)
def test_public_https_urls_are_accepted(url):
    assert url_problems(url, frozenset()) == []


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://receiver.example.com/hooks", "scheme"),
        ("ftp://receiver.example.com/hooks", "scheme"),
        ("https://user:pw@receiver.example.com/", "user_info"),
        ("https://user@receiver.example.com/", "user_info"),
        ("https://receiver.example.com/#frag", "fragment"),
        ("https:///nohost", "format"),
        ("https://receiver.example.com:99999/", "format"),
        ("https://exa mple.com/", "control_character"),
        ("https://example.com/\n", "control_character"),
        ("https://127.0.0.1/", "private_address"),
        ("https://10.1.2.3/", "private_address"),
        ("https://192.168.0.10/", "private_address"),
        ("https://172.16.5.4/", "private_address"),
        ("https://169.254.169.254/latest/meta-data/", "private_address"),
        ("https://100.100.100.200/", "private_address"),
        ("https://[::1]/", "private_address"),
        ("https://[fd00:ec2::254]/", "private_address"),
        ("https://[::ffff:127.0.0.1]/", "private_address"),
        ("https://0.0.0.0/", "private_address"),
        ("https://localhost/", "private_address"),
        ("https://metadata.google.internal/", "private_address"),
        ("https://printer.local/", "private_address"),
        ("https://" + "a" * 2048, "length"),
        (42, "type"),
        ("", "length"),
    ],
)
def test_hostile_urls_are_refused_by_rule(url, rule):
    assert rule in rules(url)


def test_an_allowed_host_may_be_local_and_use_http():
    assert rules("http://127.0.0.1:9000/hook", ALLOWED) == set()
    assert rules("http://localhost:9000/hook", ALLOWED) == set()
    # user-info is refused even for an allowed host; other local hosts stay refused.
    assert rules("http://u:p@localhost:9000/", ALLOWED) == {"user_info"}
    assert rules("http://10.0.0.1/", ALLOWED) == {"scheme", "private_address"}


def test_exactly_2048_characters_is_the_limit():
    url = "https://example.com/" + "a" * (2048 - len("https://example.com/"))
    assert url_problems(url, frozenset()) == []
    assert rules(url + "a") == {"length"}


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("8.8.8.8", False),
        ("2001:4860:4860::8888", False),
        ("127.0.0.53", True),
        ("10.0.0.1", True),
        ("169.254.1.1", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("::ffff:10.0.0.1", True),
        ("2002:7f00:1::", True),  # 6to4 of 127.0.0.1
        ("224.0.0.1", True),
        ("240.0.0.1", True),
    ],
)
def test_refused_addresses(address, refused):
    assert is_refused_address(ipaddress.ip_address(address)) is refused


def test_post_names_notify_url_in_a_422_detail():
    with pytest.raises(ValidationFailed) as caught:
        parse_run_request({**BODY, "notify_url": "http://10.0.0.1/x"}, frozenset({"s3"}))
    fields = {(d["field"], d["rule"]) for d in caught.value.details}
    assert ("notify_url", "scheme") in fields
    assert ("notify_url", "private_address") in fields


def test_post_accepts_notify_url_and_keeps_it():
    request = parse_run_request(
        {**BODY, "notify_url": "http://127.0.0.1:9/x"}, frozenset({"s3"}), ALLOWED
    )
    assert request.notify_url == "http://127.0.0.1:9/x"
    assert parse_run_request(BODY, frozenset({"s3"})).notify_url is None
    assert parse_run_request({**BODY, "notify_url": None}, frozenset({"s3"})).notify_url is None


def test_a_request_without_notify_url_keeps_its_fingerprint_and_one_with_it_differs():
    import hashlib
    import json

    from batchcore.runs.model import NewRun

    new = NewRun("demo-batch", "BATCH", "s3://in/a", "s3://out/a", {"k": 1})
    before = json.dumps(
        ["demo-batch", "BATCH", "s3://in/a", "s3://out/a", {"k": 1}],
        sort_keys=True,
        separators=(",", ":"),
    )
    assert new.fingerprint() == hashlib.sha256(before.encode()).hexdigest()
    hooked = NewRun(
        "demo-batch", "BATCH", "s3://in/a", "s3://out/a", {"k": 1}, notify_url="https://e.com/"
    )
    assert hooked.fingerprint() != new.fingerprint()
