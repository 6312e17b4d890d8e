"""The hand-written definitions keep the contracts of the brief and fit the code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conductor_workers import polling

DEFS = Path(__file__).resolve().parents[2] / "workflow_defs"


def load(kind: str, name: str) -> dict:
    return json.loads((DEFS / kind / f"{name}.json").read_text())


@pytest.mark.parametrize("name", ["submit_to_workbench", "persist_run", "poll_status"])
def test_task_definitions_retry_deliberately(name):
    task = load("tasks", name)
    assert task["retryLogic"] == "EXPONENTIAL_BACKOFF"
    assert task["retryCount"] >= 3
    assert task["maxRetryDelaySeconds"] > task["retryDelaySeconds"]
    assert 0 < task["responseTimeoutSeconds"] <= task["timeoutSeconds"]


def test_a_sweep_answers_before_conductor_gives_its_task_up():
    poll = load("tasks", "poll_status")
    assert polling.SweepConfig().time_budget_seconds + 15 <= poll["responseTimeoutSeconds"]


def test_workbench_reads_answer_before_the_submit_task_times_out():
    from batchcore.settings import load as load_settings

    read_timeout = load_settings({}).workbench_read_timeout
    assert read_timeout * 2 < load("tasks", "submit_to_workbench")["responseTimeoutSeconds"]


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
    assert [t["name"] for t in loop["loopOver"]] == ["poll_status", "poll_interval"]
    assert loop["loopOver"][1]["type"] == "WAIT"
