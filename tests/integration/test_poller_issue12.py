"""Issue 12 on the real PostgreSQL: a poison outcome never aborts a sweep, write-backs are
fenced by the claim's lease token, only 404s in a row lose a job, and answers retrying
cannot fix end the run FAILED after the give-up time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from batchcore.runs.model import PollOutcome, Transition
from batchcore.runs.store import RunStore
from batchcore.workbench import JobStatus
from conductor_workers import polling, reconcile
from tests.integration.helpers import fetch_run, history, make_run

CFG = polling.SweepConfig(batch_size=10, concurrency=2, max_retries=0, interval_seconds=5)


def active_run(database, status: str = "SUBMITTED") -> uuid.UUID:
    """A run recorded SUBMITTED (or RUNNING) with a job id, due for a poll now."""
    run_id = make_run(database)["id"]
    store = RunStore(database)
    job = f"wb-{uuid.uuid4().hex[:8]}"
    store.transition(run_id, Transition("SUBMITTED", "test", "submitted", workbench_job_id=job))
    if status == "RUNNING":
        store.transition(run_id, Transition("RUNNING", "test", "running"))
    _set(database, run_id, "next_poll_at = now(), workflow_checked_at = now()")
    return run_id


def _set(database, run_id, assignments: str) -> None:
    with database.transaction() as cur:
        cur.execute(f"UPDATE pipeline_runs SET {assignments} WHERE id = %s", (run_id,))


class PoisonClient:
    """A client that lets one raw NUL through, as a client without normalisation would."""

    def __init__(self, poisoned_job: str):
        self.poisoned_job = poisoned_job

    def get_job(self, job_id, timeout=None):
        message = "disk\x00full" if job_id == self.poisoned_job else "boom"
        return JobStatus(job_id, "FAILED", "FAILED", message)


def test_issue_12_1_a_poison_answer_fails_alone_and_the_sweep_goes_on(database, conductor):
    store = RunStore(database)
    poisoned, innocent = active_run(database), active_run(database)
    client = PoisonClient(fetch_run(database, poisoned)["workbench_job_id"])
    summary = polling.sweep(store, client, conductor, CFG)
    assert summary["changed"] == 1
    assert fetch_run(database, innocent)["status"] == "FAILED"
    row = fetch_run(database, poisoned)
    assert row["status"] == "SUBMITTED"
    assert (row["poll_failures"], row["last_poll_error_kind"]) == (1, polling.KIND_UNWRITABLE)
    assert row["poll_lease_until"] is None
    assert row["next_poll_at"] > datetime.now(UTC), "polled again later, with backoff"
    assert polling.sweep(store, client, conductor, CFG)["checked"] == 0, "not claimed first again"


def failure(run, kind: str, token) -> PollOutcome:
    return PollOutcome(
        run_id=str(run),
        expected="SUBMITTED",
        poll_error=f"a {kind}",
        error_kind=kind,
        retry_at=datetime.now(UTC),
        details={"kind": kind},
        lease_token=token,
    )


def claim(store: RunStore, run_id) -> uuid.UUID:
    (held,) = [r for r in store.claim_due_runs(10, 60) if r.id == run_id]
    return held.poll_lease_token


def test_issue_12_5_a_write_back_applies_only_while_the_claim_still_holds_the_run(database):
    store = RunStore(database)
    run_id = active_run(database)
    stale = claim(store, run_id)
    _set(database, run_id, "poll_lease_until = now() - interval '1 second'")
    fresh = claim(store, run_id)
    assert fresh != stale
    store.apply_poll_results([failure(run_id, "timeout", stale)], 5)
    row = fetch_run(database, run_id)
    assert (row["poll_failures"], row["last_poll_error"]) == (0, None), "the stale write is fenced"
    assert row["poll_lease_until"] is not None, "the fresh claim still holds it"
    store.apply_poll_results([failure(run_id, "timeout", fresh)], 5)
    assert fetch_run(database, run_id)["poll_failures"] == 1


def test_issue_12_4_only_404s_in_a_row_count_toward_a_lost_job(database):
    store = RunStore(database)
    run_id = active_run(database)
    for kind in ["timeout"] * 9 + ["not_found"]:
        store.apply_poll_results([failure(run_id, kind, claim(store, run_id))], 5)
    row = fetch_run(database, run_id)
    assert (row["poll_failures"], row["poll_kind_failures"]) == (10, 1)
    assert row["poll_failing_since"] is not None
    assert store.reconcile_candidates(3600, 3600, 3, 10).lost == []
    for _ in range(2):
        store.apply_poll_results([failure(run_id, "not_found", claim(store, run_id))], 5)
    (lost,) = store.reconcile_candidates(3600, 3600, 3, 10).lost
    assert lost.id == run_id and lost.poll_kind_failures == 3
    events = [e for e in history(database, run_id) if e["source"] == "poller"]
    assert [e["details"]["kind"] for e in events] == ["timeout", "not_found"]


@pytest.mark.parametrize("kind", ["unknown_status", "malformed", "unauthorized"])
def test_issue_12_3_answers_retrying_cannot_fix_end_the_run_after_the_give_up_time(
    database, conductor, kind
):
    store = RunStore(database)
    run_id = active_run(database, "RUNNING")
    outcome = failure(run_id, kind, claim(store, run_id))
    outcome.expected = "RUNNING"
    store.apply_poll_results([outcome], 5)
    cfg = reconcile.ReconcileConfig(check_workflows_every_seconds=3600, give_up_seconds=3600)
    assert reconcile.reconcile(store, conductor, cfg) == {}, "not before the give-up time"
    _set(database, run_id, "poll_failing_since = now() - interval '2 hours'")
    assert reconcile.reconcile(store, conductor, cfg) == {"gave_up": 1}
    row = fetch_run(database, run_id)
    assert row["status"] == "FAILED"
    assert row["error_details"]["code"] == kind
    assert f"a {kind}" in row["error_message"]
    assert history(database, run_id)[-1]["source"] == "reconciler"


def test_issue_12_3_a_read_status_ends_the_streak(database):
    store = RunStore(database)
    run_id = active_run(database)
    store.apply_poll_results([failure(run_id, "unknown_status", claim(store, run_id))], 5)
    ok = PollOutcome(str(run_id), "SUBMITTED", lease_token=claim(store, run_id))
    store.apply_poll_results([ok], 5)
    row = fetch_run(database, run_id)
    assert (row["poll_failing_since"], row["poll_kind_failures"]) == (None, 0)
