"""Issue 13 on the real database: a run's deadline at insert (the request's, the pipeline's,
the setting's), rerun_of and the reruns read back with the run, and the unconfirmed-status
count of /metrics."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from batchcore.errors import Conflict
from batchcore.runs import overview
from batchcore.runs.model import NewRun
from batchcore.runs.store import RunStore
from gateway.metrics import UNCONFIRMED_RUNS
from tests.gateway_helpers import FakeConductor
from tests.integration.helpers import fetch_run, history, make_run
from tests.integration.test_gateway_api import make_client  # noqa: F401 (the fixture)


def deadline_seconds(run: dict) -> float:
    return (run["deadline_at"] - run["created_at"]).total_seconds()


def request(**fields) -> NewRun:
    tag = uuid.uuid4().hex
    return NewRun("demo-batch", "BATCH", f"s3://in/{tag}", f"s3://out/{tag}", **fields)


def end_run(database, run_id, status: str = "FAILED") -> None:
    with database.transaction() as cur:
        cur.execute(
            "UPDATE pipeline_runs SET status = %s, completed_at = now(), error_message = 'x'"
            " WHERE id = %s",
            (status, run_id),
        )


@pytest.fixture
def pipeline_bound(database):
    """set(seconds): the demo pipeline's max_runtime_seconds (this test's database only)."""

    def set_bound(seconds: int | None) -> None:
        with database.transaction() as cur:
            cur.execute(
                "UPDATE pipelines SET max_runtime_seconds = %s WHERE name = 'demo-batch'",
                (seconds,),
            )

    return set_bound


def test_the_deadline_is_the_requests_else_the_pipelines_else_the_settings(
    database, pipeline_bound
):
    asked = make_run(database, deadline_seconds=120, default_deadline_seconds=3600)
    assert deadline_seconds(asked) == 120
    defaulted = make_run(database, default_deadline_seconds=3600)
    assert deadline_seconds(defaulted) == 3600
    pipeline_bound(900)
    bounded = make_run(database, default_deadline_seconds=3600)
    assert deadline_seconds(bounded) == 900
    still_asked = make_run(database, deadline_seconds=61, default_deadline_seconds=3600)
    assert deadline_seconds(still_asked) == 61
    catalog = {p["name"]: p for p in RunStore(database).list_pipelines()}
    assert catalog["demo-batch"]["max_runtime_seconds"] == 900


def test_a_run_without_a_default_of_its_own_gets_the_settings_default(database):
    run = make_run(database)
    assert deadline_seconds(run) == 86400


def test_a_rerun_names_its_original_and_the_original_lists_its_reruns_oldest_first(database):
    original = make_run(database, {"a": 1})
    end_run(database, original["id"])
    store = RunStore(database)
    assert store.get_run(original["id"]).reruns == []
    _, first, created, _ = store.create_run(
        request(parameters={"a": 2}, rerun_of=original["id"], submitted_by="alice")
    )
    _, second, _, _ = store.create_run(request(rerun_of=original["id"]))
    assert created and first.rerun_of == original["id"]
    assert fetch_run(database, first.id)["rerun_of"] == original["id"]
    run, events = store.get_run_with_history(original["id"])
    assert run.reruns == [first.id, second.id]
    assert store.get_run(first.id).reruns == []
    # The original's audit trail names each re-run and who asked, its status unchanged.
    noted = [e for e in events if e["details"].get("rerun")]
    assert [(e["details"]["rerun"], e["actor"]) for e in noted] == [
        (str(first.id), "alice"),
        (str(second.id), "default"),
    ]
    assert all(e["status"] == e["previous_status"] == "FAILED" for e in noted)
    assert history(database, first.id)[0]["details"]["rerun_of"] == str(original["id"])


def test_a_key_reused_for_a_rerun_of_another_run_conflicts(database):
    one, other = make_run(database), make_run(database)
    for run in (one, other):
        end_run(database, run["id"])
    store = RunStore(database)
    same = request(rerun_of=one["id"], idempotency_key="rerun-key")
    _, first, _, _ = store.create_run(same)
    _, again, created, _ = store.create_run(same)
    assert (again.id, created) == (first.id, False)
    with pytest.raises(Conflict):
        store.create_run(
            NewRun(**{**same.request(), "rerun_of": other["id"], "idempotency_key": "rerun-key"})
        )


def test_unconfirmed_runs_are_counted_from_status_checked_at_else_submitted_at(database):
    before = overview.count_unconfirmed(database, 15)
    stale, fresh, never = (make_run(database) for _ in range(3))
    long_ago, just_now = timedelta(seconds=60), timedelta(seconds=1)
    with database.transaction() as cur:
        for run, submitted, checked in (
            (stale, long_ago, long_ago),
            (fresh, long_ago, just_now),
            (never, long_ago, None),
        ):
            cur.execute(
                "UPDATE pipeline_runs SET status = 'SUBMITTED', workbench_job_id = %s,"
                " submitted_at = now() - %s, status_checked_at = now() - %s::interval"
                " WHERE id = %s",
                (f"wb-{uuid.uuid4().hex}", submitted, checked, run["id"]),
            )
    assert overview.count_unconfirmed(database, 15) == before + 2
    assert overview.count_unconfirmed(database, 120) == 0


def test_the_gateways_metrics_count_them_with_its_poll_interval(
    database,
    make_client,  # noqa: F811
):
    run = make_run(database)
    with database.transaction() as cur:
        cur.execute(
            "UPDATE pipeline_runs SET status = 'SUBMITTED', workbench_job_id = 'wb-metrics',"
            " submitted_at = now() - interval '40 seconds' WHERE id = %s",
            (run["id"],),
        )

    def gauge(poll_interval_seconds: int) -> str:
        client = make_client(FakeConductor(), poll_interval_seconds=poll_interval_seconds)
        text = client.get("/metrics").get_data(as_text=True)
        return next(line for line in text.splitlines() if line.startswith(UNCONFIRMED_RUNS))

    assert gauge(10) == f"{UNCONFIRMED_RUNS} 1.0"  # 40 s > 3 × 10 s
    assert gauge(20) == f"{UNCONFIRMED_RUNS} 0.0"
