"""The Conductor client reads the proxy environment once per session, not on every request
(issue 14.3: requests' per-request lookup was a third of a workflow start's CPU)."""

from __future__ import annotations

from batchcore.conductor import ConductorClient


def test_proxy_variables_are_read_once_for_the_server(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session = ConductorClient("http://conductor.example:8080/api")._session()
    assert session.trust_env is False
    assert session.proxies.get("http") == "http://proxy.example:3128"


def test_no_proxy_for_the_server_leaves_the_session_without_one(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "conductor.example")
    session = ConductorClient("http://conductor.example:8080/api")._session()
    assert session.proxies == {}


def test_a_ca_bundle_named_in_the_environment_is_kept(monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corp.pem")
    session = ConductorClient("https://conductor.example/api")._session()
    assert session.verify == "/etc/ssl/corp.pem"
