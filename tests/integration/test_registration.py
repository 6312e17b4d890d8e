"""Req 2.6: definitions register against the real Conductor: created, updated, left alone.

The stack registered the shipped definitions before any test ran, so the create-update-unchanged
sequence runs on a copy under names of this test's own, which the server has never seen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from batchcore import registration
from batchcore.notifications.loop import NOTIFIER_CORRELATION_ID, NOTIFIER_WORKFLOW
from batchcore.runs.workflow import POLLER_CORRELATION_ID, POLLER_WORKFLOW
from tests.integration.helpers import await_true

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = [sys.executable, "scripts/register_workflows.py"]
RETRY_FIELDS = (
    "retryCount",
    "retryLogic",
    "retryDelaySeconds",
    "maxRetryDelaySeconds",
    "backoffJitterMs",
    "timeoutSeconds",
    "responseTimeoutSeconds",
)


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SCRIPT, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _stored(conductor_url: str, d: dict, kind: str) -> requests.Response:
    if kind == "tasks":
        return requests.get(f"{conductor_url}/metadata/taskdefs/{d['name']}", timeout=10)
    return requests.get(
        f"{conductor_url}/metadata/workflow/{d['name']}",
        params={"version": d["version"]},
        timeout=10,
    )


def _rename_simple_tasks(tasks: list, names: dict[str, str]) -> None:
    for task in tasks:
        if task.get("type") == "SIMPLE" and task["name"] in names:
            task["name"] = names[task["name"]]
        for branch in [task.get("loopOver"), task.get("defaultCase"), *task.get("forkTasks", [])]:
            _rename_simple_tasks(branch or [], names)
        for branch in (task.get("decisionCases") or {}).values():
            _rename_simple_tasks(branch, names)


@pytest.fixture
def scratch_defs(tmp_path, conductor_url) -> Path:
    """The shipped definitions under names of this test's own; deleted from the server after."""
    suffix = f"_test_{uuid.uuid4().hex[:8]}"
    tasks = registration.load("tasks")
    workflows = registration.load("workflows")
    names = {t["name"]: t["name"] + suffix for t in tasks}
    for kind, bodies in (("tasks", tasks), ("workflows", workflows)):
        (tmp_path / kind).mkdir()
        for body in bodies:
            body["name"] += suffix
            if kind == "workflows":
                _rename_simple_tasks(body["tasks"], names)
            (tmp_path / kind / f"{body['name']}.json").write_text(json.dumps(body))
    yield tmp_path
    for wf in workflows:
        requests.delete(
            f"{conductor_url}/metadata/workflow/{wf['name']}/{wf['version']}", timeout=10
        )
    for task in tasks:
        requests.delete(f"{conductor_url}/metadata/taskdefs/{task['name']}", timeout=10)


def _edit(path: Path, **fields) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def test_req_6_3_registration_creates_then_updates_then_leaves_alone(conductor_url, scratch_defs):
    args = ("--server", conductor_url, "--definitions", str(scratch_defs))
    tasks = registration.load("tasks", scratch_defs)
    workflows = registration.load("workflows", scratch_defs)
    labels = [f"task {t['name']}" for t in tasks] + [
        f"workflow {w['name']} v{w['version']}" for w in workflows
    ]

    dry = _run(*args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert [f"register: {label}: would be created" for label in labels] == (
        dry.stdout.splitlines()[: len(labels)]
    )
    assert _stored(conductor_url, tasks[0], "tasks").status_code == 404, "dry run wrote"

    first = _run(*args)
    assert first.returncode == 0, first.stderr
    assert [f"register: {label}: created" for label in labels] == (
        first.stdout.splitlines()[: len(labels)]
    )
    for task in tasks:
        stored = _stored(conductor_url, task, "tasks").json()
        assert {k: stored[k] for k in RETRY_FIELDS} == {k: task[k] for k in RETRY_FIELDS}
    for wf in workflows:
        stored = _stored(conductor_url, wf, "workflows").json()
        assert [t["taskReferenceName"] for t in stored["tasks"]] == [
            t["taskReferenceName"] for t in wf["tasks"]
        ]

    changed_task = tasks[0]
    _edit(scratch_defs / "tasks" / f"{changed_task['name']}.json", retryCount=7)
    second = _run(*args)
    assert second.returncode == 0, second.stderr
    assert f"register: task {changed_task['name']}: updated (retryCount)" in second.stdout
    assert second.stdout.count(": unchanged") == len(labels) - 1
    assert _stored(conductor_url, changed_task, "tasks").json()["retryCount"] == 7

    third = _run(*args)
    assert third.returncode == 0, third.stderr
    assert third.stdout.count(": unchanged") == len(labels)
    assert f"0 created, 0 updated, {len(labels)} unchanged at {conductor_url}" in third.stdout


def test_req_1_1_the_shipped_definitions_are_on_the_server_as_written(conductor_url):
    result = _run(env={"CONDUCTOR_SERVER_URL": conductor_url})
    assert result.returncode == 0, result.stderr
    for task in registration.load("tasks"):
        stored = _stored(conductor_url, task, "tasks").json()
        assert {k: stored[k] for k in RETRY_FIELDS} == {k: task[k] for k in RETRY_FIELDS}
    again = _run("--server", conductor_url, "--dry-run")
    assert "0 to create, 0 to update" in again.stdout, again.stdout


def test_req_6_3_poller_loop_keeps_a_bounded_history(conductor_url):
    stored = requests.get(
        f"{conductor_url}/metadata/workflow/{POLLER_WORKFLOW}", params={"version": 1}, timeout=10
    ).json()
    loop = stored["tasks"][0]
    assert loop["type"] == "DO_WHILE"
    assert loop["inputParameters"]["keepLastN"] == 3


def test_req_6_3_unreachable_server_exits_non_zero_naming_it():
    result = _run(env={"CONDUCTOR_SERVER_URL": "http://127.0.0.1:9/api"})
    assert result.returncode == 1
    assert "http://127.0.0.1:9/api" in result.stderr
    assert "unreachable" in result.stderr


def _bad_workflow(name: str) -> dict:
    """A workflow whose task has no reference name."""
    return {
        "name": name,
        "version": 1,
        "schemaVersion": 2,
        "tasks": [{"name": "persist_run", "type": "SIMPLE"}],
    }


def test_req_6_3_rejected_definition_names_the_definition_and_reason(conductor_url):
    name = f"test_bad_{uuid.uuid4().hex[:8]}"
    bad = registration.Definition("workflow", _bad_workflow(name), "workflows/bad.json")
    with requests.Session() as session, pytest.raises(registration.RegistrationError) as caught:
        registration.Server(conductor_url, session).write(
            registration.Change(bad, registration.CREATE)
        )
    message = str(caught.value)
    assert f"workflow definition '{name} v1' rejected (HTTP 400)" in message
    assert "taskReferenceName" in message


def test_req_6_3_an_invalid_definition_is_refused_before_anything_is_written(
    conductor_url, tmp_path
):
    name = f"test_bad_{uuid.uuid4().hex[:8]}"
    (tmp_path / "tasks").mkdir()
    (tmp_path / "workflows").mkdir()
    (tmp_path / "tasks" / "persist_run.json").write_text(json.dumps({"name": "persist_run"}))
    (tmp_path / "workflows" / "bad.json").write_text(json.dumps(_bad_workflow(name)))
    result = _run("--server", conductor_url, "--definitions", str(tmp_path))
    assert result.returncode == 1
    assert "workflows/bad.json: tasks[0] needs a non-empty string 'taskReferenceName'" in (
        result.stderr
    )
    assert result.stdout == ""
    assert _stored(conductor_url, {"name": name, "version": 1}, "workflows").status_code == 404


def _live_loops(
    conductor_url: str, name: str = POLLER_WORKFLOW, correlation_id: str = POLLER_CORRELATION_ID
) -> list[dict]:
    found = requests.get(
        f"{conductor_url}/workflow/{name}/correlated/{correlation_id}",
        params={"includeClosed": "false", "includeTasks": "false"},
        timeout=10,
    ).json()
    return [wf for wf in found if wf["status"] == "RUNNING"]


LOOPS = ((POLLER_WORKFLOW, POLLER_CORRELATION_ID), (NOTIFIER_WORKFLOW, NOTIFIER_CORRELATION_ID))


@pytest.mark.parametrize("name,correlation_id", LOOPS)
def test_req_6_3_replacing_the_loops_ends_each_and_the_worker_starts_a_new_one(
    conductor_url, name, correlation_id
):
    """Both loops the poller service keeps (polling and notifying) keep the definitions they
    started with; --replace-poller-loop replaces each."""
    before = await_true(
        lambda: _live_loops(conductor_url, name, correlation_id), 30, f"a running {name} loop"
    )
    old_ids = {wf["workflowId"] for wf in before}
    result = _run("--server", conductor_url, "--replace-poller-loop=always")
    assert result.returncode == 0, result.stderr
    assert f"terminated the {name} loop" in result.stdout
    for old_id in old_ids:
        ended = requests.get(f"{conductor_url}/workflow/{old_id}", timeout=10).json()
        assert ended["status"] == "TERMINATED"
        assert "replaced by register" in ended["reasonForIncompletion"]
    # The poller worker service's keepers check every 15 s.
    after = await_true(
        lambda: [
            wf
            for wf in _live_loops(conductor_url, name, correlation_id)
            if wf["workflowId"] not in old_ids
        ],
        45,
        f"a new {name} loop started by the worker service",
        every=0.5,
    )
    assert len(after) == 1
    # The new loop took in the registered definitions: nothing is outdated, nothing replaced.
    check = _run("--server", conductor_url, "--replace-poller-loop", "--dry-run")
    assert check.returncode == 0, check.stderr
    assert f"the running {name} loop is up to date: it stays" in check.stdout
