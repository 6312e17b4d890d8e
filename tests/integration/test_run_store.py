"""Issue 10.7: a run's change and its audit event commit together or not at all, on the real
database; a trigger of the test's own database refuses the event to prove it."""

from __future__ import annotations

import psycopg2
import pytest

from batchcore.runs.model import NewRun, Transition
from batchcore.runs.store import RunStore
from conductor_workers import polling
from tests.integration.helpers import await_true, fetch_run, history, make_run
from tests.integration.test_polling import CFG, submitted_run

REFUSING_TRIGGER = """
CREATE TABLE refused_runs (run_id uuid PRIMARY KEY);
CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.run_id IN (SELECT run_id FROM refused_runs)
       OR NEW.details ->> 'idempotency_key' = 'refuse-me' THEN
        RAISE EXCEPTION 'event of run % refused by the test', NEW.run_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_event BEFORE INSERT ON pipeline_run_events
    FOR EACH ROW EXECUTE FUNCTION refuse_event();
"""


@pytest.fixture
def refusing(database):
    """refuse(run_id): every later audit event of that run is refused by the database."""
    with database.transaction() as cur:
        cur.execute(REFUSING_TRIGGER)

    def refuse(run_id, on: bool = True) -> None:
        sql = (
            "INSERT INTO refused_runs VALUES (%s)"
            if on
            else "DELETE FROM refused_runs WHERE run_id = %s"
        )
        with database.transaction() as cur:
            cur.execute(sql, (run_id,))

    return refuse


def test_issue_10_7_a_refused_event_leaves_the_transition_undone(database, refusing):
    run = make_run(database)
    refusing(run["id"])
    with pytest.raises(psycopg2.errors.RaiseException, match="refused by the test"):
        RunStore(database).transition(
            run["id"],
            Transition("SUBMITTED", "persist", "accepted", workbench_job_id="wb-refused"),
        )
    stored = fetch_run(database, run["id"])
    assert (stored["status"], stored["workbench_job_id"], stored["submitted_at"]) == (
        "PENDING",
        None,
        None,
    )
    assert [e["status"] for e in history(database, run["id"])] == ["PENDING"]
    refusing(run["id"], on=False)
    RunStore(database).transition(
        run["id"], Transition("SUBMITTED", "persist", "accepted", workbench_job_id="wb-refused")
    )
    assert [e["status"] for e in history(database, run["id"])] == ["PENDING", "SUBMITTED"]


def test_issue_10_7_a_refused_first_event_leaves_no_run(database, refusing):
    store = RunStore(database)
    new = NewRun("demo-batch", "BATCH", "s3://in/refused", "s3://out/refused", {}, "refuse-me")
    with pytest.raises(psycopg2.errors.RaiseException):
        store.create_run(new)
    with database.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM pipeline_runs WHERE idempotency_key = 'refuse-me'")
        assert cur.fetchone()["n"] == 0


def test_issue_10_7_a_refused_poller_event_leaves_the_batch_unmoved(
    database, workbench_client, conductor_url, refusing, simulator
):
    from batchcore.conductor import ConductorClient

    run = submitted_run(database, workbench_client, {"queue_seconds": 0, "duration_seconds": 0.1})
    await_true(lambda: simulator.jobs(run["id"])[0]["status"] == "SUCCEEDED", 10, "the job to end")
    refusing(run["id"])
    conductor = ConductorClient(conductor_url)
    store = RunStore(database)
    try:
        # Issue 12.1: the refused write no longer aborts the sweep; it is isolated to the run.
        assert polling.sweep(store, workbench_client, conductor, CFG)["changed"] == 0
        stored = fetch_run(database, run["id"])
        assert (stored["status"], stored["completed_at"]) == ("SUBMITTED", None)
        assert stored["last_poll_error_kind"] == polling.KIND_UNWRITABLE
        assert [e["status"] for e in history(database, run["id"])] == ["PENDING", "SUBMITTED"]
        refusing(run["id"], on=False)
        with database.transaction() as cur:  # as if the failed write's backoff ran out
            cur.execute("UPDATE pipeline_runs SET next_poll_at = now() WHERE id = %s", (run["id"],))
        assert polling.sweep(store, workbench_client, conductor, CFG)["changed"] == 1
    finally:
        conductor.close()
    assert [e["status"] for e in history(database, run["id"])] == [
        "PENDING",
        "SUBMITTED",
        "COMPLETED",
    ]


def test_issue_10_7_a_refused_repair_note_leaves_the_workflow_id_unchanged(database, refusing):
    run = make_run(database)
    refusing(run["id"])
    store = RunStore(database)
    with (
        pytest.raises(psycopg2.errors.RaiseException),
        store.locked_for_repair(run["id"], "PENDING") as repair,
    ):
        repair.replace_workflow("wf-refused", "restarted", "restarted by the test")
    assert fetch_run(database, run["id"])["conductor_workflow_id"] is None
