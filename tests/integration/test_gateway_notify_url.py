"""Issue 15: notify_url on POST (validated, stored, rendered) and the outbox it starts."""

from __future__ import annotations

from batchcore.notifications.store import NotificationStore
from tests.gateway_helpers import FakeConductor
from tests.integration.test_gateway_api import AUTH, body, make_client  # noqa: F401

URL = "https://receiver.example.com/hooks/runs"


def test_a_run_posted_with_notify_url_renders_it_and_notifies_its_acceptance(
    make_client,  # noqa: F811
    database,
):
    client = make_client(conductor=FakeConductor())
    answer = client.post("/api/v1/pipeline-runs", json=body(notify_url=URL), headers=AUTH)
    assert answer.status_code == 202, answer.get_json()
    run = answer.get_json()
    assert run["notify_url"] == URL
    assert (
        client.get(f"/api/v1/pipeline-runs/{run['id']}", headers=AUTH).get_json()["notify_url"]
        == URL
    )
    found = NotificationStore(database).for_run(run["id"])
    assert [(n["previous_status"], n["status"]) for n in found] == [(None, "PENDING")]
    assert found[0]["url"] == URL


def test_a_run_without_notify_url_renders_null_and_has_no_outbox(make_client, database):  # noqa: F811
    client = make_client(conductor=FakeConductor())
    run = client.post("/api/v1/pipeline-runs", json=body(), headers=AUTH).get_json()
    assert run["notify_url"] is None
    assert NotificationStore(database).for_run(run["id"]) == []


def test_hostile_notify_urls_are_a_422_naming_the_field_and_store_nothing(
    make_client,  # noqa: F811
    database,
):
    client = make_client(conductor=FakeConductor())
    with database.autocommit() as cur:
        cur.execute("SELECT count(*) AS n FROM pipeline_runs")
        before = cur.fetchone()["n"]
    for url, rule in [
        ("http://receiver.example.com/", "scheme"),
        ("https://10.0.0.7/", "private_address"),
        ("https://169.254.169.254/latest", "private_address"),
        ("https://user:secret@receiver.example.com/", "user_info"),
        ("https://receiver.example.com/" + "x" * 2048, "length"),
        ("http://127.0.0.1:9/", "scheme"),
    ]:
        answer = client.post("/api/v1/pipeline-runs", json=body(notify_url=url), headers=AUTH)
        assert answer.status_code == 422, url
        details = answer.get_json()["error"]["details"]
        assert {"notify_url"} == {d["field"] for d in details}, url
        assert rule in {d["rule"] for d in details}, url
        assert "secret" not in answer.get_data(as_text=True)
    with database.autocommit() as cur:
        cur.execute("SELECT count(*) AS n FROM pipeline_runs")
        assert cur.fetchone()["n"] == before


def test_an_allowed_host_may_be_loopback_over_http(make_client, database):  # noqa: F811
    client = make_client(
        conductor=FakeConductor(), webhook_allowed_hosts=frozenset({"127.0.0.1", "localhost"})
    )
    answer = client.post(
        "/api/v1/pipeline-runs", json=body(notify_url="http://127.0.0.1:9/hook"), headers=AUTH
    )
    assert answer.status_code == 202
    assert answer.get_json()["notify_url"] == "http://127.0.0.1:9/hook"
