"""Read-only summaries of the runs for the run browser: counts per status, the poller's view."""

from __future__ import annotations

from batchcore.db import Database
from batchcore.queries import Q

from . import lifecycle


def count_by_status(db: Database, pipeline: str | None = None) -> dict[str, int]:
    """{status: runs} for every status (0 when none), for one pipeline or all."""
    with db.autocommit() as cur:
        cur.execute(Q["count_runs_by_status"], {"pipeline": pipeline})
        found = {row["status"]: row["runs"] for row in cur.fetchall()}
    return {status: found.get(status, 0) for status in lifecycle.ALL}


def poller_overview(db: Database) -> dict:
    """Active runs per status, runs due a poll, the last poll, the recorded loop, poll errors."""
    with db.autocommit() as cur:
        cur.execute(Q["poller_overview"])
        overview = dict(cur.fetchone())
        cur.execute(Q["poll_errors_by_kind"])
        overview["errors_by_kind"] = [dict(row) for row in cur.fetchall()]
    return overview


def count_unconfirmed(db: Database, older_than_seconds: float) -> int:
    """Runs with a job whose status the Workbench has not confirmed for `older_than_seconds`
    (a statement timeout of its own: a scrape must not hang on a slow database)."""
    with db.transaction() as cur:
        cur.execute(Q["metrics_statement_timeout"])
        cur.execute(Q["count_unconfirmed_runs"], {"older_than": older_than_seconds})
        return cur.fetchone()["runs"]
