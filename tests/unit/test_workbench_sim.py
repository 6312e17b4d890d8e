"""Tests of the Workbench simulator app under a fake clock: the contract, jobs, admin."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.unit.workbench_sim_support import AUTH, JOB_ID, Sim, job_body
from workbench_sim import get_state
from workbench_sim.jobs import JobStore, parse_submission


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
    submission = parse_submission(job_body("run-1"))
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
