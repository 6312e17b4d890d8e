"""What the simulator's unit tests share: a fake clock and an app under it."""

from __future__ import annotations

import re
from pathlib import Path

from workbench_sim import SimConfig, create_app

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


def job_body(run_id: str = "run-1", **overrides: object) -> dict:
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
        return job_body(run_id, **overrides)

    def submit(self, run_id: str = "run-1", *, headers: dict | None = None, **overrides: object):
        headers = {"Idempotency-Key": run_id, **AUTH} if headers is None else headers
        return self.client.post("/jobs", json=self.body(run_id, **overrides), headers=headers)

    def status(self, job_id: str) -> dict:
        response = self.client.get(f"/jobs/{job_id}", headers=AUTH)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def cancel(self, job_id: str, *, headers: dict | None = None):
        return self.client.post(
            f"/jobs/{job_id}/cancel", headers=AUTH if headers is None else headers
        )

    def jobs(self, run_id: str | None = None) -> list[dict]:
        query = {"pipeline_run_id": run_id} if run_id else {}
        return self.client.get("/_sim/jobs", query_string=query).get_json()["items"]

    def faults(self, spec: dict):
        return self.client.post("/_sim/faults", json=spec)
