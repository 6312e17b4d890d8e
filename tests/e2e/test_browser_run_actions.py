"""The run page's Cancel and Re-run in a real browser (issue 16): a running run cancelled from
its page, which then offers Re-run without a reload; a failed run re-run with new parameters,
the new run's page following it to COMPLETED and naming the run it re-ran."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from tests.e2e.conftest import run_body
from tests.e2e.test_browser import assert_accessible, browser, gateway, token, watched  # noqa: F401

QUICK = {"simulate": {"duration_seconds": 1}}


def open_run(watched, gateway, token, run_id: str):  # noqa: F811 (fixtures passed in)
    watched.sign_in(token)
    watched.page.goto(f"{gateway}/ui/runs/{run_id}")
    return watched.page


def test_a_running_run_is_cancelled_from_its_page_which_then_offers_re_run(
    watched,  # noqa: F811
    token,  # noqa: F811
    api,
    gateway,  # noqa: F811
):
    created = api.post_run(run_body(parameters={"simulate": {"duration_seconds": 60}}))
    run_id = created.json()["id"]
    api.await_status(run_id, "RUNNING", timeout=60)
    page = open_run(watched, gateway, token, run_id)
    actions = page.locator("#run-actions")
    expect(actions.get_by_role("link")).to_have_text(["Cancel run…"])
    actions.get_by_role("link", name="Cancel run…").click()
    expect(page).to_have_url(re.compile(rf"/ui/runs/{run_id}/cancel$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Cancel run")
    assert_accessible(watched, "the cancel confirmation")
    page.get_by_role("button", name="Cancel the run").click()
    expect(page).to_have_url(re.compile(rf"/ui/runs/{run_id}$"))
    # The page follows the run: the cancel is acknowledged, then the run ends CANCELLED and
    # Re-run takes Cancel's place, all without a reload.
    page.evaluate("window.notReloaded = true")
    expect(page.locator("#run-head .status")).to_have_text("CANCELLED", timeout=60_000)
    expect(actions.get_by_role("link")).to_have_text(["Re-run…"], timeout=10_000)
    assert page.evaluate("window.notReloaded === true")
    history = page.locator("#run-history li")
    expect(history.last).to_contain_text("CANCELLED")
    assert api.get_run(run_id)["cancel_requested_by"] == "dev"  # the stack's token's name
    assert_accessible(watched, "a cancelled run")
    watched.screenshot("run-cancelled", full_page=False)


def test_a_failed_run_is_re_run_from_its_page_with_new_parameters(
    watched,  # noqa: F811
    token,  # noqa: F811
    api,
    gateway,  # noqa: F811
):
    failing = {"simulate": {"outcome": "FAILED", "error_message": "bad input"}}
    created = api.post_run(run_body(parameters=failing))
    run_id = created.json()["id"]
    api.await_status(run_id, "FAILED", timeout=90)
    page = open_run(watched, gateway, token, run_id)
    page.locator("#run-actions").get_by_role("link", name="Re-run…").click()
    expect(page).to_have_url(re.compile(rf"/ui/runs/{run_id}/rerun$"))
    field = page.get_by_label("Parameters (a JSON object)")
    assert json.loads(field.input_value()) == failing
    assert_accessible(watched, "the re-run confirmation")
    field.fill(json.dumps(QUICK))
    page.get_by_role("button", name="Re-run", exact=True).click()
    expect(page).to_have_url(re.compile(r"/ui/runs/[0-9a-f-]{36}$"))
    new_id = page.url.rsplit("/", 1)[1]
    assert new_id != run_id
    expect(page.locator("#run-head .status")).to_have_text("COMPLETED", timeout=90_000)
    fields = page.locator("#run-fields")
    expect(fields).to_contain_text(f"Re-run of{run_id}")
    new = api.get_run(new_id)
    assert (new["rerun_of"], new["parameters"], new["submitted_by"]) == (run_id, QUICK, "dev")
    assert api.get_run(run_id)["reruns"] == [new_id]
    page.get_by_role("link", name=run_id).click()
    expect(page.locator("#run-fields")).to_contain_text(new_id)
    watched.screenshot("run-rerun-of", full_page=False)
