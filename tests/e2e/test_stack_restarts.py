"""Faults through the whole stack: PostgreSQL, Conductor and the poller stopped and started.

Each test starts again what it stopped and waits until it answers (trying the start again if
it fails), so these tests may run in any order among the others.
"""

from __future__ import annotations

from pathlib import Path

import requests

from stack import supervisor
from tests.e2e.conftest import TERMINAL, database_ready, http_ready, run_body, stopped
from tests.integration.helpers import await_true


def _get(url: str) -> requests.Response:
    return requests.get(url, timeout=10)


def test_req_5_2_postgres_restarted_mid_way_recovers_without_restarting_services(
    api, stack_env, simulator
):
    before = {
        name: supervisor.ctl("pid", name, check=False).stdout.strip()
        for name in ("gateway", "submit-workers", "poller")
    }
    ids = [
        api.post_run(run_body(parameters={"simulate": {"duration_seconds": 6}}), wait=10).json()[
            "id"
        ]
        for _ in range(5)
    ]
    with stopped("postgres", database_ready(stack_env["PG_ADMIN_URL"])):
        poller_health = _get(f"{stack_env['POLLER_URL']}/healthz")
        poller_ready = _get(f"{stack_env['POLLER_URL']}/readyz")
        gateway_ready = _get(f"{stack_env['GATEWAY_URL']}/readyz")
        during = api.post_run(run_body())
        listing = api.session.get(f"{api.base}/api/v1/pipeline-runs", timeout=15)
    assert poller_health.status_code == 200, poller_health.text
    assert poller_ready.status_code == 503
    assert poller_ready.json()["checks"]["database"] != "ok"
    assert poller_ready.json()["checks"]["conductor"] == "ok"
    assert gateway_ready.status_code == 503
    assert during.status_code == 503, during.text
    assert during.json()["error"]["code"] == "database_unavailable"
    assert listing.status_code == 503
    for run_id in ids:
        run = api.await_status(run_id, TERMINAL, timeout=120)
        assert run["status"] == "COMPLETED", run
    after = api.post_run(run_body(), wait=15)
    assert after.status_code == 202, after.text
    api.await_status(after.json()["id"], "COMPLETED", timeout=60)
    await_true(http_ready(f"{stack_env['POLLER_URL']}/readyz"), 60, "the poller to be ready again")
    now = {name: supervisor.ctl("pid", name, check=False).stdout.strip() for name in before}
    assert now == before, "no service may be restarted to recover"


def test_req_5_3_conductor_stopped_gives_503_and_a_failed_row_then_recovers(api, stack_env):
    conductor_health = stack_env["CONDUCTOR_SERVER_URL"].removesuffix("/api") + "/health"
    with stopped("conductor", http_ready(conductor_health), timeout=300):
        resp = api.post_run(run_body())
        ready = _get(f"{stack_env['GATEWAY_URL']}/readyz")
    assert resp.status_code == 503, resp.text
    error = resp.json()["error"]
    run_id = next(d["run_id"] for d in error["details"] if "run_id" in d)
    assert run_id in error["message"]
    assert ready.status_code == 503
    run = api.get_run(run_id)
    assert run["status"] == "FAILED"
    assert run["error_message"] == "Conductor could not be reached; the run was not started"
    assert run["error_details"]["code"] == "conductor_unavailable"
    # Clients get a sentence and a code, never the orchestrator's address (issue 12.11).
    conductor_host = stack_env["CONDUCTOR_SERVER_URL"].split("//", 1)[1].split("/", 1)[0]
    assert conductor_host not in resp.text
    assert conductor_host not in str(run)
    assert run["history"][-1]["source"] == "gateway"
    await_true(http_ready(f"{stack_env['GATEWAY_URL']}/readyz"), 120, "the gateway to be ready")
    again = api.post_run(run_body())
    assert again.status_code == 202, again.text
    assert api.await_status(again.json()["id"], "COMPLETED", timeout=180)


def test_req_5_4_poller_stops_cleanly_on_sigterm_and_loses_no_update(api, stack_env):
    ids = [
        api.post_run(run_body(parameters={"simulate": {"duration_seconds": 3}}), wait=10).json()[
            "id"
        ]
        for _ in range(4)
    ]
    log = Path(stack_env["STACK_DIR"]) / "logs" / "poller.log"
    offset = log.stat().st_size
    with stopped("poller", http_ready(f"{stack_env['POLLER_URL']}/readyz")):
        stopped_log = log.read_text(errors="replace")[offset:]
        assert supervisor.state("poller") == "STOPPED"
        assert "poller workers stopped" in stopped_log
        assert "Traceback" not in stopped_log
    for run_id in ids:
        run = api.await_status(run_id, TERMINAL, timeout=90)
        assert run["status"] == "COMPLETED"
        moves = [(h["previous_status"], h["status"]) for h in run["history"]]
        assert len(moves) == len(set(moves)), moves
