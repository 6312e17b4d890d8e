"""Deadlines, the request side, over HTTP (issue 13): deadline_seconds validated and stored as
deadline_at; without it the pipeline's max_runtime_seconds, else RUN_DEADLINE_SECONDS."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from tests.e2e.conftest import run_body
from tests.e2e.named_gateway import RUN_DEADLINE_SECONDS, alice, named_gateway  # noqa: F401
from tests.e2e.test_rerun import deadline_seconds, rerun

QUICK = {"simulate": {"duration_seconds": 0.5}}


@contextmanager
def max_runtime(conn, pipeline: str, seconds: int | None):
    """The pipeline's max_runtime_seconds set for the block, then put back as it was."""
    with conn.cursor() as cur:
        cur.execute("SELECT max_runtime_seconds FROM pipelines WHERE name = %s", (pipeline,))
        (before,) = cur.fetchone()
        cur.execute(
            "UPDATE pipelines SET max_runtime_seconds = %s WHERE name = %s", (seconds, pipeline)
        )
    try:
        yield
    finally:
        with conn.cursor() as cur:
            cur.execute(
                "UPDATE pipelines SET max_runtime_seconds = %s WHERE name = %s", (before, pipeline)
            )


@pytest.mark.parametrize("value", [59, 604801, "x", 3600.5, None])
def test_a_bad_deadline_is_refused_naming_the_field(api, value):
    body = run_body(deadline_seconds=value)
    answer = api.post_run(body)
    if value is None:  # null: as if absent
        assert answer.status_code == 202, answer.text
        return
    assert answer.status_code == 422, answer.text
    [detail] = answer.json()["error"]["details"]
    assert detail["field"] == "deadline_seconds"
    assert detail["rule"] == ("range" if isinstance(value, int) else "type")
    assert "deadline_seconds" in answer.json()["error"]["message"]


def test_the_asked_deadline_is_stored_and_shown(api):
    answer = api.post_run(run_body(parameters=QUICK, deadline_seconds=600))
    assert answer.status_code == 202, answer.text
    run = answer.json()
    assert deadline_seconds(run) == pytest.approx(600, abs=0.01)
    assert deadline_seconds(api.get_run(run["id"])) == deadline_seconds(run)


def test_without_one_the_deadline_is_the_setting_then_the_pipelines(
    alice,  # noqa: F811 (the fixture)
    pipelines_db,
):
    plain = alice.post_run(run_body(parameters=QUICK)).json()
    assert deadline_seconds(plain) == pytest.approx(RUN_DEADLINE_SECONDS, abs=0.01)
    with max_runtime(pipelines_db, "demo-batch", 1800):
        listed = alice.session.get(f"{alice.base}/api/v1/pipelines", timeout=10).json()
        assert {p["name"]: p["max_runtime_seconds"] for p in listed["items"]}["demo-batch"] == 1800
        bounded = alice.post_run(run_body(parameters=QUICK)).json()
        asked = alice.post_run(run_body(parameters=QUICK, deadline_seconds=120)).json()
        alice.await_status(plain["id"], "COMPLETED", timeout=90)
        # A re-run's deadline is fresh, from the pipeline too.
        again = rerun(alice, plain["id"]).json()
    assert deadline_seconds(bounded) == pytest.approx(1800, abs=0.01)
    assert deadline_seconds(asked) == pytest.approx(120, abs=0.01)
    assert deadline_seconds(again) == pytest.approx(1800, abs=0.01)
    for run in (bounded, asked, again):
        alice.await_status(run["id"], "COMPLETED", timeout=90)
