"""The hostile_workbench chaos scenario's verdict (issue 12), without a stack."""

from __future__ import annotations

from chaos import hostile
from chaos.scenarios import SCENARIOS


def job(status: str, job_id: str = "wb-1") -> list[dict]:
    return [{"status": status, "job_id": job_id}]


def test_a_run_with_the_workbench_outcome_is_not_lost():
    rows = {"a": ("COMPLETED", "wb-1", None), "b": ("FAILED", "wb-1", None)}
    jobs = {"a": job("SUCCEEDED"), "b": job("CANCELLED")}
    assert hostile.judge(["a", "b"], rows, jobs) == {"runs_lost": 0, "runs_given_up": 0}


def test_a_run_given_up_on_unusable_answers_is_an_outcome_not_a_loss():
    rows = {
        "unknown": ("FAILED", "wb-1", "unknown_status"),
        "html": ("FAILED", "wb-1", "malformed"),
        "token": ("FAILED", "wb-1", "unauthorized"),
    }
    jobs = {run: job("SUCCEEDED") for run in rows}
    assert hostile.judge(list(rows), rows, jobs) == {"runs_lost": 0, "runs_given_up": 3}


def test_open_mislabelled_missing_or_other_job_runs_are_lost():
    rows = {
        "open": ("RUNNING", "wb-1", None),
        "mislabelled": ("FAILED", "wb-1", None),
        "lost_job_404": ("FAILED", "wb-1", "not_found"),
        "other_job": ("COMPLETED", "wb-2", None),
    }
    jobs = {run: job("SUCCEEDED") for run in rows}
    verdict = hostile.judge([*rows, "missing"], rows, jobs)
    assert verdict == {"runs_lost": 5, "runs_given_up": 0}


def test_a_run_the_workbench_never_got_must_end_failed():
    rows = {"never": ("FAILED", None, None), "wrong": ("COMPLETED", None, None)}
    assert hostile.judge(list(rows), rows, {}) == {"runs_lost": 1, "runs_given_up": 0}


def test_the_aborted_sweeps_counter_is_read_from_prometheus_text():
    text = (
        "# HELP poller_sweeps_aborted_total poll_status sweeps that ended with an error\n"
        "# TYPE poller_sweeps_aborted_total counter\n"
        "poller_sweeps_aborted_total 2.0\n"
        "poller_sweeps_aborted_created 1.7e9\n"
        'poller_sweeps_aborted_total{pid="7"} 1.0\n'
        "poller_sweeps_total 40.0\n"
    )
    assert hostile.counter_value(text, hostile.ABORTED_METRIC) == 3.0
    assert hostile.counter_value("poller_sweeps_total 4.0\n", hostile.ABORTED_METRIC) == 0.0


def test_the_scenario_is_registered_and_covers_every_hostile_answer():
    assert SCENARIOS["hostile_workbench"] is hostile.hostile_workbench
    kinds = {kind for kind, _ in hostile.PHASES}
    assert kinds >= {
        "poison_error_message",
        "odd_timestamps",
        "unknown_status",
        "html_200",
        "malformed_json",
        "trickle",
        "rate_limit",
    }
    assert all(isinstance(f.get("retry_after", ""), str) for k, f in hostile.PHASES)
