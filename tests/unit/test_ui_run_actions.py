"""The run page's Cancel and Re-run (issue 16): shown only when allowed, each behind a
confirmation whose POST carries the CSRF token and calls the API's own service function as
the signed-in token's name."""

from __future__ import annotations

import re

import pytest

from batchcore.errors import RunNotTerminal
from batchcore.setting_checks import tokens as parse_tokens
from batchcore.settings import Settings
from gateway import create_app, services
from gateway.services import RunView
from gateway.submission import AcceptedRun
from tests.gateway_helpers import FakeConductor
from tests.unit.test_ui_pages import run_row

TOKEN = "ui-actions-test-token-0123456789"


@pytest.fixture
def client(monkeypatch):
    rows: dict[str, dict] = {}
    calls: list[tuple] = []

    def get_run(db, run_id):
        return RunView(rows[str(run_id)], [])

    def cancel_run(db, conductor, run_id, actor):
        calls.append(("cancel", run_id, actor))
        return RunView(rows[run_id], [])

    def rerun_run(db, conductor, run_id, parameters, key, **options):
        calls.append(("rerun", run_id, parameters, key, options["submitted_by"]))
        if rows[run_id]["status"] == "RUNNING":
            raise RunNotTerminal(f"Run {run_id} is RUNNING: it can be re-run once it has ended")
        new = run_row(status="PENDING", rerun_of=run_id)
        rows[str(new["id"])] = new
        return AcceptedRun(run=new, history=[], created=True)

    monkeypatch.setattr(services, "get_run", get_run)
    monkeypatch.setattr(services, "cancel_run", cancel_run)
    monkeypatch.setattr(services, "rerun_run", rerun_run)
    monkeypatch.setattr(services, "get_run_workflow", lambda db, conductor, run_id: None)
    settings = Settings(
        database_url="postgresql://unused@127.0.0.1:9/unused",
        gateway_api_tokens=parse_tokens("GATEWAY_API_TOKENS", f"carol:{TOKEN}"),
        gateway_secret_key="ui-actions-test-secret",
    )
    app = create_app(
        {"SETTINGS": settings, "DATABASE": object(), "CONDUCTOR": FakeConductor(), "TESTING": True}
    )
    test_client = app.test_client()
    test_client.post(
        "/ui/login", data={"csrf_token": csrf_of(test_client, "/ui/login"), "token": TOKEN}
    )
    test_client.rows, test_client.calls = rows, calls
    return test_client


def csrf_of(client, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def add(client, **fields) -> str:
    row = run_row(**fields)
    client.rows[str(row["id"])] = row
    return str(row["id"])


def buttons(client, run_id: str) -> list[str]:
    html = client.get(f"/ui/runs/{run_id}").get_data(as_text=True)
    return re.findall(r'<a class="button" href="[^"]+">([^<]+)</a>', html)


def test_cancel_shows_while_active_and_not_requested_and_re_run_once_ended(client):
    assert buttons(client, add(client, status="RUNNING")) == ["Cancel run…"]
    assert buttons(client, add(client, status="PENDING")) == ["Cancel run…"]
    asked = add(client, status="RUNNING", cancel_requested_at=run_row()["created_at"])
    assert buttons(client, asked) == []
    for status in ("COMPLETED", "FAILED", "CANCELLED"):
        assert buttons(client, add(client, status=status)) == ["Re-run…"]


def test_cancel_is_confirmed_then_done_as_the_signed_in_token(client):
    run_id = add(client, status="RUNNING")
    confirm = client.get(f"/ui/runs/{run_id}/cancel").get_data(as_text=True)
    assert "Cancel the run" in confirm
    forged = client.post(f"/ui/runs/{run_id}/cancel", data={"csrf_token": "forged"})
    assert forged.status_code == 403 and client.calls == []
    done = client.post(
        f"/ui/runs/{run_id}/cancel",
        data={"csrf_token": csrf_of(client, f"/ui/runs/{run_id}/cancel")},
    )
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/ui/runs/{run_id}")
    assert client.calls == [("cancel", run_id, "carol")]


def test_re_run_goes_to_the_new_run_with_the_parameters_typed(client):
    run_id = add(client, status="FAILED", parameters={"n": 1})
    form = client.get(f"/ui/runs/{run_id}/rerun").get_data(as_text=True)
    key = re.search(r'name="key" value="([^"]+)"', form).group(1)
    assert "&#34;n&#34;: 1" in form or "&quot;n&quot;: 1" in form
    csrf = csrf_of(client, f"/ui/runs/{run_id}/rerun")
    done = client.post(
        f"/ui/runs/{run_id}/rerun", data={"csrf_token": csrf, "key": key, "parameters": '{"n": 2}'}
    )
    assert done.status_code == 303
    [new_id] = [rid for rid, row in client.rows.items() if row.get("rerun_of") == run_id]
    assert done.headers["Location"].endswith(f"/ui/runs/{new_id}")
    assert client.calls == [("rerun", run_id, {"n": 2}, key, "carol")]
    kept = client.post(f"/ui/runs/{run_id}/rerun", data={"csrf_token": csrf, "parameters": " "})
    assert kept.status_code == 303 and client.calls[-1][2:4] == (None, None)


@pytest.mark.parametrize(
    ("typed", "shown"),
    [("{nope", "not JSON"), ("[1, 2]", "must be a JSON object"), ('{"x": NaN}', "NaN")],
)
def test_bad_parameters_are_named_and_nothing_is_re_run(client, typed, shown):
    run_id = add(client, status="FAILED")
    csrf = csrf_of(client, f"/ui/runs/{run_id}/rerun")
    refused = client.post(
        f"/ui/runs/{run_id}/rerun", data={"csrf_token": csrf, "parameters": typed}
    )
    assert refused.status_code == 422 and shown in refused.get_data(as_text=True)
    assert client.calls == []


def test_a_refused_re_run_says_why(client):
    run_id = add(client, status="RUNNING")
    csrf = csrf_of(client, f"/ui/runs/{run_id}/rerun")
    refused = client.post(f"/ui/runs/{run_id}/rerun", data={"csrf_token": csrf})
    assert refused.status_code == 409
    assert "can be re-run once it has ended" in refused.get_data(as_text=True)


def test_a_forged_re_run_is_refused(client):
    run_id = add(client, status="FAILED")
    refused = client.post(f"/ui/runs/{run_id}/rerun", data={"parameters": "{}"})
    assert refused.status_code == 403 and client.calls == []
