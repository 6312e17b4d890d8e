"""The hostile_workbench scenario (issue 12): status answers no contract allows, in turn."""

from __future__ import annotations

import re
import time

import requests

from .harness import SIM_TO_RUN, Load, Stack, verify

# Each hostile answer in turn, on a share of the status calls (trickle on a few: each holds a
# poller thread until the call's deadline); Retry-After sent as strings no server should send.
PHASES: tuple[tuple[str, dict], ...] = (
    ("poison_error_message", {"variant": "nul", "rate": 0.3}),
    ("poison_error_message", {"variant": "huge", "rate": 0.3}),
    ("poison_error_message", {"variant": "surrogate", "rate": 0.3}),
    ("odd_timestamps", {"variant": "offset", "rate": 0.3}),
    ("odd_timestamps", {"variant": "year_0001", "rate": 0.3}),
    ("odd_timestamps", {"variant": "year_9999", "rate": 0.3}),
    ("unknown_status", {"status": "CANCELLING", "rate": 0.3}),
    ("html_200", {"rate": 0.3}),
    ("malformed_json", {"rate": 0.3}),
    ("trickle", {"seconds": 90, "count": 4}),
    ("rate_limit", {"retry_after": "1e12", "rate": 0.3}),
    ("rate_limit", {"retry_after": "Fri, 31 Dec 9999 23:59:59 GMT", "rate": 0.3}),
)
# error_details.code of a run the reconciler ended because the answers gave no usable status
# for POLL_GIVE_UP_SECONDS: FAILED with that reason is an outcome, not a lost run.
GIVE_UP_CODES = ("unknown_status", "malformed", "unauthorized")
ABORTED_METRIC = "poller_sweeps_aborted_total"


def judge(run_ids: list[str], rows: dict[str, tuple], jobs: dict[str, list[dict]]) -> dict:
    """Each run against the simulator's record: `rows` maps a run id to (status, job id,
    error_details.code). Lost: not ended, or ended otherwise than the Workbench's outcome,
    unless FAILED with a give-up code (the answers never told it)."""
    lost = given_up = 0
    for run_id in run_ids:
        status, job_id, code = rows.get(run_id, ("MISSING", None, None))
        run_jobs = jobs.get(run_id, [])
        truth = SIM_TO_RUN.get(run_jobs[0]["status"], "OPEN") if run_jobs else "FAILED"
        if status == truth and (not run_jobs or job_id == run_jobs[0]["job_id"]):
            continue
        if status == "FAILED" and code in GIVE_UP_CODES:
            given_up += 1
        else:
            lost += 1
    return {"runs_lost": lost, "runs_given_up": given_up}


def counter_value(metrics_text: str, name: str) -> float:
    """The summed samples of a Prometheus counter in a /metrics answer (0 when absent)."""
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})?\s+([0-9.eE+-]+)\s*$", re.M)
    return sum(float(value) for value in pattern.findall(metrics_text))


def sweeps_aborted(stack: Stack) -> float:
    """The poller's count of aborted sweeps since it started."""
    text = requests.get(f"{stack.env['POLLER_URL']}/metrics", timeout=10).text
    return counter_value(text, ABORTED_METRIC)


def hostile_workbench(stack: Stack, rate: float = 4.0, phase_seconds: float = 5.0) -> dict:
    """At least 200 runs while hostile status answers are injected in turn, then cleared.

    Every run ends with the Workbench's outcome (or FAILED naming answers that never gave a
    usable status within POLL_GIVE_UP_SECONDS), and no poller sweep aborts.
    """
    aborted_before = sweeps_aborted(stack)
    fired_before = stack.sim_faults_injected()
    load = Load(stack, rate)
    for kind, fault in PHASES:
        stack.clear_faults()
        stack.faults(**{kind: {**fault, "only": "status"}})
        load.run(phase_seconds)
    while len(load.accepted) < 200:
        load.run(phase_seconds)
    stack.clear_faults()
    result = verify(stack, load.accepted, timeout=420)
    rows = {
        r[0]: (r[1], r[2], r[3])
        for r in stack.sql(
            "SELECT id::text, status, workbench_job_id, error_details->>'code' "
            "FROM pipeline_runs WHERE id = ANY(%s::uuid[])",
            (load.accepted,),
        )
    }
    time.sleep(1)  # the last sweep's counters reach the poller's /metrics
    return {
        **result,
        **judge(load.accepted, rows, stack.sim_jobs()),
        "faults_injected": stack.sim_faults_injected() - fired_before,
        "sweeps_aborted": round(sweeps_aborted(stack) - aborted_before),
        "answers": dict(load.answers),
    }
