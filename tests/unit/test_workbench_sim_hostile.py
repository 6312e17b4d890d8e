"""The simulator's hostile-answer faults (issue 12): poison messages, odd timestamps, unknown
statuses, HTML or broken JSON with 200, absurd Retry-After values, trickled answers."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.unit.workbench_sim_support import AUTH, Sim
from workbench_sim import SimConfig, SimServer, create_app
from workbench_sim.app import ADMIN_ENVIRON_KEY


@pytest.fixture
def sim(tmp_path: Path) -> Sim:
    return Sim(tmp_path)


def job_id_of(sim: Sim, run_id: str = "run-1") -> str:
    response = sim.submit(run_id)
    assert response.status_code == 201
    return response.get_json()["job_id"]


def raw_status(sim: Sim, job_id: str):
    return sim.client.get(f"/jobs/{job_id}", headers=AUTH)


def test_poison_error_message_nul_puts_nul_bytes_in_the_json(sim: Sim) -> None:
    job_id = job_id_of(sim)
    sim.faults({"poison_error_message": {"count": 1, "variant": "nul", "only": "status"}})
    response = raw_status(sim, job_id)
    assert response.status_code == 200
    assert b"\\u0000" in response.data
    assert "\x00" in response.get_json()["error_message"]
    # Used up: the next answer is clean.
    assert "error_message" not in sim.status(job_id)
    assert sim.client.get("/_sim/stats").get_json()["faults_injected"] == {
        "poison_error_message": 1
    }


def test_poison_error_message_huge_is_a_megabyte(sim: Sim) -> None:
    job_id = job_id_of(sim)
    sim.faults({"poison_error_message": {"count": 1, "variant": "huge"}})
    assert len(sim.status(job_id)["error_message"]) == 1024 * 1024


def test_poison_error_message_surrogate_is_a_lone_surrogate(sim: Sim) -> None:
    job_id = job_id_of(sim)
    sim.faults({"poison_error_message": {"count": 1, "variant": "surrogate"}})
    assert b"\\ud800" in raw_status(sim, job_id).data


@pytest.mark.parametrize(
    ("variant", "check"),
    [
        ("offset", lambda s: datetime.fromisoformat(s).utcoffset() == timedelta(hours=20)),
        ("year_0001", lambda s: s.startswith("0001-01-01T")),
        ("year_9999", lambda s: s.startswith("9999-12-31T")),
    ],
)
def test_odd_timestamps_set_both_timestamps(sim: Sim, variant, check) -> None:
    job_id = job_id_of(sim)
    sim.faults({"odd_timestamps": {"count": 1, "variant": variant, "job_ids": [job_id]}})
    answer = sim.status(job_id)
    assert check(answer["started_at"]) and check(answer["finished_at"])
    assert answer["status"] == "QUEUED" and answer["job_id"] == job_id


def test_unknown_status_replaces_the_status(sim: Sim) -> None:
    job_id = job_id_of(sim)
    sim.faults({"unknown_status": {"count": 2}})
    assert sim.status(job_id)["status"] == "CANCELLING"
    sim.faults({"unknown_status": {"count": 1, "status": "PAUSED", "only": "submit"}})
    assert sim.status(job_id)["status"] == "QUEUED"
    assert sim.submit("run-2").get_json()["status"] == "PAUSED"


def test_html_200_answers_a_proxy_page_before_any_work(sim: Sim) -> None:
    sim.faults({"html_200": {"count": 1, "only": "submit"}})
    response = sim.submit()
    assert response.status_code == 200
    assert response.content_type.startswith("text/html")
    assert b"<html" in response.data
    assert sim.jobs() == []


def test_malformed_json_answers_a_broken_body_with_200(sim: Sim) -> None:
    job_id = job_id_of(sim)
    sim.faults({"malformed_json": {"count": 1}})
    response = raw_status(sim, job_id)
    assert response.status_code == 200 and response.is_json
    with pytest.raises(ValueError):
        json.loads(response.data)


@pytest.mark.parametrize("value", ["1e12", "Fri, 31 Dec 9999 23:59:59 GMT", "-5"])
def test_retry_after_may_be_any_header_value(sim: Sim, value: str) -> None:
    sim.faults({"rate_limit": {"count": 1, "retry_after": value}})
    response = sim.submit()
    assert response.status_code == 429
    assert response.headers["Retry-After"] == value
    shown = sim.faults({"error_5xx": {"count": 1, "retry_after": value}}).get_json()
    assert shown["faults"]["error_5xx"]["retry_after"] == value


def test_hostile_answers_aimed_at_one_run_spare_the_others(sim: Sim) -> None:
    mine, other = job_id_of(sim, "mine"), job_id_of(sim, "other")
    sim.faults({"unknown_status": {"count": 1, "run_ids": ["mine"]}})
    assert sim.status(other)["status"] == "QUEUED"
    assert sim.status(mine)["status"] == "CANCELLING"


def test_hostile_answers_never_touch_error_answers_or_the_admin_port(sim: Sim) -> None:
    job_id = job_id_of(sim)
    sim.faults({"poison_error_message": {"rate": 1.0}, "unknown_status": {"rate": 1.0}})
    missing = raw_status(sim, "wb-nope")
    assert missing.status_code == 404 and "error_message" not in missing.get_json()
    admin = sim.client.get(
        f"/jobs/{job_id}", headers=AUTH, environ_base={ADMIN_ENVIRON_KEY: True}
    ).get_json()
    assert admin["status"] == "QUEUED" and "error_message" not in admin
    assert sim.status(job_id)["status"] == "CANCELLING"


def test_trickle_spreads_the_body_over_the_seconds(sim: Sim) -> None:
    job_id = job_id_of(sim)
    sim.faults({"trickle": {"count": 1, "seconds": 3}})
    response = raw_status(sim, job_id)
    assert response.get_json()["job_id"] == job_id
    assert len(sim.sleeps) >= 6 and max(sim.sleeps) <= 0.5
    assert sum(sim.sleeps) == pytest.approx(3.0)


@pytest.mark.parametrize(
    "spec",
    [
        {"poison_error_message": {"count": 1, "variant": "loud"}},
        {"odd_timestamps": {"count": 1, "variant": "year_0"}},
        {"unknown_status": {"count": 1, "status": ""}},
        {"unknown_status": {"count": 1, "status": 7}},
        {"html_200": {"count": 1, "variant": "nul"}},
        {"malformed_json": {"rate": 2}},
        {"trickle": {"count": 1, "seconds": 301}},
        {"rate_limit": {"count": 1, "retry_after": "x" * 101}},
        {"rate_limit": {"count": 1, "retry_after": "1\r\nSet-Cookie: a=b"}},
        {"rate_limit": {"count": 1, "retry_after": 1.5}},
    ],
)
def test_hostile_fault_settings_are_validated(sim: Sim, spec: dict) -> None:
    response = sim.faults(spec)
    assert response.status_code == 422, response.get_json()
    assert sim.client.get("/_sim/faults").get_json()["faults"] == {}


def test_real_server_trickles_the_answer(tmp_path: Path) -> None:
    config = SimConfig(api_token=Sim.token, queue_seconds=1, run_seconds=1)
    with SimServer(create_app(config), api_port=0, admin_port=0) as live:
        requests.post(
            f"{live.admin_url}/_sim/faults",
            json={"trickle": {"count": 1, "seconds": 1.5}},
            timeout=2,
        ).raise_for_status()
        started = time.monotonic()
        response = requests.get(f"{live.api_url}/jobs/wb-x", headers=AUTH, timeout=1, stream=True)
        first = time.monotonic() - started
        body = response.content
        whole = time.monotonic() - started
    assert response.status_code == 404 and json.loads(body)["error"]["code"] == "not_found"
    # The status line comes at once; the body takes the fault's seconds, never idle for 1 s.
    assert first < 1.0 <= whole
