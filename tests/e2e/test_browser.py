"""The run browser in a real browser (Debian's chromium, driven by Playwright) against the
running stack's gateway: sign-in, the list and its filters, a run followed live to its end,
sign-out; no request off the gateway's origin, no console error, no axe-core violation."""

from __future__ import annotations

import re
import uuid

import pytest
import requests
from playwright.sync_api import expect

from tests.browser import support
from tests.e2e.conftest import run_body
from tests.integration.helpers import Simulator

HOSTILE = '<img src=x onerror=alert("img")><script>alert("script")</script>'
REFUSED_SIGN_IN = re.compile(r"status of 401")


@pytest.fixture(scope="module")
def browser():
    playwright, browser = support.launch()
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture
def gateway(stack_env, api) -> str:
    return stack_env["GATEWAY_URL"].rstrip("/")


@pytest.fixture
def token(stack_env) -> str:
    return stack_env["GATEWAY_API_TOKEN"]


@pytest.fixture
def watched(browser, gateway, request):
    """A signed-out page; after the test, nothing left the origin and the console was clean."""
    page = support.watch(browser, gateway)
    yield page
    page.screenshot(f"{request.node.name}-last")
    page.page.context.close()
    assert page.foreign_requests() == []
    assert page.unexpected_console_errors() == []
    assert page.dialogs == []  # no script from the data ever ran


def assert_accessible(watched: support.Watched, what: str) -> None:
    violations = watched.axe_violations()
    assert violations == [], f"{what}: {violations}"


def test_sign_in_list_filter_and_sign_out(watched, token, api, gateway):
    page = watched.page
    created = api.post_run(run_body(parameters={"simulate": {"duration_seconds": 1}}))
    assert created.status_code == 202, created.text
    # The filter below needs at least one COMPLETED demo-batch run, even on a fresh stack.
    api.await_status(created.json()["id"], "COMPLETED", timeout=90)
    page.goto(f"{gateway}/ui/runs")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    assert_accessible(watched, "the sign-in page")

    watched.expected_errors.append(REFUSED_SIGN_IN)
    page.get_by_label("API token").fill(token + "x")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("That token was not accepted")
    page.goto(f"{gateway}/ui/runs")
    expect(page).to_have_url(re.compile(r"/ui/login"))  # the wrong token did not sign in

    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/ui/runs$"))
    expect(page.locator("table.runs tbody tr").first).to_be_visible()
    assert_accessible(watched, "the run list")
    watched.screenshot("runs", full_page=False)

    page.get_by_role("group", name="Status").get_by_label("COMPLETED").check()
    page.get_by_label("Pipeline").select_option("demo-batch")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=COMPLETED.*pipeline=demo-batch"))
    cells = page.locator("table.runs tbody td[data-label=Status]")
    expect(cells.first).to_be_visible()
    statuses = cells.all_inner_texts()
    assert statuses and set(statuses) == {"COMPLETED"}
    counted = page.get_by_role("navigation", name="Runs by status").get_by_role("link")
    expect(counted.filter(has_text="COMPLETED")).to_have_attribute("aria-current", "true")

    for name, path in (("Pipelines", "/ui/pipelines"), ("System", "/ui/system")):
        page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()
        expect(page).to_have_url(re.compile(re.escape(path) + "$"))
        assert_accessible(watched, f"the {name} page")
    expect(page.get_by_text("PostgreSQL answers")).to_be_visible()

    page.get_by_role("link", name="Sign out").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("You are signed out")
    page.goto(f"{gateway}/ui/runs")
    expect(page).to_have_url(re.compile(r"/ui/login"))


def test_the_run_page_follows_a_run_to_its_end_without_a_reload(
    watched, token, api, gateway, stack_env
):
    page = watched.page
    watched.sign_in(token)
    body = run_body(parameters={"simulate": {"queue_seconds": 2, "duration_seconds": 4}})
    # Two refused submissions: the workflow retries them, and the page draws each attempt.
    Simulator(stack_env["WORKBENCH_ADMIN_URL"]).faults(
        error_5xx={"status": 503, "count": 2, "only": "submit"},
        input_path_prefixes=[body["input_path_prefix"]],
    )
    created = api.post_run(body)
    assert created.status_code == 202, created.text
    run_id = created.json()["id"]
    page.goto(f"{gateway}/ui/runs/{run_id}")
    head = page.locator("#run-head")
    # The retries wait about 2 s, then 4 s: the page opens on a PENDING run.
    expect(head.locator(".status")).to_have_text("PENDING", timeout=3_000)
    assert page.locator("body").get_attribute("data-refresh") == "2"
    # A reload would lose this marker and the reader's scroll position.
    page.evaluate("() => { window.notReloaded = true; window.scrollTo(0, 300); }")

    expect(head.locator(".status")).to_have_text("COMPLETED", timeout=90_000)
    history = page.locator("#run-history > li")
    expect(history.last).to_contain_text("COMPLETED")
    expect(page.locator("#run-workflow table.tasks")).to_contain_text("await_completion")
    expect(page.locator("#live-note")).to_have_text("", timeout=30_000)  # refresh ended
    assert page.evaluate("() => window.notReloaded === true")
    assert page.evaluate("() => window.scrollY") == 300
    assert history.count() >= 3
    assert page.locator("svg.timeline rect.run").count() >= 6
    expect(page.locator("svg.timeline")).to_contain_text("submit (attempt 3)")
    failed_attempt = page.locator("#run-workflow table.tasks tbody tr").first
    expect(failed_attempt).to_contain_text("FAILED")
    expect(failed_attempt.locator("td[data-label=Reason]")).to_contain_text("503")

    # Times show in the reader's zone, with UTC on hover.
    created_at = page.locator("#run-fields time").first
    assert re.search(r"\b(EST|EDT)\b", created_at.inner_text()), created_at.inner_text()
    assert created_at.get_attribute("title").endswith("UTC")
    assert_accessible(watched, "a run's page")
    watched.screenshot("run")
    watched.screenshot("run-workflow", selector="section:has(#workflow-title)")


def test_a_failed_run_shows_its_html_as_text_and_its_failed_task(watched, token, api, gateway):
    page = watched.page
    watched.sign_in(token)
    simulate = {"outcome": "FAILED", "error_message": HOSTILE, "duration_seconds": 1}
    body = run_body(parameters={"note": HOSTILE, "simulate": simulate})
    run_id = api.post_run(body).json()["id"]
    api.await_status(run_id, "FAILED", timeout=60)
    page.goto(f"{gateway}/ui/runs/{run_id}")
    expect(page.locator(".error-message")).to_contain_text(HOSTILE)
    expect(page.locator("#run-parameters")).to_contain_text("onerror=alert")
    assert page.locator("main img, main script").count() == 0
    expect(page.locator("#run-workflow")).to_contain_text("FAILED")
    assert_accessible(watched, "a failed run's page")
    watched.screenshot("failed-run")


def test_the_pages_read_on_a_phone_width_window(browser, gateway, token, api):
    phone = support.watch(browser, gateway, support.PHONE)
    try:
        phone.sign_in(token)
        run_id = api.post_run(run_body(), wait=5).json()["id"]
        for path in ("/ui/runs", f"/ui/runs/{run_id}", "/ui/system", "/ui/pipelines"):
            phone.page.goto(f"{gateway}{path}")
            width = phone.page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= support.PHONE["width"], f"{path} scrolls sideways ({width}px)"
            assert_accessible(phone, f"{path} on a phone")
        phone.screenshot("phone-run", full_page=False)
        assert phone.foreign_requests() == [] and phone.unexpected_console_errors() == []
    finally:
        phone.page.context.close()


def test_the_run_list_shows_new_runs_while_runs_are_active(watched, token, api, gateway):
    page = watched.page
    watched.sign_in(token)
    slow = {"simulate": {"queue_seconds": 1, "duration_seconds": 20}}
    api.post_run(run_body(parameters=slow))
    page.goto(f"{gateway}/ui/runs")
    assert page.locator("body").get_attribute("data-refresh")
    page.evaluate("() => { window.notReloaded = true; }")
    newcomer = api.post_run(run_body()).json()["id"]
    expect(page.locator("#run-list")).to_contain_text(newcomer, timeout=30_000)
    assert page.evaluate("() => window.notReloaded === true")


def test_forms_refuse_posts_without_the_csrf_token(gateway, token):
    with requests.Session() as http:
        login = http.get(f"{gateway}/ui/login", timeout=10)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)
        refused = http.post(f"{gateway}/ui/login", data={"token": token}, timeout=10)
        assert refused.status_code == 403
        assert http.get(f"{gateway}/ui/runs", timeout=10, allow_redirects=False).status_code == 302
        wrong = http.post(f"{gateway}/ui/login", data={"token": "w" + token, "csrf_token": csrf})
        assert wrong.status_code == 401
        assert http.get(f"{gateway}/ui/runs", timeout=10, allow_redirects=False).status_code == 302
        signed = http.post(f"{gateway}/ui/login", data={"token": token, "csrf_token": csrf})
        assert signed.status_code == 200 and signed.url.endswith("/ui/runs")
        forged = http.post(f"{gateway}/ui/logout", data={"csrf_token": uuid.uuid4().hex})
        assert forged.status_code == 403
        assert http.get(f"{gateway}/ui/runs", timeout=10, allow_redirects=False).status_code == 200
