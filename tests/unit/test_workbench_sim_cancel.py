"""Tests of the simulator's POST /jobs/{job_id}/cancel under a fake clock: the contract's
answers, the delay before CANCELLED, a job that ends first, the admin record, faults."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from tests.unit.workbench_sim_support import AUTH, Sim
from workbench_sim import ConfigError, SimConfig, get_state
from workbench_sim.jobs import iso

# queue 0.5 s, run 2 s (so a job ends 2.5 s after it is created), cancels take 1 s.
CANCEL_SECONDS = 1.0


@pytest.fixture
def sim(tmp_path: Path) -> Sim:
    return Sim(tmp_path, cancel_seconds=CANCEL_SECONDS)


def _submit(sim: Sim, run_id: str = "run-1", **simulate: object) -> str:
    parameters = {"simulate": simulate} if simulate else {}
    response = sim.submit(run_id, parameters=parameters)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["job_id"]


def _cancel_record(sim: Sim, job_id: str) -> dict | None:
    (job,) = [j for j in sim.jobs() if j["job_id"] == job_id]
    return job.get("cancel")


def test_a_running_job_is_cancelled_after_the_delay(sim: Sim) -> None:
    job_id = _submit(sim)
    sim.clock.advance(1.0)
    requested = sim.clock.now
    response = sim.cancel(job_id)
    assert response.status_code == 202
    assert response.get_json()["job_id"] == job_id
    assert response.get_json()["status"] == "RUNNING"
    assert _cancel_record(sim, job_id) == {
        "requested_at": iso(requested),
        "requests": 1,
        "state": "pending",
        "effective_at": iso(requested + CANCEL_SECONDS),
    }

    sim.clock.advance(CANCEL_SECONDS - 0.01)
    assert sim.status(job_id)["status"] == "RUNNING"
    sim.clock.advance(0.01)
    job = sim.status(job_id)
    assert job["status"] == "CANCELLED"
    assert job["finished_at"] == iso(requested + CANCEL_SECONDS)
    assert "started_at" in job and "error_message" not in job
    assert _cancel_record(sim, job_id)["state"] == "took_effect"
    # It stays cancelled past the time it would have ended.
    sim.clock.advance(10)
    assert sim.status(job_id)["status"] == "CANCELLED"


def test_a_queued_job_cancelled_before_it_starts_never_shows_a_start(sim: Sim) -> None:
    job_id = _submit(sim, queue_seconds=5)
    response = sim.cancel(job_id)
    assert (response.status_code, response.get_json()["status"]) == (202, "QUEUED")
    sim.clock.advance(CANCEL_SECONDS)
    job = sim.status(job_id)
    assert job["status"] == "CANCELLED"
    assert "started_at" not in job
    assert datetime.fromisoformat(job["finished_at"]) > datetime.fromisoformat(job["created_at"])


def test_the_delay_comes_from_the_config_or_the_job(tmp_path: Path) -> None:
    sim = Sim(tmp_path, run_seconds=100.0, cancel_seconds=5.0)
    default = _submit(sim, "run-default")
    own = _submit(sim, "run-own", cancel_seconds=20)
    sim.cancel(default)
    sim.cancel(own)
    sim.clock.advance(5.0)
    assert sim.status(default)["status"] == "CANCELLED"
    assert sim.status(own)["status"] == "RUNNING"
    sim.clock.advance(15.0)
    assert sim.status(own)["status"] == "CANCELLED"


def test_the_default_delay_is_two_seconds_and_the_environment_sets_it() -> None:
    assert SimConfig(api_token="t").cancel_seconds == 2.0
    assert SimConfig.from_env({"WORKBENCH_API_TOKEN": "t"}).cancel_seconds == 2.0
    env = {"WORKBENCH_API_TOKEN": "t", "SIM_CANCEL_SECONDS": "0.25"}
    assert SimConfig.from_env(env).cancel_seconds == 0.25
    assert "cancel_seconds=0.25" in repr(SimConfig.from_env(env))
    with pytest.raises(ConfigError, match="SIM_CANCEL_SECONDS"):
        SimConfig.from_env({"WORKBENCH_API_TOKEN": "t", "SIM_CANCEL_SECONDS": "-1"})


@pytest.mark.parametrize("seconds", [-1, "2", True, float("inf"), 86_401])
def test_a_bad_per_job_delay_is_refused(sim: Sim, seconds: object) -> None:
    body = sim.body(parameters={"simulate": {"cancel_seconds": seconds}})
    # json.dumps writes inf as Infinity, which the simulator's parser reads as a float.
    response = sim.client.post(
        "/jobs",
        data=json.dumps(body),
        headers={"Idempotency-Key": "run-1", "Content-Type": "application/json", **AUTH},
    )
    assert response.status_code == 422
    fields = [d["field"] for d in response.get_json()["error"]["details"]]
    assert fields == ["parameters.simulate.cancel_seconds"]


def test_a_zero_delay_cancels_at_once(tmp_path: Path) -> None:
    sim = Sim(tmp_path, cancel_seconds=0.0)
    job_id = _submit(sim)
    response = sim.cancel(job_id)
    assert (response.status_code, response.get_json()["status"]) == (202, "CANCELLED")
    assert sim.status(job_id)["status"] == "CANCELLED"


@pytest.mark.parametrize(
    ("simulate", "status"),
    [({}, "SUCCEEDED"), ({"outcome": "FAILED", "error_message": "disk full"}, "FAILED")],
)
def test_a_job_that_ends_before_the_cancel_takes_effect_keeps_its_outcome(
    tmp_path: Path, simulate: dict, status: str
) -> None:
    sim = Sim(tmp_path, cancel_seconds=5.0)
    job_id = _submit(sim, **simulate)
    sim.clock.advance(2.0)  # RUNNING, ending in 0.5 s: before the cancel's 5 s
    response = sim.cancel(job_id)
    assert (response.status_code, response.get_json()["status"]) == (202, "RUNNING")
    assert _cancel_record(sim, job_id)["state"] == "pending"
    sim.clock.advance(0.5)
    job = sim.status(job_id)
    assert job["status"] == status
    assert job.get("error_message") == simulate.get("error_message")
    record = _cancel_record(sim, job_id)
    assert record["state"] == "too_late" and "effective_at" not in record
    sim.clock.advance(10)
    assert sim.status(job_id)["status"] == status


def test_a_job_ending_first_still_does_its_work_and_a_cancelled_one_does_none(
    tmp_path: Path,
) -> None:
    sim = Sim(tmp_path, cancel_seconds=5.0)
    source = tmp_path / "in"
    source.mkdir()
    (source / "a.txt").write_text("a")
    outputs = {name: tmp_path / "out" / name for name in ("late", "cancelled")}
    jobs = {
        name: sim.submit(
            f"run-{name}",
            input_path_prefix=source.as_uri(),
            output_path_prefix=out.as_uri(),
            parameters={"simulate": {"cancel_seconds": 5 if name == "late" else 0.5}},
        ).get_json()["job_id"]
        for name, out in outputs.items()
    }
    for job_id in jobs.values():
        assert sim.cancel(job_id).status_code == 202
    sim.clock.advance(3.0)
    assert sim.status(jobs["late"])["status"] == "SUCCEEDED"
    assert sim.status(jobs["cancelled"])["status"] == "CANCELLED"
    assert (outputs["late"] / "_SUCCESS").exists()
    assert not outputs["cancelled"].exists()


@pytest.mark.parametrize(
    ("simulate", "status"),
    [({}, "SUCCEEDED"), ({"outcome": "FAILED"}, "FAILED"), ({"outcome": "CANCELLED"}, "CANCELLED")],
)
def test_an_ended_job_answers_200_with_its_final_status(
    sim: Sim, simulate: dict, status: str
) -> None:
    job_id = _submit(sim, **simulate)
    sim.clock.advance(2.5)
    response = sim.cancel(job_id)
    assert response.status_code == 200
    assert response.get_json()["status"] == status
    assert "finished_at" in response.get_json()
    # Asking changed nothing, and the record says the cancel came after the end.
    assert sim.status(job_id)["status"] == status
    assert _cancel_record(sim, job_id) == {
        "requested_at": iso(sim.clock.now),
        "requests": 1,
        "state": "too_late",
    }


def test_repeated_cancels_are_the_same_pending_cancel(sim: Sim) -> None:
    job_id = _submit(sim)
    sim.clock.advance(1.0)
    first = sim.clock.now
    assert sim.cancel(job_id).status_code == 202
    sim.clock.advance(0.5)
    again = sim.cancel(job_id)
    assert (again.status_code, again.get_json()["status"]) == (202, "RUNNING")
    record = _cancel_record(sim, job_id)
    assert record["requested_at"] == iso(first)
    assert record["effective_at"] == iso(first + CANCEL_SECONDS)
    assert record["requests"] == 2
    sim.clock.advance(0.5)
    assert sim.status(job_id)["status"] == "CANCELLED"
    # Once cancelled, a cancel is one for a job already ended.
    late = sim.cancel(job_id)
    assert (late.status_code, late.get_json()["status"]) == (200, "CANCELLED")
    assert _cancel_record(sim, job_id)["requests"] == 3


def test_an_unknown_job_is_404_and_a_token_is_needed(sim: Sim) -> None:
    response = sim.cancel("wb-nope")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    job_id = _submit(sim)
    refused = sim.cancel(job_id, headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 401
    assert _cancel_record(sim, job_id) is None
    assert sim.client.get(f"/jobs/{job_id}/cancel", headers=AUTH).status_code == 405


def test_the_sweeper_settles_a_cancelled_job(sim: Sim) -> None:
    job_id = _submit(sim)
    sim.cancel(job_id)
    store = get_state(sim.app).store
    assert store.finalize_due() == 0
    sim.clock.advance(CANCEL_SECONDS)
    assert store.finalize_due() == 1
    assert sim.jobs()[0]["status"] == "CANCELLED"
    stats = sim.client.get("/_sim/stats").get_json()["requests"]
    assert stats["POST /jobs/<job_id>/cancel"] == 1


# --- faults aimed at a cancel


def test_only_cancel_aims_a_fault_at_cancel_calls(sim: Sim) -> None:
    job_id = _submit(sim)
    armed = sim.faults(
        {"error_5xx": {"status": 503, "count": 1, "retry_after": 2, "only": "cancel"}}
    )
    assert armed.status_code == 200
    assert sim.status(job_id)["status"] == "QUEUED"
    assert sim.submit("run-2").status_code == 201
    refused = sim.cancel(job_id)
    assert (refused.status_code, refused.headers["Retry-After"]) == (503, "2")
    # Answered before any work: no cancel was recorded.
    assert _cancel_record(sim, job_id) is None
    assert sim.cancel(job_id).status_code == 202


def test_status_and_submit_faults_leave_cancels_alone(sim: Sim) -> None:
    job_id = _submit(sim)
    sim.faults({"rate_limit": {"rate": 1.0, "only": "status"}})
    sim.faults({"error_5xx": {"rate": 1.0, "only": "submit"}})
    assert sim.cancel(job_id).status_code == 202


def test_faults_aimed_at_a_job_or_run_fire_on_its_cancel_only(sim: Sim) -> None:
    mine, other = _submit(sim, "run-mine"), _submit(sim, "run-other")
    sim.faults({"rate_limit": {"count": 1, "retry_after": 4, "job_ids": [mine]}})
    assert sim.cancel(other).status_code == 202
    limited = sim.cancel(mine)
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "4")
    sim.faults({"error_5xx": {"count": 1, "status": 502, "run_ids": ["run-mine"]}})
    assert sim.cancel(mine).status_code == 502
    assert sim.cancel(mine).status_code == 202


def test_hostile_answers_reach_cancel_answers(sim: Sim) -> None:
    job_id = _submit(sim)
    sim.faults({"unknown_status": {"status": "CANCELLING", "count": 1, "only": "cancel"}})
    changed = sim.cancel(job_id)
    assert (changed.status_code, changed.get_json()["status"]) == (202, "CANCELLING")
    sim.faults({"html_200": {"count": 1, "only": "cancel"}})
    page = sim.cancel(job_id)
    assert page.status_code == 200 and page.content_type.startswith("text/html")
    assert (
        _cancel_record(sim, job_id)["requests"] == 1
    )  # the HTML page was answered before any work


def test_a_bad_only_names_every_endpoint(sim: Sim) -> None:
    response = sim.faults({"error_5xx": {"count": 1, "only": "delete"}})
    assert response.status_code == 422
    (detail,) = response.get_json()["error"]["details"]
    assert detail["field"] == "error_5xx.only"
    assert "submit, status, cancel" in detail["message"]
