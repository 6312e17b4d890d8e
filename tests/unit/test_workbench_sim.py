"""Tests of the Workbench simulator: app logic with a fake clock, and the real server."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests

from workbench_sim import AnswerLost, ConfigError, SimConfig, SimServer, create_app, get_state
from workbench_sim.app import ADMIN_ENVIRON_KEY
from workbench_sim.jobs import JobStore, parse_submission

AUTH = {"Authorization": "Bearer test-token-x"}
REPO_ROOT = Path(__file__).resolve().parents[2]
JOB_ID = re.compile(r"^wb-[0-9a-f]{32}$")


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_700_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _body(run_id: str = "run-1", **overrides: object) -> dict:
    body = {
        "pipeline_run_id": run_id,
        "pipeline": "demo",
        "input_path_prefix": "s3://bucket/in/",
        "output_path_prefix": "s3://bucket/out/",
        "parameters": {},
    }
    return body | overrides


class Sim:
    """An app under a fake clock, with helpers for the calls tests make over and over."""

    token = "test-token-x"

    def __init__(self, tmp_path: Path, **config: object):
        self.clock = FakeClock()
        self.sleeps: list[float] = []
        settings = {"queue_seconds": 0.5, "run_seconds": 2.0} | config
        self.app = create_app(
            SimConfig(api_token=self.token, **settings),  # type: ignore[arg-type]
            clock=self.clock,
            sleep=self.sleeps.append,
        )
        self.client = self.app.test_client()
        self.tmp_path = tmp_path

    def body(self, run_id: str = "run-1", **overrides: object) -> dict:
        return _body(run_id, **overrides)

    def submit(self, run_id: str = "run-1", *, headers: dict | None = None, **overrides: object):
        headers = {"Idempotency-Key": run_id, **AUTH} if headers is None else headers
        return self.client.post("/jobs", json=self.body(run_id, **overrides), headers=headers)

    def status(self, job_id: str) -> dict:
        response = self.client.get(f"/jobs/{job_id}", headers=AUTH)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def jobs(self, run_id: str | None = None) -> list[dict]:
        query = {"pipeline_run_id": run_id} if run_id else {}
        return self.client.get("/_sim/jobs", query_string=query).get_json()["items"]

    def faults(self, spec: dict):
        return self.client.post("/_sim/faults", json=spec)


@pytest.fixture
def sim(tmp_path: Path) -> Sim:
    return Sim(tmp_path)


def _at(iso_text: str) -> datetime:
    parsed = datetime.fromisoformat(iso_text)
    assert parsed.utcoffset() == timedelta(0), iso_text
    return parsed


# --- contract: auth, validation, idempotency


def test_healthz_needs_no_token(sim: Sim) -> None:
    response = sim.client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong", "Basic test-token-x", "test-token-x", "Bearer ünïcode"],
)
def test_api_refuses_missing_or_wrong_token(sim: Sim, authorization: str | None) -> None:
    headers = {"Idempotency-Key": "run-1"}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = sim.submit(headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert sim.client.get("/jobs/wb-x", headers=headers).status_code == 401
    assert sim.jobs() == []


def test_bearer_scheme_is_case_insensitive(sim: Sim) -> None:
    headers = {"Idempotency-Key": "run-1", "Authorization": "bearer test-token-x"}
    assert sim.submit(headers=headers).status_code == 201


def test_submit_creates_a_queued_job(sim: Sim) -> None:
    response = sim.submit("run-1")
    assert response.status_code == 201
    body = response.get_json()
    assert JOB_ID.match(body["job_id"])
    assert body["status"] == "QUEUED"
    assert response.headers["Location"] == f"/jobs/{body['job_id']}"


def test_repeated_idempotency_key_returns_the_same_job(sim: Sim) -> None:
    first = sim.submit("run-1").get_json()
    sim.clock.advance(1.0)
    again = sim.submit("run-1")
    assert again.status_code == 200
    assert again.get_json()["job_id"] == first["job_id"]
    # The repeat reports the job's current status, not the one it was created with.
    assert again.get_json()["status"] == "RUNNING"
    other = sim.submit("run-2")
    assert other.status_code == 201
    assert other.get_json()["job_id"] != first["job_id"]

    jobs = sim.jobs("run-1")
    assert len(jobs) == 1
    assert jobs[0]["submissions"] == 2
    assert jobs[0]["idempotency_key"] == "run-1"
    assert get_state(sim.app).store.created_count == 2


def test_concurrent_submissions_with_one_key_create_one_job() -> None:
    store = JobStore(clock=time.time, queue_seconds=1, run_seconds=1)
    submission = parse_submission(_body("run-1"))
    results: list[tuple[dict, bool]] = []
    barrier = threading.Barrier(16)

    def submit() -> None:
        barrier.wait()
        results.append(store.submit("run-1", submission))

    threads = [threading.Thread(target=submit) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.created_count == 1
    assert len({view["job_id"] for view, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_missing_idempotency_key_is_400(sim: Sim) -> None:
    for headers in (AUTH, {**AUTH, "Idempotency-Key": "   "}):
        response = sim.submit(headers=headers)
        assert response.status_code == 400
        assert response.get_json()["error"]["code"] == "missing_idempotency_key"
    assert sim.jobs() == []


def test_unreadable_body_is_400(sim: Sim) -> None:
    headers = {"Idempotency-Key": "run-1", **AUTH, "Content-Type": "application/json"}
    for data in ("{not json", "[1, 2]", '"text"'):
        response = sim.client.post("/jobs", data=data, headers=headers)
        assert response.status_code == 400, data
        assert response.get_json()["error"]["message"]


def test_invalid_fields_are_422_naming_each_field(sim: Sim) -> None:
    body = {
        "pipeline": 7,
        "input_path_prefix": "not-a-uri",
        "output_path_prefix": "",
        "parameters": [],
    }
    headers = {"Idempotency-Key": "run-1", **AUTH}
    response = sim.client.post("/jobs", json=body, headers=headers)
    assert response.status_code == 422
    details = {d["field"]: d["rule"] for d in response.get_json()["error"]["details"]}
    assert details == {
        "pipeline_run_id": "required",
        "pipeline": "type",
        "input_path_prefix": "uri",
        "output_path_prefix": "not_empty",
        "parameters": "type",
    }
    assert sim.jobs() == []


def test_invalid_simulate_settings_are_422(sim: Sim) -> None:
    response = sim.submit(
        parameters={
            "simulate": {
                "outcome": "EXPLODED",
                "duration_seconds": -1,
                "queue_seconds": True,
                "error_message": 5,
                "colour": "red",
            }
        }
    )
    assert response.status_code == 422
    fields = {d["field"] for d in response.get_json()["error"]["details"]}
    assert fields == {
        "parameters.simulate.outcome",
        "parameters.simulate.duration_seconds",
        "parameters.simulate.queue_seconds",
        "parameters.simulate.error_message",
        "parameters.simulate.colour",
    }


def test_unknown_job_is_404_and_errors_are_json(sim: Sim) -> None:
    response = sim.client.get("/jobs/wb-does-not-exist", headers=AUTH)
    assert response.status_code == 404
    assert "wb-does-not-exist" in response.get_json()["error"]["message"]
    assert sim.client.get("/nowhere").get_json()["error"]["code"] == "not_found"
    not_allowed = sim.client.put("/jobs", headers=AUTH)
    assert not_allowed.status_code == 405
    assert "POST" in not_allowed.headers["Allow"]


def test_oversized_body_is_413(sim: Sim) -> None:
    response = sim.submit(parameters={"blob": "x" * (1024 * 1024 + 1)})
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"


# --- lifecycle


def test_job_moves_queued_running_succeeded_by_time(sim: Sim) -> None:
    created = sim.submit().get_json()
    job_id = created["job_id"]
    created_at = _at(created["created_at"])

    queued = sim.status(job_id)
    assert queued["status"] == "QUEUED"
    assert "started_at" not in queued and "finished_at" not in queued

    sim.clock.advance(0.6)
    running = sim.status(job_id)
    assert running["status"] == "RUNNING"
    assert _at(running["started_at"]) == created_at + timedelta(seconds=0.5)
    assert "finished_at" not in running

    # Read long after the end: finished_at is when it was due, not when it was read.
    sim.clock.advance(100)
    done = sim.status(job_id)
    assert done["status"] == "SUCCEEDED"
    assert _at(done["finished_at"]) == created_at + timedelta(seconds=2.5)
    assert "error_message" not in done


def test_configured_times_come_from_config(tmp_path: Path) -> None:
    sim = Sim(tmp_path, queue_seconds=0, run_seconds=10)
    job_id = sim.submit().get_json()["job_id"]
    assert sim.status(job_id)["status"] == "RUNNING"
    sim.clock.advance(10)
    assert sim.status(job_id)["status"] == "SUCCEEDED"


def test_simulate_failed_outcome_with_message_and_timing(sim: Sim) -> None:
    simulate = {
        "outcome": "FAILED",
        "error_message": "out of disk",
        "duration_seconds": 5,
        "queue_seconds": 1,
    }
    job_id = sim.submit(parameters={"simulate": simulate}).get_json()["job_id"]
    sim.clock.advance(1.5)
    assert sim.status(job_id)["status"] == "RUNNING"
    sim.clock.advance(4.0)
    assert sim.status(job_id)["status"] == "RUNNING", "it runs 5 s after a 1 s queue"
    sim.clock.advance(0.5)
    failed = sim.status(job_id)
    assert failed["status"] == "FAILED"
    assert failed["error_message"] == "out of disk"
    assert _at(failed["finished_at"]) - _at(failed["started_at"]) == timedelta(seconds=5)


def test_simulate_failed_without_message_and_cancelled(sim: Sim) -> None:
    failed = sim.submit("run-f", parameters={"simulate": {"outcome": "failed"}}).get_json()
    cancelled = sim.submit("run-c", parameters={"simulate": {"outcome": "CANCELLED"}}).get_json()
    sim.clock.advance(3)
    assert sim.status(failed["job_id"])["error_message"] == "simulated failure"
    assert sim.status(cancelled["job_id"])["status"] == "CANCELLED"


# --- file:// processing


def _tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.csv": b"id,value\n1,2\n",
        "nested/deeper/b.bin": bytes(range(256)) * 10,
        "nested/empty.txt": b"",
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def test_file_prefix_job_writes_manifest_with_sha256(sim: Sim, tmp_path: Path) -> None:
    files = _tree(tmp_path / "in")
    out = tmp_path / "out" / "run-1"
    job_id = sim.submit(
        input_path_prefix=(tmp_path / "in").as_uri(),
        output_path_prefix=out.as_uri(),
    ).get_json()["job_id"]

    sim.clock.advance(2.0)
    assert sim.status(job_id)["status"] == "RUNNING"
    assert not out.exists(), "nothing is written before the job finishes"

    sim.clock.advance(1.0)
    assert sim.status(job_id)["status"] == "SUCCEEDED"
    manifest = json.loads((out / "_manifest.json").read_text())
    assert (out / "_SUCCESS").exists()
    assert manifest["job_id"] == job_id
    assert manifest["pipeline_run_id"] == "run-1"
    assert manifest["files"] == [
        {"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for rel, data in sorted(files.items())
    ]
    assert manifest["total_files"] == 3
    assert manifest["total_bytes"] == sum(len(d) for d in files.values())

    # The finishing work runs once: later reads do not write the output again.
    (out / "_SUCCESS").unlink()
    sim.clock.advance(10)
    assert sim.status(job_id)["status"] == "SUCCEEDED"
    assert sim.jobs()[0]["status"] == "SUCCEEDED"
    assert not (out / "_SUCCESS").exists()


def test_missing_input_directory_fails_the_job(sim: Sim, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    out = tmp_path / "out"
    job_id = sim.submit(
        input_path_prefix=missing.as_uri(), output_path_prefix=out.as_uri()
    ).get_json()["job_id"]
    sim.clock.advance(3)
    failed = sim.status(job_id)
    assert failed["status"] == "FAILED"
    assert "does not exist" in failed["error_message"]
    assert str(missing) in failed["error_message"]
    assert not out.exists()


def test_simulated_failure_writes_nothing(sim: Sim, tmp_path: Path) -> None:
    _tree(tmp_path / "in")
    out = tmp_path / "out"
    job_id = sim.submit(
        input_path_prefix=(tmp_path / "in").as_uri(),
        output_path_prefix=out.as_uri(),
        parameters={"simulate": {"outcome": "FAILED"}},
    ).get_json()["job_id"]
    sim.clock.advance(3)
    assert sim.status(job_id)["status"] == "FAILED"
    assert not out.exists()


def test_remote_prefixes_just_succeed(sim: Sim) -> None:
    job_id = sim.submit(
        input_path_prefix="gs://bucket/in/", output_path_prefix="abfs://c@acct/out/"
    ).get_json()["job_id"]
    sim.clock.advance(3)
    assert sim.status(job_id)["status"] == "SUCCEEDED"


# --- job log and admin


def test_job_log_has_one_line_per_created_job(tmp_path: Path) -> None:
    log_path = tmp_path / "logs" / "jobs.jsonl"
    sim = Sim(tmp_path, job_log_path=log_path)
    first = sim.submit("run-1").get_json()
    sim.submit("run-1")
    second = sim.submit("run-2").get_json()

    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [line["job_id"] for line in lines] == [first["job_id"], second["job_id"]]
    assert lines[0]["pipeline_run_id"] == "run-1"
    assert lines[0]["idempotency_key"] == "run-1"
    assert _at(lines[0]["created_at"]) == _at(first["created_at"])

    # Reset forgets jobs but the log is append-only.
    sim.client.post("/_sim/reset")
    sim.submit("run-1")
    assert len(log_path.read_text().splitlines()) == 3


def test_admin_jobs_filter_and_stats(sim: Sim) -> None:
    sim.submit("run-1")
    sim.submit("run-1")
    sim.submit("run-2")
    assert {j["pipeline_run_id"] for j in sim.jobs()} == {"run-1", "run-2"}
    assert [j["pipeline_run_id"] for j in sim.jobs("run-2")] == ["run-2"]
    assert sim.jobs("run-3") == []

    sim.faults({"error_5xx": {"count": 1}})
    sim.client.get("/jobs/wb-x", headers=AUTH)
    stats = sim.client.get("/_sim/stats").get_json()
    assert stats["requests"]["POST /jobs"] == 3
    assert stats["requests"]["GET /jobs/<job_id>"] == 1
    assert stats["jobs_created"] == 2
    assert stats["faults_injected"] == {"error_5xx": 1}


def test_reset_clears_jobs_faults_and_counters(sim: Sim) -> None:
    sim.submit("run-1")
    sim.faults({"error_5xx": {"count": 5}})
    assert sim.client.post("/_sim/reset").status_code == 200
    assert sim.jobs() == []
    assert sim.client.get("/_sim/faults").get_json() == {"faults": {}}
    stats = sim.client.get("/_sim/stats").get_json()
    assert stats["jobs_created"] == 0
    assert stats["faults_injected"] == {}
    assert sim.submit("run-1").status_code == 201


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


# --- configuration


def test_config_from_env_defaults_and_values(tmp_path: Path) -> None:
    config = SimConfig.from_env({"WORKBENCH_API_TOKEN": "t"})
    assert (config.host, config.port, config.admin_port) == ("127.0.0.1", 18090, 18091)
    assert (config.queue_seconds, config.run_seconds, config.job_log_path) == (0.5, 2.0, None)
    config = SimConfig.from_env(
        {
            "WORKBENCH_API_TOKEN": "t",
            "SIM_HOST": "0.0.0.0",
            "SIM_PORT": "0",
            "SIM_ADMIN_PORT": "9001",
            "SIM_QUEUE_SECONDS": "0",
            "SIM_RUN_SECONDS": "0.25",
            "SIM_JOB_LOG": str(tmp_path / "jobs.log"),
        }
    )
    assert (config.host, config.port, config.admin_port) == ("0.0.0.0", 0, 9001)
    assert (config.queue_seconds, config.run_seconds) == (0.0, 0.25)
    assert config.job_log_path == tmp_path / "jobs.log"
    assert "supersecret" not in repr(SimConfig(api_token="supersecret"))


@pytest.mark.parametrize(
    ("env", "mentions"),
    [
        ({}, "WORKBENCH_API_TOKEN"),
        ({"WORKBENCH_API_TOKEN": "  "}, "WORKBENCH_API_TOKEN"),
        ({"WORKBENCH_API_TOKEN": "t", "SIM_PORT": "http"}, "SIM_PORT"),
        ({"WORKBENCH_API_TOKEN": "t", "SIM_ADMIN_PORT": "70000"}, "SIM_ADMIN_PORT"),
        ({"WORKBENCH_API_TOKEN": "t", "SIM_RUN_SECONDS": "-1"}, "SIM_RUN_SECONDS"),
        ({"WORKBENCH_API_TOKEN": "t", "SIM_QUEUE_SECONDS": "nan"}, "SIM_QUEUE_SECONDS"),
        ({"WORKBENCH_API_TOKEN": "t", "SIM_PORT": "9000", "SIM_ADMIN_PORT": "9000"}, "differ"),
    ],
)
def test_config_rejects_bad_values(env: dict[str, str], mentions: str) -> None:
    with pytest.raises(ConfigError, match=mentions):
        SimConfig.from_env(env)


# --- the real server


@pytest.fixture
def live(tmp_path: Path):
    config = SimConfig(
        api_token=Sim.token,
        queue_seconds=0.05,
        run_seconds=0.1,
        job_log_path=tmp_path / "jobs.log",
    )
    server = SimServer(create_app(config), host="127.0.0.1", api_port=0, admin_port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _api_up(server: SimServer) -> bool:
    try:
        return requests.get(f"{server.api_url}/healthz", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def test_real_server_refuses_connections_and_reopens(live: SimServer) -> None:
    api, admin = live.api_url, live.admin_url
    assert requests.get(f"{api}/healthz", timeout=2).status_code == 200

    armed = requests.post(f"{admin}/_sim/faults", json={"refuse_connections": {"seconds": 60}})
    assert armed.status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{api}/healthz", timeout=2)
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{api}/jobs", json={}, headers=AUTH, timeout=2)
    # The admin port keeps answering, so the fault can be switched off again.
    shown = requests.get(f"{admin}/_sim/faults", timeout=2).json()["faults"]
    assert "refuse_connections" in shown

    assert requests.delete(f"{admin}/_sim/faults", timeout=2).status_code == 200
    # Reopened before the DELETE answered, on the same port.
    assert requests.get(f"{api}/healthz", timeout=2).status_code == 200
    assert live.api_url == api

    # Armed through the API port itself, and reopening on its own when the time is up.
    started = time.monotonic()
    requests.post(f"{api}/_sim/faults", json={"refuse_connections": {"seconds": 0.5}}, timeout=2)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{api}/healthz", timeout=2)
    assert _wait_until(lambda: _api_up(live))
    assert time.monotonic() - started >= 0.45


def test_real_server_keeps_trying_when_its_port_was_taken_meanwhile(live: SimServer) -> None:
    requests.post(f"{live.admin_url}/_sim/faults", json={"refuse_connections": {"seconds": 60}})
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", live.api_port))
        squatter.listen()
        # The fault is cleared even though the port cannot be reopened yet.
        assert requests.delete(f"{live.admin_url}/_sim/faults", timeout=2).status_code == 200
    assert _wait_until(lambda: _api_up(live))


def test_real_server_loses_the_submit_answer_then_retry_gets_the_job(
    live: SimServer, tmp_path: Path
) -> None:
    api, admin = live.api_url, live.admin_url
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data.txt").write_bytes(b"payload")
    body = {
        "pipeline_run_id": "run-lost",
        "pipeline": "demo",
        "input_path_prefix": (tmp_path / "in").as_uri(),
        "output_path_prefix": (tmp_path / "out").as_uri(),
        "parameters": {},
    }
    headers = {"Idempotency-Key": "run-lost", **AUTH}
    requests.post(f"{admin}/_sim/faults", json={"lose_submit_answer": {"count": 1}}, timeout=2)

    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        requests.post(f"{api}/jobs", json=body, headers=headers, timeout=5)

    jobs = requests.get(f"{admin}/_sim/jobs", params={"pipeline_run_id": "run-lost"}).json()
    assert jobs["count"] == 1
    retry = requests.post(f"{api}/jobs", json=body, headers=headers, timeout=5)
    assert retry.status_code == 200
    assert retry.json()["job_id"] == jobs["items"][0]["job_id"]
    log_lines = (tmp_path / "jobs.log").read_text().splitlines()
    assert [json.loads(line)["pipeline_run_id"] for line in log_lines] == ["run-lost"]

    # Nobody polls, yet the server's sweeper finishes the job and writes its output.
    assert _wait_until(lambda: (tmp_path / "out" / "_SUCCESS").exists())
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["files"][0]["sha256"] == hashlib.sha256(b"payload").hexdigest()
    status = requests.get(f"{api}/jobs/{retry.json()['job_id']}", headers=AUTH, timeout=2)
    assert status.json()["status"] == "SUCCEEDED"


def test_real_server_5xx_and_retry_after(live: SimServer) -> None:
    requests.post(
        f"{live.admin_url}/_sim/faults",
        json={"error_5xx": {"status": 503, "count": 1, "retry_after": 2}},
        timeout=2,
    )
    response = requests.get(f"{live.api_url}/jobs/wb-x", headers=AUTH, timeout=2)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    # The admin port serves the API too, and never with faults.
    requests.post(f"{live.admin_url}/_sim/faults", json={"error_5xx": {"rate": 1.0}}, timeout=2)
    assert requests.get(f"{live.admin_url}/jobs/wb-x", headers=AUTH, timeout=2).status_code == 404


# --- the entry point


def _sim_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIM_", "WORKBENCH_"))}
    return env | values


def test_entry_point_needs_a_token(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "workbench_sim"],
        env=_sim_env(SIM_PORT="0", SIM_ADMIN_PORT="0"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "WORKBENCH_API_TOKEN" in result.stderr


def test_entry_point_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    secret = "entry-point-secret-token"
    stderr_path = tmp_path / "stderr.log"
    env = _sim_env(
        WORKBENCH_API_TOKEN=secret,
        SIM_PORT="0",
        SIM_ADMIN_PORT="0",
        SIM_JOB_LOG=str(tmp_path / "jobs.log"),
    )
    ready = re.compile(r"api=(http://\S+) admin=(http://\S+)")
    with (
        stderr_path.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, "-m", "workbench_sim"], env=env, cwd=REPO_ROOT, stderr=stderr
        ) as proc,
    ):
        try:
            assert _wait_until(lambda: ready.search(stderr_path.read_text()), timeout=20)
            api, admin = ready.search(stderr_path.read_text()).groups()  # type: ignore[union-attr]
            headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": "run-1"}
            body = _body("run-1")
            assert requests.post(f"{api}/jobs", json=body, headers=headers, timeout=5).ok
            assert requests.get(f"{admin}/_sim/jobs", timeout=5).json()["count"] == 1
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = stderr_path.read_text()
    assert '"POST /jobs" 201' in output
    assert secret not in output
    assert "Authorization" not in output


def test_faults_can_be_aimed_at_one_endpoint():
    from workbench_sim.faults import FaultInjector

    injector = FaultInjector(clock=lambda: 0.0)
    injector.configure({"error_5xx": {"status": 503, "count": 2, "only": "submit"}})
    assert injector.on_api_call("status").status is None
    assert injector.on_api_call("submit").status == 503
    assert injector.on_api_call("status").status is None
    assert injector.on_api_call("submit").status == 503
    assert injector.on_api_call("submit").status is None
