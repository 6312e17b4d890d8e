"""The database lets a terminal run give up its Idempotency-Key only when it failed before
its workflow started (migration 0006); any other change of a terminal run's key is refused."""

from __future__ import annotations

import uuid

import psycopg2
import pytest

from tests.integration.helpers import fetch_run


def failed_run(database, workflow_id: str | None, job_id: str | None) -> uuid.UUID:
    run_id = uuid.uuid4()
    with database.transaction() as cur:
        cur.execute(
            "INSERT INTO pipeline_runs (id, pipeline, mode, status, input_path_prefix,"
            " output_path_prefix, request_fingerprint, idempotency_key, conductor_workflow_id,"
            " workbench_job_id, completed_at, error_message) VALUES (%(id)s, 'demo-batch',"
            " 'BATCH', 'FAILED', %(in)s, 's3://out/x', 'test', %(key)s, %(workflow)s, %(job)s,"
            " now(), 'boom')",
            {
                "id": run_id,
                "in": f"s3://in/{run_id.hex}",
                "key": f"key-{run_id.hex}",
                "workflow": workflow_id,
                "job": job_id,
            },
        )
    return run_id


def set_key(database, run_id, value: str | None) -> None:
    with database.transaction() as cur:
        cur.execute(
            "UPDATE pipeline_runs SET idempotency_key = %(key)s WHERE id = %(id)s",
            {"id": run_id, "key": value},
        )


def test_a_run_that_failed_before_starting_may_give_its_key_up(database):
    run_id = failed_run(database, None, None)
    with pytest.raises(psycopg2.errors.CheckViolation, match=r"cannot change \(idempotency_key"):
        set_key(database, run_id, "another-key")
    set_key(database, run_id, None)
    assert fetch_run(database, run_id)["idempotency_key"] is None


@pytest.mark.parametrize(
    "workflow_id, job_id", [("wf-1", None), (None, "job-1"), ("wf-1", "job-1")]
)
def test_a_run_that_started_keeps_its_key(database, workflow_id, job_id):
    run_id = failed_run(database, workflow_id, job_id)
    with pytest.raises(psycopg2.errors.CheckViolation, match=r"cannot change \(idempotency_key"):
        set_key(database, run_id, None)
    assert fetch_run(database, run_id)["idempotency_key"] == f"key-{run_id.hex}"
