"""Issue 12.13: the proxy's configuration agrees with the gateway and with compose.yaml.

One renderer (stack/proxy.py) writes the local stack's nginx.conf and deploy/nginx/nginx.conf;
these tests read the text and the compose file (no nginx or Docker needed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from gateway import MAX_BODY_BYTES
from gateway.errors import HTTP_MESSAGES
from gateway.inputs import MAX_WAIT_SECONDS
from stack import proxy

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
STACK_CONF = proxy.render("127.0.0.1:18000", "127.0.0.1:18001", "/tmp/x", "nobody nogroup")


def directive(conf: str, name: str) -> list[str]:
    """The values of every `name ...;` line in `conf`."""
    return re.findall(rf"^\s*{name}\s+([^;{{}}]*);", conf, flags=re.MULTILINE)


def seconds(value: str) -> int:
    assert value.endswith("s"), value
    return int(value[:-1])


def test_deploy_nginx_conf_is_the_renderers_output():
    assert proxy.COMPOSE_CONF.read_text() == proxy.compose_config(), (
        "deploy/nginx/nginx.conf is stale: write proxy.compose_config() to it"
    )


def test_the_body_limit_is_the_gateways():
    (limit,) = directive(STACK_CONF, "client_max_body_size")
    assert limit == "1m" and MAX_BODY_BYTES == 1024 * 1024


def test_slow_clients_are_cut_off_and_the_longest_request_is_not():
    for name in ("client_header_timeout", "client_body_timeout"):
        assert seconds(directive(STACK_CONF, name)[0]) == proxy.CLIENT_TIMEOUT_SECONDS <= 15
    assert directive(STACK_CONF, "send_timeout")
    # ?wait= holds a POST up to MAX_WAIT_SECONDS, plus a Conductor start and a cleanup call.
    (read,) = directive(STACK_CONF, "proxy_read_timeout")
    assert seconds(read) > MAX_WAIT_SECONDS + 2 * 10 + 10


def test_buffering_keepalive_and_forwarded_headers():
    assert directive(STACK_CONF, "proxy_buffering") == ["on"]
    assert directive(STACK_CONF, "proxy_request_buffering") == ["on"]
    assert directive(STACK_CONF, "proxy_http_version") == ["1.1"]
    assert directive(STACK_CONF, "keepalive") == [str(proxy.UPSTREAM_KEEPALIVE)]
    headers = directive(STACK_CONF, "proxy_set_header")
    # Replaced, not appended to: the gateway trusts exactly one hop (gateway/wsgi.py).
    assert "X-Forwarded-For $remote_addr" in headers
    assert "X-Forwarded-Proto $scheme" in headers
    assert 'Connection ""' in headers


def test_the_access_log_has_no_query_string_or_credentials():
    (fmt,) = re.findall(r"log_format redacted (.*?);", STACK_CONF, flags=re.DOTALL)
    for leak in ("$request_uri", "$args", "$query_string", "$http_authorization", "$http_cookie"):
        assert leak not in fmt
    assert re.search(r"\$request\b(?!_)", fmt) is None, "the whole request line has the query"
    assert "$method_and_path" in fmt
    assert directive(STACK_CONF, "access_log") == ["/dev/stdout redacted"]


@pytest.mark.parametrize("status", sorted(proxy.ERRORS))
def test_what_the_proxy_answers_itself_is_in_the_api_error_shape(status):
    body = json.loads(proxy.error_body(status))
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["details"] == []
    assert f"error_page {status} {proxy.ERROR_URI}{status};" in STACK_CONF
    assert f"return {status} '{proxy.error_body(status)}';" in STACK_CONF
    if status in HTTP_MESSAGES:  # the same code and sentence as the gateway's own
        assert (body["error"]["code"], body["error"]["message"]) == HTTP_MESSAGES[status]


def test_compose_publishes_the_proxy_and_not_the_gateway():
    gateway, nginx = COMPOSE["gateway"], COMPOSE["proxy"]
    assert "ports" not in gateway, "clients reach the gateway through the proxy only"
    assert str(nginx["image"]).startswith("nginx:")
    assert nginx["ports"] == ["${PUBLISH_ADDR:-127.0.0.1}:${GATEWAY_PORT:-8000}:8080"]
    assert nginx["volumes"] == ["./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro"]
    assert nginx["depends_on"] == {"gateway": {"condition": "service_healthy"}}
    conf = proxy.compose_config()
    assert directive(conf, "listen") == ["8080"]
    bind_port = gateway["environment"]["GATEWAY_BIND"].rsplit(":", 1)[1]
    assert directive(conf, "server") == [f"gateway:{bind_port}"]
    assert "http://127.0.0.1:8080/healthz" in " ".join(nginx["healthcheck"]["test"])
    # The container stops gracefully within its grace period, longer than any request.
    (read,) = directive(conf, "proxy_read_timeout")
    assert nginx["stop_signal"] == "SIGQUIT"
    assert int(nginx["stop_grace_period"].removesuffix("s")) > seconds(read)
