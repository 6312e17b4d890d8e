"""The hand-written definitions keep the contracts of the brief and fit the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conductor_workers import polling

ROOT = Path(__file__).resolve().parents[2]
DEFS = ROOT / "workflow_defs"
TASKS = ["submit_to_workbench", "persist_run", "poll_status"]
# The README's promise for the Workbench calls, written out here rather than computed.
DOCUMENTED_SUBMIT_BACKOFF = [2, 4, 8, 16, 30]


def load(kind: str, name: str) -> dict:
    return json.loads((DEFS / kind / f"{name}.json").read_text())


def backoff_seconds(task: dict) -> list[int]:
    """The whole seconds Conductor 3.32.1 waits before each retry of `task`.

    DeciderService.retry: retryDelaySeconds * 2**retryCount of the failed attempt (0 first),
    cut to maxRetryDelaySeconds when that is above 0; a random 0..backoffJitterMs
    milliseconds is added on top (see the jitter assertions).
    """
    assert task["retryLogic"] == "EXPONENTIAL_BACKOFF"
    cap = task["maxRetryDelaySeconds"]
    delays = [task["retryDelaySeconds"] * 2**attempt for attempt in range(task["retryCount"])]
    return [min(delay, cap) if cap > 0 else delay for delay in delays]


@pytest.mark.parametrize("name", TASKS)
def test_task_definitions_retry_deliberately(name):
    task = load("tasks", name)
    assert task["retryLogic"] == "EXPONENTIAL_BACKOFF"
    assert task["retryCount"] >= 3
    assert task["maxRetryDelaySeconds"] > task["retryDelaySeconds"]
    assert 0 < task["responseTimeoutSeconds"] <= task["timeoutSeconds"]


def test_the_readme_documents_the_workbench_retry_schedule():
    readme = " ".join((ROOT / "README.md").read_text().split())
    match = re.search(r"exponential backoff \(about ([\d, ]+) s\)", readme)
    assert match, "README no longer states the Workbench calls' backoff"
    assert [int(n) for n in match.group(1).split(", ")] == DOCUMENTED_SUBMIT_BACKOFF


def test_workbench_calls_back_off_on_the_documented_schedule_with_jitter():
    task = load("tasks", "submit_to_workbench")
    assert backoff_seconds(task) == DOCUMENTED_SUBMIT_BACKOFF
    # "About": jittered (so failed submissions do not retry in lockstep), by at most half
    # the shortest delay.
    assert 0 < task["backoffJitterMs"] <= DOCUMENTED_SUBMIT_BACKOFF[0] * 1000 / 2


@pytest.mark.parametrize("name", TASKS)
def test_every_task_backs_off_capped_at_30_s_with_a_little_jitter(name):
    task = load("tasks", name)
    delays = backoff_seconds(task)
    assert delays == sorted(delays) and delays[0] >= 1
    assert max(delays) <= 30
    assert sum(delays) <= 5 * 60  # a task gives up within minutes, not hours
    assert 0 < task["backoffJitterMs"] <= delays[0] * 1000 / 2


def test_a_sweep_answers_before_conductor_gives_its_task_up():
    poll = load("tasks", "poll_status")
    assert polling.SweepConfig().time_budget_seconds + 15 <= poll["responseTimeoutSeconds"]


def test_workbench_reads_answer_before_the_submit_task_times_out():
    from batchcore.settings import load as load_settings

    read_timeout = load_settings({}).workbench_read_timeout
    assert read_timeout * 2 < load("tasks", "submit_to_workbench")["responseTimeoutSeconds"]


def test_a_database_connection_opens_before_conductor_gives_persist_run_up():
    from batchcore.settings import load as load_settings

    connect_timeout = load_settings({}).db_connect_timeout
    assert connect_timeout * 2 < load("tasks", "persist_run")["responseTimeoutSeconds"]


def test_batch_pipeline_run_has_the_fixed_names_and_waits_for_the_poller():
    wf = load("workflows", "batch_pipeline_run")
    assert wf["inputParameters"] == ["pipeline_run_id", "input_path_prefix", "output_path_prefix"]
    assert wf["outputParameters"]["workbench_job_id"] == "${submit.output.workbench_job_id}"
    submit, route = wf["tasks"]
    assert (submit["name"], submit["optional"]) == ("submit_to_workbench", True)
    ok_branch = route["decisionCases"]["COMPLETED"]
    assert [t["name"] for t in ok_branch[:2]] == ["persist_run", "await_completion"]
    assert ok_branch[1]["type"] == "WAIT" and "inputParameters" not in ok_branch[1]
    assert [t["type"] for t in route["defaultCase"]] == ["SIMPLE", "TERMINATE"]


def test_batch_status_poller_loops_with_a_literal_keep_last_n():
    wf = load("workflows", "batch_status_poller")
    (loop,) = wf["tasks"]
    assert loop["type"] == "DO_WHILE"
    assert isinstance(loop["inputParameters"]["keepLastN"], int)
    assert [t["type"] for t in loop["loopOver"]] == [
        "INLINE",
        "FORK_JOIN_DYNAMIC",
        "JOIN",
        "WAIT",
    ]


# A submission worker outage shorter than this fails no run: each attempt of a task nobody
# polls times out after pollTimeoutSeconds and is retried.
WORKER_OUTAGE_TOLERATED_SECONDS = 20 * 60
# The reconciler sees a task nobody took, or nobody answered, within this.
STUCK_SEEN_WITHIN_SECONDS = 6 * 60


@pytest.mark.parametrize("name", TASKS)
def test_every_task_has_a_poll_timeout_that_a_decider_pass_enforces(name):
    from conductor_workers import progress

    task = load("tasks", name)
    # 0 would let a task whose queue message was lost sit SCHEDULED for ever: a decider pass
    # (the reconciler's PUT /workflow/decide) times it out and retries it with a new message.
    assert task["pollTimeoutSeconds"] >= 60, "far above the workers' poll interval"
    assert task["pollTimeoutSeconds"] + progress.MARGIN_SECONDS <= STUCK_SEEN_WITHIN_SECONDS
    assert task["responseTimeoutSeconds"] + progress.MARGIN_SECONDS <= STUCK_SEEN_WITHIN_SECONDS


@pytest.mark.parametrize("name", ["submit_to_workbench", "persist_run"])
def test_poll_timeouts_outlast_a_short_outage_of_the_submission_workers(name):
    task = load("tasks", name)
    attempts = task["retryCount"] + 1
    assert attempts * task["pollTimeoutSeconds"] >= WORKER_OUTAGE_TOLERATED_SECONDS
