"""The run browser's pages without a database: sign-in, CSRF, escaping, the run page."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from batchcore.errors import ConductorUnavailable
from batchcore.settings import Settings
from gateway import create_app, overview, services
from gateway.services import RunNotFound, RunView
from gateway.ui import session as ui_session
from tests.gateway_helpers import FakeConductor

TOKEN = "ui-unit-test-token-0123456789"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def make_app(tokens=(TOKEN,), secret="ui-unit-test-secret-key"):
    settings = Settings(
        database_url="postgresql://unused@127.0.0.1:9/unused",
        gateway_api_tokens=tokens,
        gateway_secret_key=secret,
    )
    return create_app(
        {"SETTINGS": settings, "DATABASE": object(), "CONDUCTOR": FakeConductor(), "TESTING": True}
    )


def run_row(**fields) -> dict:
    row = {
        "id": uuid.uuid4(),
        "pipeline": "demo-batch",
        "mode": "BATCH",
        "status": "FAILED",
        "input_path_prefix": "s3://in/",
        "output_path_prefix": "s3://out/",
        "parameters": {HOSTILE: HOSTILE},
        "workbench_job_id": HOSTILE,
        "conductor_workflow_id": "wf-1",
        "error_message": HOSTILE,
        "error_details": {"why": HOSTILE},
        "created_at": T0,
        "updated_at": T0,
        "submitted_at": T0,
        "started_at": None,
        "completed_at": T0 + timedelta(seconds=9),
        "poll_failures": 0,
        "last_poll_error": None,
        "last_polled_at": None,
    }
    row.update(fields)
    return row


EVENT = {
    "status": "FAILED",
    "previous_status": "SUBMITTED",
    "at": T0,
    "source": "poller",
    "message": HOSTILE,
    "details": {HOSTILE: 1},
}
WORKFLOW = {
    "workflow_id": "wf-1",
    "status": "FAILED",
    "start_time": "2026-11-28T09:00:00.000+00:00",
    "end_time": "2026-11-28T09:00:09.000+00:00",
    "tasks": [
        {
            "reference_name": "submit_to_workbench",
            "task_type": "submit_to_workbench",
            "status": "FAILED",
            "attempt": 1,
            "scheduled_at": "2026-11-28T09:00:00.000+00:00",
            "started_at": "2026-11-28T09:00:01.000+00:00",
            "ended_at": "2026-11-28T09:00:02.000+00:00",
            "reason": HOSTILE,
        },
        {
            "reference_name": "submit_to_workbench",
            "task_type": "submit_to_workbench",
            "status": "COMPLETED",
            "attempt": 2,
            "scheduled_at": "2026-11-28T09:00:04.000+00:00",
            "started_at": "2026-11-28T09:00:05.000+00:00",
            "ended_at": "2026-11-28T09:00:09.000+00:00",
            "reason": None,
        },
    ],
}


@pytest.fixture
def pages(monkeypatch):
    """Services answering with hostile text, and a record of the sign-in delays."""
    row = run_row()
    monkeypatch.setattr(services, "get_run", lambda db, run_id: RunView(row, [EVENT]))
    monkeypatch.setattr(services, "get_run_workflow", lambda db, conductor, run_id: WORKFLOW)
    monkeypatch.setattr(
        services, "list_runs", lambda db, f, key: SimpleNamespace(items=[row], next_cursor=None)
    )
    monkeypatch.setattr(services, "list_pipelines", lambda db: [])
    monkeypatch.setattr(
        overview, "count_runs_by_status", lambda db, pipeline=None: dict.fromkeys(STATUSES, 1)
    )
    delays: list[float] = []
    monkeypatch.setattr(ui_session.time, "sleep", delays.append)
    return SimpleNamespace(row=row, delays=delays)


STATUSES = ("PENDING", "SUBMITTED", "RUNNING", "COMPLETED", "FAILED")


def csrf_of(client, path="/ui/login") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client, token=TOKEN):
    return client.post("/ui/login", data={"csrf_token": csrf_of(client), "token": token})


def test_ui_pages_without_a_session_lead_to_the_sign_in_page(pages):
    client = make_app().test_client()
    for path in ("/ui/", "/ui/runs", f"/ui/runs/{uuid.uuid4()}", "/ui/system", "/ui/pipelines"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/ui/login?next=")


def test_a_right_token_signs_in_with_a_hardened_cookie(pages):
    client = make_app().test_client()
    response = sign_in(client)
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/runs"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP here
    assert TOKEN not in cookie
    assert client.get("/ui/runs").status_code == 200


def test_the_cookie_is_secure_over_https(pages):
    client = make_app().test_client()
    html = client.get("/ui/login", base_url="https://gateway.test").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    response = client.post(
        "/ui/login",
        data={"csrf_token": csrf, "token": TOKEN},
        base_url="https://gateway.test",
    )
    assert "Secure" in response.headers["Set-Cookie"]


def test_a_wrong_token_is_refused_slowly_and_counted(pages):
    client = make_app().test_client()
    before = ui_session.SIGN_INS.labels("refused")._value.get()
    for wrong in ("", TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
        response = sign_in(client, wrong)
        assert response.status_code == 401
        assert "That token was not accepted" in response.get_data(as_text=True)
    assert pages.delays == [0.5, 1.0, 2.0, 4.0]
    assert ui_session.SIGN_INS.labels("refused")._value.get() == before + 4
    assert client.get("/ui/runs").status_code == 302


def test_posts_without_the_csrf_token_are_refused(pages):
    client = make_app().test_client()
    assert client.post("/ui/login", data={"token": TOKEN}).status_code == 403
    assert client.get("/ui/runs").status_code == 302  # not signed in by it
    sign_in(client)
    refused = client.post("/ui/logout", data={"csrf_token": "forged"})
    assert refused.status_code == 403
    assert client.get("/ui/runs").status_code == 200  # still signed in
    assert (
        client.post("/ui/logout", data={"csrf_token": csrf_of(client, "/ui/logout")}).status_code
        == 303
    )
    assert client.get("/ui/runs").status_code == 302


def test_a_session_ends_when_its_token_is_no_longer_configured(pages):
    old = make_app(tokens=(TOKEN,))
    client = old.test_client()
    sign_in(client)
    cookie = client.get_cookie("runs_session", path="/ui")
    rotated = make_app(tokens=("another-token-entirely-0123456",)).test_client()
    rotated.set_cookie("runs_session", cookie.value, path="/ui")
    assert rotated.get("/ui/runs").status_code == 302


@pytest.mark.parametrize("target", ["//evil.test/x", "https://evil.test/", "/api/v1/x", "/ui\\x"])
def test_sign_in_never_sends_the_reader_off_the_browser(pages, target):
    client = make_app().test_client()
    csrf = csrf_of(client)
    response = client.post("/ui/login", data={"csrf_token": csrf, "token": TOKEN, "next": target})
    assert response.headers["Location"] == "/ui/runs"


def test_pages_carry_a_strict_content_security_policy(pages):
    client = make_app().test_client()
    sign_in(client)
    response = client.get("/ui/runs")
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert "<script>" not in html  # the only script is the static file
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/ui/static/ui.js" defer>']


def test_html_in_a_run_shows_as_text_on_the_run_page(pages):
    client = make_app().test_client()
    sign_in(client)
    response = client.get(f"/ui/runs/{pages.row['id']}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<img src=x" not in html and '<script>alert("x")' not in html
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
    # The error message, the Workbench job id, the history's message and the task's reason.
    assert html.count(escaped) >= 4
    # Parameters and details go through JSON first, then escaping.
    assert "&lt;script&gt;alert(\\&#34;x\\&#34;)" in html


def test_html_in_a_run_shows_as_text_in_the_list(pages):
    client = make_app().test_client()
    sign_in(client)
    html = client.get("/ui/runs").get_data(as_text=True)
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_the_run_page_draws_the_workflow_and_its_retry(pages):
    client = make_app().test_client()
    sign_in(client)
    html = client.get(f"/ui/runs/{pages.row['id']}").get_data(as_text=True)
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert svg.count('class="run"') == 2 and svg.count('class="wait"') == 2
    assert "submit_to_workbench (attempt 2)" in svg
    assert 'class="task status-completed retry"' in svg
    # The failed attempt's reason is written beside its bar, as text.
    assert svg.count('class="reason"') == 1
    assert "&lt;script&gt;alert(&#34;x&#34;)" in svg and "<script>" not in svg
    assert "data-refresh" not in html  # a FAILED run does not change any more


def test_the_run_page_stands_when_conductor_is_down(pages, monkeypatch):
    def down(db, conductor, run_id):
        raise ConductorUnavailable("Conductor at http://c/api is unreachable")

    monkeypatch.setattr(services, "get_run_workflow", down)
    client = make_app().test_client()
    sign_in(client)
    response = client.get(f"/ui/runs/{pages.row['id']}")
    assert response.status_code == 200
    assert "The workflow could not be read: Conductor at http://c/api is unreachable" in (
        response.get_data(as_text=True)
    )


def test_an_unknown_run_is_an_html_404(pages, monkeypatch):
    def missing(db, run_id):
        raise RunNotFound(f"No run has id {run_id}")

    monkeypatch.setattr(services, "get_run", missing)
    client = make_app().test_client()
    sign_in(client)
    response = client.get("/ui/runs/nope")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "No run has id nope" in response.get_data(as_text=True)


def test_an_active_run_page_refreshes_itself(pages, monkeypatch):
    running = run_row(status="RUNNING", completed_at=None, error_message=None)
    monkeypatch.setattr(services, "get_run", lambda db, run_id: RunView(running, []))
    client = make_app().test_client()
    sign_in(client)
    html = client.get(f"/ui/runs/{running['id']}").get_data(as_text=True)
    assert 'data-refresh="2"' in html


def test_a_page_visited_signed_out_keeps_the_sign_in_form_usable(pages):
    client = make_app().test_client()
    csrf = csrf_of(client)
    assert client.get("/ui/runs").status_code == 302  # e.g. in another tab
    response = client.post("/ui/login", data={"csrf_token": csrf, "token": TOKEN})
    assert response.status_code == 303


def test_the_run_page_links_to_the_run_as_the_api_answers_it(pages):
    client = make_app().test_client()
    sign_in(client)
    page = client.get(f"/ui/runs/{pages.row['id']}").get_data(as_text=True)
    assert f'href="/ui/runs/{pages.row["id"]}.json"' in page
    answer = client.get(f"/ui/runs/{pages.row['id']}.json")
    assert answer.mimetype == "application/json"
    body = answer.get_json()
    assert body["id"] == str(pages.row["id"]) and body["error_message"] == HOSTILE
    assert body["history"][0]["message"] == HOSTILE


def test_wrong_tokens_in_parallel_cannot_hold_every_request_thread(pages, monkeypatch):
    client = make_app().test_client()
    held = [
        ui_session._SLOWED.acquire(blocking=False) for _ in range(ui_session.MAX_SLOWED_AT_ONCE)
    ]
    try:
        assert all(held)  # as if that many refused sign-ins were being slowed right now
        response = sign_in(client, "wrong-token-0123456789abcdef")
    finally:
        for _ in held:
            ui_session._SLOWED.release()
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "10"
    assert pages.delays == []  # answered at once
    assert "wait a few seconds" in response.get_data(as_text=True)


def test_the_run_list_pages_on_with_its_filters(pages, monkeypatch):
    seen = []

    def listing(db, filters, key):
        seen.append(filters)
        return SimpleNamespace(items=[pages.row], next_cursor="sealed.cursor")

    monkeypatch.setattr(services, "list_runs", listing)
    client = make_app().test_client()
    sign_in(client)
    html = client.get("/ui/runs?status=FAILED&status=RUNNING&pipeline=demo-batch").get_data(
        as_text=True
    )
    assert seen[-1].statuses == ("FAILED", "RUNNING") and seen[-1].pipeline == "demo-batch"
    older = re.search(r'<a rel="next" href="([^"]+)"', html).group(1)
    assert older == (
        "/ui/runs?status=FAILED&amp;status=RUNNING&amp;pipeline=demo-batch&amp;cursor=sealed.cursor"
    )
    client.get(older.replace("&amp;", "&"))
    assert seen[-1].cursor == "sealed.cursor" and seen[-1].statuses == ("FAILED", "RUNNING")


def test_filters_the_list_does_not_understand_are_named_not_fatal(pages):
    client = make_app().test_client()
    sign_in(client)
    response = client.get("/ui/runs?status=BOGUS")
    assert response.status_code == 200
    assert "Some filters were not understood" in response.get_data(as_text=True)
