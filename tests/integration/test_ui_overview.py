"""The run browser's summaries on the real PostgreSQL: counts per status, the poller's view."""

from __future__ import annotations

import uuid

from batchcore.runs import overview
from batchcore.runs.model import Transition
from batchcore.runs.store import RunStore
from tests.integration.helpers import make_run


def submitted(database, **poll) -> uuid.UUID:
    """A SUBMITTED run whose poll bookkeeping is set as given."""
    run_id = make_run(database)["id"]
    RunStore(database).transition(
        run_id,
        Transition(
            status="SUBMITTED",
            source="test",
            message="submitted",
            workbench_job_id=f"wb-{uuid.uuid4().hex}",
        ),
    )
    with database.transaction() as cur:
        for column, value in poll.items():
            # Test set-up only: the column names are this module's own literals.
            cur.execute(
                f"UPDATE pipeline_runs SET {column} = %(value)s WHERE id = %(id)s",
                {"value": value, "id": run_id},
            )
    return run_id


def test_counts_per_status_cover_every_status_and_follow_the_pipeline(database):
    make_run(database)
    make_run(database)
    submitted(database)
    with database.transaction() as cur:
        cur.execute(
            "INSERT INTO pipelines (name, mode, workflow_name, workflow_version)"
            " VALUES ('other', 'BATCH', 'batch_pipeline_run', 1)"
        )
    assert overview.count_by_status(database) == {
        "PENDING": 2,
        "SUBMITTED": 1,
        "RUNNING": 0,
        "COMPLETED": 0,
        "FAILED": 0,
        "CANCELLED": 0,
    }
    assert set(overview.count_by_status(database, "other").values()) == {0}
    assert overview.count_by_status(database, "demo-batch")["PENDING"] == 2


def test_the_poller_view_counts_due_runs_and_poll_errors_by_kind(database):
    make_run(database)
    submitted(database, next_poll_at="-infinity")
    submitted(database, next_poll_at="infinity")
    submitted(
        database,
        next_poll_at="-infinity",
        poll_failures=2,
        last_poll_error="HTTP 503",
        last_poll_error_kind="transient",
    )
    with database.transaction() as cur:
        cur.execute("INSERT INTO poller_loop (workflow_id) VALUES ('loop-1')")

    view = overview.poller_overview(database)

    assert (view["pending"], view["submitted"], view["running"]) == (1, 3, 0)
    assert view["due"] == 2
    assert view["loop_workflow_id"] == "loop-1" and view["loop_started_at"] is not None
    assert [(row["kind"], row["runs"]) for row in view["errors_by_kind"]] == [("transient", 1)]
