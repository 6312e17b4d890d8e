"""The cancel_races chaos scenario's verdict and plans (issue 13), without a stack."""

from __future__ import annotations

import random

from chaos import cancels, results
from chaos.scenarios import SCENARIOS


def run(status: str, job_id: str | None = "wb-1", reason: str | None = None) -> dict:
    return {"status": status, "workbench_job_id": job_id, "cancel_reason": reason}


def job(status: str, job_id: str = "wb-1") -> list[dict]:
    return [{"status": status, "job_id": job_id}]


ZEROS = ("runs_lost", "jobs_left_running", "duplicate_workbench_jobs")


def zeros(verdict: dict) -> tuple[int, ...]:
    return tuple(verdict[key] for key in ZEROS)


def test_runs_ended_as_their_jobs_did_pass():
    runs = {
        "at_once": run("CANCELLED", None, "requested"),
        "cancelled": run("CANCELLED", "wb-1", "requested"),
        "too_late_ok": run("COMPLETED", "wb-1", "requested"),
        "too_late_failed": run("FAILED", "wb-1", "requested"),
        "deadline": run("FAILED", "wb-1", "deadline"),
        "ended_then_found": run("FAILED", None, "ended"),
        "never_submitted": run("FAILED", None),
    }
    jobs = {
        "cancelled": job("CANCELLED"),
        "too_late_ok": job("SUCCEEDED"),
        "too_late_failed": job("FAILED"),
        "deadline": job("CANCELLED"),
        "ended_then_found": job("CANCELLED"),
    }
    verdict = cancels.judge(list(runs), runs, jobs)
    assert zeros(verdict) == (0, 0, 0)
    assert verdict["runs_accepted"] == verdict["runs_terminal"] == 7
    assert verdict["runs_cancelled"] == 2
    assert verdict["runs_cancelled_without_job"] == 1
    assert cancels.offending(list(runs), runs, jobs) == []


def test_a_cancelled_run_whose_job_ran_or_runs_on_leaves_a_job_running():
    runs = {
        "ran_to_its_end": run("CANCELLED", "wb-1", "requested"),
        "still_running": run("CANCELLED", "wb-1", "requested"),
        "job_never_attached": run("CANCELLED", None, "requested"),
    }
    jobs = {
        "ran_to_its_end": job("SUCCEEDED"),
        "still_running": job("RUNNING"),
        "job_never_attached": job("QUEUED"),
    }
    verdict = cancels.judge(list(runs), runs, jobs)
    assert zeros(verdict) == (0, 3, 0)
    assert verdict["jobs_active_at_end"] == 2
    assert verdict["runs_outcome_mismatched"] == 1


def test_runs_with_another_outcome_than_their_jobs_fail_the_verdict():
    runs = {
        "completed_but_cancelled": run("COMPLETED"),
        "completed_without_job": run("COMPLETED", None),
        "failed_but_succeeded": run("FAILED"),
        "client_cancel_ended_failed": run("FAILED", "wb-1", "requested"),
        "other_job": run("COMPLETED", "wb-2"),
    }
    jobs = {
        "completed_but_cancelled": job("CANCELLED"),
        "failed_but_succeeded": job("SUCCEEDED"),
        "client_cancel_ended_failed": job("CANCELLED"),
        "other_job": job("SUCCEEDED"),
    }
    verdict = cancels.judge(list(runs), runs, jobs)
    assert zeros(verdict) == (0, 5, 0)
    assert sorted(cancels.offending(list(runs), runs, jobs)) == sorted(runs)


def test_open_missing_and_duplicated_runs_are_counted():
    runs = {"open": run("RUNNING"), "two_jobs": run("CANCELLED", "wb-1", "requested")}
    jobs = {
        "open": job("RUNNING"),
        "two_jobs": job("CANCELLED") + job("CANCELLED", "wb-2"),
    }
    verdict = cancels.judge(["open", "missing", "two_jobs"], runs, jobs)
    assert zeros(verdict) == (2, 1, 1)
    assert verdict["runs_terminal"] == 1
    assert not results.verdict_ok(results.merge({}, {"cancel_races": verdict}))


def test_a_job_left_running_alone_fails_python_m_chaos():
    figures = {"runs_accepted": 1, "runs_lost": 0, "duplicate_workbench_jobs": 0}
    ok = results.merge({}, {"cancel_races": {**figures, "jobs_left_running": 0}})
    left = results.merge({}, {"cancel_races": {**figures, "jobs_left_running": 1}})
    assert results.verdict_ok(ok)
    assert not results.verdict_ok(left)
    assert left["jobs_left_running"] == 1


def test_plans_cover_every_moment_within_the_asked_ranges():
    plans = cancels.plan_runs(300, random.Random(7))
    assert {p.moment for p in plans} == set(cancels.MOMENTS)
    assert all(0 <= p.queue_seconds <= 3 and 0.5 <= p.duration_seconds <= 20 for p in plans)
    assert all(0 <= p.cancel_seconds <= 3 for p in plans)
    assert all(p.queue_seconds >= 1 for p in plans if p.moment == "queued")
    twice = sum(p.again_after is not None for p in plans)
    assert 30 <= twice <= 90


def test_a_plan_is_cancelled_in_its_moment_window():
    plan = cancels.Plan("running", 2.0, 10.0, 1.0, "SUCCEEDED", 0.5, 0.0, None)
    assert cancels._cancel_at(plan, 100.0) == 107.0
    queued = cancels.Plan("queued", 2.0, 10.0, 1.0, "SUCCEEDED", 0.5, 0.0, None)
    assert cancels._cancel_at(queued, 100.0) == 101.0
    at_end = cancels.Plan("at_end", 2.0, 10.0, 1.0, "SUCCEEDED", 0.5, -0.5, None)
    assert cancels._cancel_at(at_end, 100.0) == 111.5


def test_the_scenario_is_registered_with_a_one_line_title():
    assert SCENARIOS["cancel_races"] is cancels.cancel_races
    assert cancels.cancel_races.__doc__.splitlines()[0].endswith(".")
