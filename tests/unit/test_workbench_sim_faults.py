"""Tests of the simulator's fault switches: kinds, counts, shares, aiming, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.workbench_sim_support import AUTH, Sim
from workbench_sim import AnswerLost
from workbench_sim.app import ADMIN_ENVIRON_KEY


@pytest.fixture
def sim(tmp_path: Path) -> Sim:
    return Sim(tmp_path)


# --- faults


def test_error_5xx_count_answers_the_next_calls_then_stops(sim: Sim) -> None:
    response = sim.faults({"error_5xx": {"status": 503, "count": 2, "retry_after": 3}})
    assert response.get_json()["faults"] == {
        "error_5xx": {"status": 503, "retry_after": 3, "remaining": 2}
    }
    first = sim.submit()
    assert first.status_code == 503
    assert first.headers["Retry-After"] == "3"
    assert first.get_json()["error"]["code"] == "unavailable"
    assert sim.client.get("/jobs/wb-x", headers=AUTH).status_code == 503
    # A 5xx is answered before any work: no job was created.
    assert sim.jobs() == []
    assert sim.submit().status_code == 201
    assert sim.client.get("/_sim/faults").get_json()["faults"] == {}
    stats = sim.client.get("/_sim/stats").get_json()
    assert stats["faults_injected"] == {"error_5xx": 2}


def test_error_5xx_rate_uses_the_random_share(tmp_path: Path) -> None:
    sim = Sim(tmp_path)
    sim.faults({"error_5xx": {"status": 500, "rate": 1.0}})
    assert [sim.submit(f"r{i}").status_code for i in range(3)] == [500, 500, 500]
    sim.faults({"error_5xx": {"status": 500, "rate": 0.0}})
    assert [sim.submit(f"r{i}").status_code for i in range(3)] == [201, 201, 201]
    sim.faults({"error_5xx": {"status": 502, "rate": 0.5}})
    codes = [sim.client.get("/jobs/wb-x", headers=AUTH).status_code for _ in range(200)]
    assert 40 < codes.count(502) < 160
    assert set(codes) == {502, 404}


def test_rate_limit_answers_429_with_retry_after(sim: Sim) -> None:
    sim.faults({"rate_limit": {"count": 1, "retry_after": 7}})
    limited = sim.submit()
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "7"
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert sim.submit().status_code == 201


def test_rate_limit_wins_over_5xx_without_using_its_count(sim: Sim) -> None:
    sim.faults({"rate_limit": {"count": 1}, "error_5xx": {"count": 1}})
    assert sim.submit().status_code == 429
    assert sim.submit().status_code == 503
    assert sim.submit().status_code == 201


def test_slow_fault_sleeps_before_answering(sim: Sim) -> None:
    sim.faults({"slow": {"seconds": 1.5, "count": 2}})
    assert sim.submit().status_code == 201
    assert sim.client.get("/healthz").status_code == 200
    assert sim.submit().status_code == 200
    assert sim.submit().status_code == 200
    assert sim.sleeps == [1.5, 1.5]


def test_faults_never_touch_healthz_admin_routes_or_the_admin_port(sim: Sim) -> None:
    sim.faults({"error_5xx": {"rate": 1.0}, "lose_submit_answer": {"rate": 1.0}})
    assert sim.client.get("/healthz").status_code == 200
    assert sim.client.get("/_sim/jobs").status_code == 200
    admin = {ADMIN_ENVIRON_KEY: True}
    via_admin = sim.client.post(
        "/jobs",
        json=sim.body(),
        headers={"Idempotency-Key": "run-1", **AUTH},
        environ_base=admin,
    )
    assert via_admin.status_code == 201
    assert sim.submit().status_code == 503


def test_lose_submit_answer_creates_the_job_but_gives_no_answer(sim: Sim) -> None:
    sim.faults({"lose_submit_answer": {"count": 1}})
    with pytest.raises(AnswerLost):
        sim.submit("run-1")
    jobs = sim.jobs("run-1")
    assert len(jobs) == 1
    retry = sim.submit("run-1")
    assert retry.status_code == 200
    assert retry.get_json()["job_id"] == jobs[0]["job_id"]
    assert sim.client.get("/_sim/stats").get_json()["faults_injected"] == {"lose_submit_answer": 1}


def test_a_fault_aimed_at_runs_fires_and_counts_only_on_their_calls(sim: Sim) -> None:
    shown = sim.faults({"error_5xx": {"count": 2, "run_ids": ["mine", "also-mine"]}}).get_json()
    assert shown["faults"]["error_5xx"]["run_ids"] == ["also-mine", "mine"]
    other = sim.submit("other")
    assert other.status_code == 201
    assert sim.client.get(f"/jobs/{other.get_json()['job_id']}", headers=AUTH).status_code == 200
    assert sim.submit("other").status_code == 200
    # Nobody else's call used up the count: the aimed run still gets both errors.
    assert sim.client.get("/_sim/faults").get_json()["faults"]["error_5xx"]["remaining"] == 2
    assert [sim.submit("mine").status_code for _ in range(3)] == [503, 503, 201]
    assert sim.client.get("/_sim/stats").get_json()["faults_injected"] == {"error_5xx": 2}
    assert sim.client.get("/_sim/faults").get_json()["faults"] == {}


def test_a_fault_aimed_at_a_run_also_hits_the_status_calls_of_its_job(sim: Sim) -> None:
    mine = sim.submit("mine").get_json()["job_id"]
    other = sim.submit("other").get_json()["job_id"]
    sim.faults({"rate_limit": {"count": 1, "run_ids": ["mine"], "only": "status"}})
    assert sim.submit("mine").status_code == 200
    assert sim.client.get(f"/jobs/{other}", headers=AUTH).status_code == 200
    assert sim.client.get(f"/jobs/{mine}", headers=AUTH).status_code == 429
    assert sim.client.get(f"/jobs/{mine}", headers=AUTH).status_code == 200


def test_a_fault_aimed_at_jobs_fires_only_on_calls_to_those_jobs(sim: Sim) -> None:
    mine = sim.submit("mine").get_json()["job_id"]
    other = sim.submit("other").get_json()["job_id"]
    sim.faults({"error_5xx": {"status": 502, "rate": 1.0, "job_ids": [mine, "wb-not-yet"]}})
    assert sim.client.get(f"/jobs/{mine}", headers=AUTH).status_code == 502
    assert sim.client.get("/jobs/wb-not-yet", headers=AUTH).status_code == 502
    assert sim.client.get(f"/jobs/{other}", headers=AUTH).status_code == 200
    assert sim.submit("mine").status_code == 200  # a submit is no call to a job id
    assert sim.client.get("/_sim/stats").get_json()["faults_injected"] == {"error_5xx": 2}


def test_a_fault_aimed_at_input_prefixes_hits_their_submits_and_their_jobs(sim: Sim) -> None:
    sim.faults({"slow": {"seconds": 2, "rate": 1.0, "input_path_prefixes": ["s3://bucket/t1/"]}})
    assert sim.submit("other", input_path_prefix="s3://bucket/t10/a").status_code == 201
    assert sim.sleeps == []
    mine = sim.submit("mine", input_path_prefix="s3://bucket/t1/a")
    assert mine.status_code == 201
    assert sim.sleeps == [2.0]
    sim.status(mine.get_json()["job_id"])
    assert sim.sleeps == [2.0, 2.0]


def test_lose_submit_answer_aimed_at_a_run_spares_the_others(sim: Sim) -> None:
    sim.faults({"lose_submit_answer": {"count": 1, "run_ids": ["mine"]}})
    assert sim.submit("other").status_code == 201
    with pytest.raises(AnswerLost):
        sim.submit("mine")
    assert sim.submit("mine").status_code == 200
    assert sim.client.get("/_sim/stats").get_json()["faults_injected"] == {"lose_submit_answer": 1}


def test_fault_settings_are_validated(sim: Sim) -> None:
    bad_specs = [
        {},
        [],
        {"meteor_strike": {}},
        {"error_5xx": {"status": 404, "count": 1}},
        {"error_5xx": {"count": 1, "rate": 0.5}},
        {"error_5xx": {}},
        {"rate_limit": {"rate": 2}},
        {"slow": {"count": 1}},
        {"lose_submit_answer": {"count": 0}},
        {"refuse_connections": {"seconds": 0}},
        {"refuse_connections": {"seconds": 1, "port": 9}},
        {"slow": "yes"},
        {"error_5xx": {"count": 1, "run_ids": []}},
        {"error_5xx": {"count": 1, "run_ids": "run-1"}},
        {"rate_limit": {"count": 1, "job_ids": [7]}},
        {"slow": {"seconds": 1, "count": 1, "input_path_prefixes": [""]}},
        {"lose_submit_answer": {"count": 1, "job_ids": ["wb-x"]}},
        {"refuse_connections": {"seconds": 1, "run_ids": ["run-1"]}},
    ]
    for spec in bad_specs:
        response = sim.faults(spec)  # type: ignore[arg-type]
        assert response.status_code == 422, spec
        assert response.get_json()["error"]["details"], spec
    not_json = sim.client.post("/_sim/faults", data="{", content_type="application/json")
    assert not_json.status_code == 422
    assert sim.client.get("/_sim/faults").get_json() == {"faults": {}}


def test_faults_combine_replace_per_kind_and_clear(sim: Sim) -> None:
    sim.faults({"error_5xx": {"count": 1}, "slow": {"seconds": 1, "rate": 0.25}})
    sim.faults({"error_5xx": {"count": 4, "status": 500}})
    shown = sim.client.get("/_sim/faults").get_json()["faults"]
    assert shown == {
        "error_5xx": {"status": 500, "remaining": 4},
        "slow": {"seconds": 1.0, "rate": 0.25},
    }
    sim.faults({"slow": None})
    assert set(sim.client.get("/_sim/faults").get_json()["faults"]) == {"error_5xx"}
    assert sim.client.delete("/_sim/faults").get_json() == {"faults": {}}


def test_refuse_connections_is_shown_until_it_expires(sim: Sim) -> None:
    sim.faults({"refuse_connections": {"seconds": 5}})
    shown = sim.client.get("/_sim/faults").get_json()["faults"]["refuse_connections"]
    assert shown["remaining_seconds"] == 5
    sim.clock.advance(6)
    assert sim.client.get("/_sim/faults").get_json()["faults"] == {}


def test_faults_can_be_aimed_at_one_endpoint():
    from workbench_sim.faults import FaultInjector

    injector = FaultInjector(clock=lambda: 0.0)
    injector.configure({"error_5xx": {"status": 503, "count": 2, "only": "submit"}})
    assert injector.on_api_call("status").status is None
    assert injector.on_api_call("submit").status == 503
    assert injector.on_api_call("status").status is None
    assert injector.on_api_call("submit").status == 503
    assert injector.on_api_call("submit").status is None
