"""Once a run exists every answer names it; a run that never started gives its
Idempotency-Key up; errors shown to clients carry no internal address or upstream answer.

Over a real PostgreSQL database and the real Conductor server (a closed port for an
unreachable one), through the gateway's app.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import pytest
import requests

from batchcore.errors import DatabaseUnavailable
from tests.integration import test_gateway_api as api_tests
from tests.integration.test_gateway_api import (
    AUTH,
    assert_error,
    body,
    closed_port,
    correlated,
    count,
    run_row,
)

# The API tests' fixtures: a test client over this test's database and real Conductor.
make_client = api_tests.make_client
terminate_workflows = api_tests.terminate_workflows

RUNS = "/api/v1/pipeline-runs"


class DatabaseLostAfterInsert:
    """The test's database, lost after the run's insert: the first autocommit statement is
    the insert (one statement since issue 14.3); the autocommit reads and writes after it
    fail from the n-th one on, transactions from the m-th one on."""

    def __init__(self, database, fail_from: int, transactions_fail_from: int = 1):
        self.database = database
        self.fail_from = fail_from
        self.transactions_fail_from = transactions_fail_from
        self.calls = 0
        self.transactions = 0

    def transaction(self):
        self.transactions += 1
        if self.transactions >= self.transactions_fail_from:
            raise DatabaseUnavailable("connection to server at 127.0.0.1 lost")
        return self.database.transaction()

    @contextmanager
    def autocommit(self):
        self.calls += 1
        if self.calls - 1 >= self.fail_from:  # call 1 is the insert
            raise DatabaseUnavailable("connection to server at 127.0.0.1 lost")
        with self.database.autocommit() as cur:
            yield cur

    def ping(self):
        self.database.ping()


def end_workflows_of(conductor_url: str, run_id: str) -> list[dict]:
    """Terminate the run's workflows (no worker can act for a run of this test's database)."""
    found = correlated(conductor_url, run_id)
    for flow in found:
        requests.delete(
            f"{conductor_url}/workflow/{flow['workflowId']}", params={"reason": "test"}, timeout=10
        )
    return found


# 1: recording the workflow id fails (and all after); 2: the ?wait= read; 3: the final read.
@pytest.mark.parametrize(
    "fail_from, wait", [(1, 1), (2, 1), (2, 0)], ids=["workflow-id", "wait", "final-read"]
)
def test_a_database_lost_after_the_run_started_answers_202_naming_the_run(
    make_client, database, conductor_url, fail_from, wait
):
    client = make_client(database_override=DatabaseLostAfterInsert(database, fail_from))
    response = client.post(RUNS, json=body(), headers=AUTH, query_string={"wait": wait})
    assert response.status_code == 202, response.get_data(as_text=True)
    run = response.get_json()
    try:
        assert response.headers["Location"] == f"{RUNS}/{run['id']}"
        assert run["status"] == "PENDING"
        stored = run_row(database, run["id"])
        assert stored["status"] == "PENDING" and count(database, "pipeline_runs") == 1
        # The workflow runs: the answer says which, even where it could not be recorded.
        [flow] = correlated(conductor_url, run["id"])
        assert run["conductor_workflow_id"] == flow["workflowId"]
    finally:
        end_workflows_of(conductor_url, run["id"])


def test_a_start_failure_the_database_cannot_record_names_the_pending_run(make_client, database):
    unreachable = f"http://127.0.0.1:{closed_port()}/api"
    lost = DatabaseLostAfterInsert(database, fail_from=1)
    client = make_client(conductor_server_url=unreachable, database_override=lost)
    response = client.post(RUNS, json=body(), headers=AUTH)
    error = assert_error(response, 503, "conductor_unavailable")
    [run_id] = [detail["run_id"] for detail in error["details"]]
    assert response.headers["Location"] == f"{RUNS}/{run_id}"
    assert "stays PENDING" in error["message"] and "Do not submit it again" in error["message"]
    assert run_row(database, run_id)["status"] == "PENDING"


def test_a_retry_with_the_key_after_conductor_was_unreachable_is_a_new_attempt(
    make_client, database, conductor_url
):
    unreachable = make_client(conductor_server_url=f"http://127.0.0.1:{closed_port()}/api")
    reachable = make_client()
    key = {"Idempotency-Key": "retry-after-503"}
    run_body = body()
    first = unreachable.post(RUNS, json=run_body, headers={**AUTH, **key})
    failed_id = assert_error(first, 503, "conductor_unavailable")["details"][0]["run_id"]

    # The 503 said "submit again": the same key makes a new attempt, which starts.
    second = reachable.post(RUNS, json=run_body, headers={**AUTH, **key})
    assert second.status_code == 202, second.get_data(as_text=True)
    retry = second.get_json()
    try:
        assert retry["id"] != failed_id
        assert second.headers["Location"] == f"{RUNS}/{retry['id']}"
        assert retry["conductor_workflow_id"]
        assert retry["history"][0]["details"] == {
            "idempotency_key": "retry-after-503",
            "replaces": failed_id,
        }
        failed = run_row(database, failed_id)
        assert failed["status"] == "FAILED" and failed["idempotency_key"] is None
        assert failed["history"][-1]["details"] == {
            "idempotency_key": "retry-after-503",
            "replaced_by": retry["id"],
        }
        assert retry["id"] in failed["history"][-1]["message"]

        # From now on the key is the new run's: replayed, and refused for another body.
        third = reachable.post(RUNS, json=run_body, headers={**AUTH, **key})
        assert third.status_code == 200 and third.get_json()["id"] == retry["id"]
        other = reachable.post(RUNS, json=body(), headers={**AUTH, **key})
        assert_error(other, 409, "conflict")
        assert count(database, "pipeline_runs") == 2
    finally:
        end_workflows_of(conductor_url, retry["id"])


def test_a_key_whose_run_started_is_never_released(make_client, database, conductor_url):
    """A started run keeps its key whatever becomes of it; only a run that never had a
    workflow gives it up."""
    client = make_client()
    key = {"Idempotency-Key": "kept"}
    run_body = body()
    first = client.post(RUNS, json=run_body, headers={**AUTH, **key}).get_json()
    try:
        with database.transaction() as cur:
            cur.execute(
                "UPDATE pipeline_runs SET status = 'FAILED', completed_at = now(),"
                " error_message = 'test' WHERE id = %s",
                (first["id"],),
            )
        again = client.post(RUNS, json=run_body, headers={**AUTH, **key})
        assert again.status_code == 200 and again.get_json()["id"] == first["id"]
    finally:
        end_workflows_of(conductor_url, first["id"])


def test_start_failures_show_clients_no_address_and_no_upstream_answer(
    make_client, database, caplog
):
    port = closed_port()
    client = make_client(conductor_server_url=f"http://127.0.0.1:{port}/api")
    with caplog.at_level(logging.WARNING, logger="gateway"):
        response = client.post(RUNS, json=body(), headers=AUTH)
    error = assert_error(response, 503, "conductor_unavailable")
    run_id = error["details"][0]["run_id"]
    shown = client.get(f"{RUNS}/{run_id}", headers=AUTH).get_data(as_text=True)
    for text in (response.get_data(as_text=True), shown):
        assert str(port) not in text and "127.0.0.1" not in text
        assert "Connection refused" not in text and "Errno" not in text
    # The whole story is in the log.
    assert any(f"127.0.0.1:{port}" in record.getMessage() for record in caplog.records)
