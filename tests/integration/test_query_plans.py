"""The store's queries read through their indexes (issue 14): at millions of runs a plan that
scans every run of a status, or every active run, is what makes the database slow.

One database holds a small mix in the shape of the scale benchmark's (bench/scale_load.py:
ended runs over a year with old and clustered failures, active runs, a few failing or stuck)
and has statistics (ANALYZE), so the planner chooses as it would on a big table; each test
reads EXPLAIN (FORMAT JSON) of a named query with the parameters the store passes.
"""

from __future__ import annotations

import psycopg2
import pytest

from batchcore.queries import Q
from batchcore.runs.rows import LIFECYCLE_SETS
from bench import scale_load
from tests.conftest import scratch_database

ENDED, ACTIVE = 20_000, 1_000
NO_CURSOR = {"after_created": None, "after_id": None}
DEEP = {"after_created": "2026-03-01T00:00:00.000000+00:00", "after_id": None}
ZERO_UUID = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def plans(stack_env, template_database):
    """A cursor on the mix's database; each EXPLAIN runs in a transaction rolled back."""
    with scratch_database(stack_env, "plans", template_database) as url:
        conn = psycopg2.connect(url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(scale_load.PIPELINE_ROWS, {"names": list(scale_load.PIPELINES)})
            cur.execute(
                scale_load.TERMINAL_RUNS,
                {"first": 1, "last": ENDED, "total": ENDED, "unsynced": 30},
            )
            cur.execute(scale_load.ACTIVE_RUNS, {"count": ACTIVE, "failing": scale_load.FAILING})
            cur.execute(scale_load.PENDING_RUNS, {"count": scale_load.STUCK_PENDING})
            cur.execute("ANALYZE pipeline_runs")
            cur.execute("ANALYZE pipeline_run_polls")
            cur.execute("ANALYZE pipeline_run_events")
            yield cur
        conn.close()


def scans(cur, name: str, params: dict) -> list[dict]:
    """The plan's nodes that read a table, each {type, index, relation, cond, filter}."""
    cur.execute("BEGIN")
    try:
        cur.execute("EXPLAIN (FORMAT JSON) " + Q[name], params)
        [[doc]] = cur.fetchall()
    finally:
        cur.execute("ROLLBACK")
    found: list[dict] = []

    def walk(node: dict) -> None:
        # A bitmap scan names its index on the Bitmap Index Scan below its heap scan.
        if "Index Name" in node or node["Node Type"] in ("Seq Scan", "Bitmap Heap Scan"):
            found.append(
                {
                    "type": node["Node Type"],
                    "index": node.get("Index Name"),
                    "relation": node.get("Relation Name", node.get("Index Name", "")),
                    "cond": node.get("Index Cond", ""),
                    "filter": node.get("Filter", ""),
                }
            )
        for child in node.get("Plans", []):
            walk(child)

    walk(doc[0]["Plan"])
    return found


def runs_scans(cur, name: str, params: dict) -> list[dict]:
    """The nodes that read the runs: their table or one of its indexes."""
    return [s for s in scans(cur, name, params) if s["relation"].startswith("pipeline_runs")]


def listing(statuses=(), pipeline=None, cursor=NO_CURSOR) -> dict:
    after = {**cursor, "after_id": ZERO_UUID if cursor["after_created"] else None}
    return {
        "no_status": not statuses,
        "statuses": list(statuses),
        "pipeline": pipeline,
        "limit": 51,
        **after,
    }


@pytest.mark.parametrize(
    "statuses",
    [("FAILED",), ("PENDING",), ("FAILED", "RUNNING")],
    ids=["failed", "pending", "two statuses"],
)
def test_a_status_filter_reads_each_status_in_the_index_order(plans, statuses):
    for cursor in (NO_CURSOR, DEEP):
        [scan] = runs_scans(plans, "list_runs", listing(statuses, cursor=cursor))
        assert scan["type"] == "Index Scan"
        assert scan["index"] == "pipeline_runs_status_newest"
        assert "status = " in scan["cond"] and "ANY" not in scan["cond"] + scan["filter"]
        if cursor is DEEP:
            assert "ROW(created_at, id) <" in scan["cond"]


def test_the_newest_runs_and_a_deep_page_read_the_newest_index(plans):
    for cursor in (NO_CURSOR, DEEP):
        [scan] = runs_scans(plans, "list_runs", listing(cursor=cursor))
        assert (scan["type"], scan["index"]) == ("Index Scan", "pipeline_runs_newest")
        assert not scan["filter"]


def test_a_pipeline_filter_reads_the_pipeline_index(plans):
    [scan] = runs_scans(plans, "list_runs", listing(pipeline="scale-report"))
    assert (scan["type"], scan["index"]) == ("Index Scan", "pipeline_runs_pipeline_newest")
    assert "pipeline = " in scan["cond"]


def test_a_status_and_pipeline_filter_reads_an_index_in_order(plans):
    [scan] = runs_scans(plans, "list_runs", listing(("COMPLETED",), "scale-report"))
    assert scan["type"] == "Index Scan"
    assert scan["index"] in ("pipeline_runs_status_newest", "pipeline_runs_pipeline_newest")


def test_one_run_and_its_history_are_read_by_key(plans):
    runs = runs_scans(plans, "get_run", {"id": ZERO_UUID})
    # The run by its key, and the runs that re-ran it (the partial rerun_of index).
    assert {(s["type"], s["index"]) for s in runs} == {
        ("Index Scan", "pipeline_runs_pkey"),
        ("Index Scan", "pipeline_runs_rerun_of"),
    }
    events = scans(plans, "get_history", {"id": ZERO_UUID})
    assert "Seq Scan" not in {s["type"] for s in events}
    assert {s["index"] for s in events} - {None} == {"pipeline_run_events_run"}


def test_the_claim_reads_the_due_runs_index(plans):
    params = {"batch_size": 200, "lease_seconds": 60, "lease_token": ZERO_UUID}
    read = scans(plans, "claim_due_runs", params)
    assert "Seq Scan" not in {s["type"] for s in read}
    # Due runs in order from the schedule's index (migration 0015), each run by its key.
    assert "pipeline_run_polls_due" in {s["index"] for s in read}
    runs = {s["index"] for s in read if s["relation"].startswith("pipeline_runs")} - {None}
    assert runs == {"pipeline_runs_pkey"}


RECONCILER = [
    ("stuck_pending_runs", {"older_than": 600, "limit": 50}, "pipeline_runs_status_newest"),
    ("active_runs_to_check", {"every": 300, "limit": 50}, "pipeline_runs_workflow_check"),
    ("runs_lost_on_workbench", {"min_failures": 10, "limit": 50}, "pipeline_runs_poll_failing"),
    (
        "runs_to_give_up",
        {"give_up": 3600, "kinds": ["unknown_status", "malformed", "unauthorized"], "limit": 50},
        "pipeline_runs_poll_failing",
    ),
    (
        "ended_runs_to_finish",
        {**LIFECYCLE_SETS, "older_than": 60, "every": 300, "limit": 50},
        "pipeline_runs_unsynced",
    ),
]


@pytest.mark.parametrize(("name", "params", "index"), RECONCILER, ids=[r[0] for r in RECONCILER])
def test_each_reconciler_query_reads_its_own_index(plans, name, params, index):
    runs = runs_scans(plans, name, params)
    assert [s["type"] for s in runs] == ["Index Scan"], runs
    assert runs[0]["index"] == index
