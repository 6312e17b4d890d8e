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


def test_the_notifications_route_lists_a_runs_notifications_with_their_state(
    make_client,  # noqa: F811
    database,
):
    client = make_client(conductor=FakeConductor())
    run = client.post("/api/v1/pipeline-runs", json=body(notify_url=URL), headers=AUTH).get_json()
    answer = client.get(f"/api/v1/pipeline-runs/{run['id']}/notifications", headers=AUTH)
    assert answer.status_code == 200
    (only,) = answer.get_json()["items"]
    assert only["type"] == "pipeline_run.status_changed"
    assert (only["previous_status"], only["status"], only["state"]) == (None, "PENDING", "pending")
    assert only["id"].startswith("msg_") and only["attempts"] == [] and only["attempt_count"] == 0
    assert only["next_attempt_at"] is not None and only["url"] == URL
    missing = client.get(
        "/api/v1/pipeline-runs/7b0c1e8e-8d7b-4a55-9c39-0d6d2f3f1b0a/notifications", headers=AUTH
    )
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "run_not_found"
    assert client.get(f"/api/v1/pipeline-runs/{run['id']}/notifications").status_code == 401
