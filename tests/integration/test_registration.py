"""Req 2.6: definitions register against the real Conductor, twice; failures say which and why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import requests

from scripts import register_workflows as reg

SCRIPT = [sys.executable, "scripts/register_workflows.py"]


def _run(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        SCRIPT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


def test_req_2_6_registration_twice_creates_then_updates(conductor_url):
    first = _run({"CONDUCTOR_SERVER_URL": conductor_url})
    second = _run({"CONDUCTOR_SERVER_URL": conductor_url})
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "task submit_to_workbench: updated" in second.stdout
    for task in reg.load("tasks"):
        url = f"{conductor_url}/metadata/taskdefs/{task['name']}"
        stored = requests.get(url, timeout=10).json()
        for key in (
            "retryCount",
            "retryLogic",
            "retryDelaySeconds",
            "maxRetryDelaySeconds",
            "backoffJitterMs",
            "timeoutSeconds",
            "responseTimeoutSeconds",
        ):
            assert stored[key] == task[key], (task["name"], key)
    for wf in reg.load("workflows"):
        stored = requests.get(
            f"{conductor_url}/metadata/workflow/{wf['name']}",
            params={"version": wf["version"]},
            timeout=10,
        ).json()
        assert [t["taskReferenceName"] for t in stored["tasks"]] == [
            t["taskReferenceName"] for t in wf["tasks"]
        ]


def test_req_2_6_poller_loop_keeps_a_bounded_history(conductor_url):
    stored = requests.get(
        f"{conductor_url}/metadata/workflow/batch_status_poller", params={"version": 1}, timeout=10
    ).json()
    loop = stored["tasks"][0]
    assert loop["type"] == "DO_WHILE"
    assert loop["inputParameters"]["keepLastN"] == 3


def test_req_2_6_unreachable_server_exits_non_zero_naming_it():
    result = _run({"CONDUCTOR_SERVER_URL": "http://127.0.0.1:9/api"})
    assert result.returncode == 1
    assert "http://127.0.0.1:9/api" in result.stderr
    assert "unreachable" in result.stderr


def test_req_2_6_rejected_definition_names_the_definition_and_reason(conductor_url, tmp_path):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "workflows").mkdir()
    name = f"test_bad_{uuid.uuid4().hex[:8]}"
    (tmp_path / "workflows" / "bad.json").write_text(
        json.dumps(
            {
                "name": name,
                "version": 1,
                "schemaVersion": 2,
                "tasks": [{"name": "persist_run", "type": "SIMPLE"}],
            }
        )
    )
    try:
        reg.register_all(conductor_url, tmp_path)
    except reg.RegistrationError as exc:
        message = str(exc)
    else:
        raise AssertionError("a task without a reference name must be rejected")
    assert f"workflow definition '{name} v1' rejected (HTTP 400)" in message
    assert "taskReferenceName" in message
