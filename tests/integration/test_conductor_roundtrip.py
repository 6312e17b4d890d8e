"""Req 2.8: a conductor-python worker polls the real server and completes a real workflow."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import requests


def _send(method: str, url: str, body: list) -> None:
    resp = requests.request(method, url, json=body, timeout=10)
    assert resp.status_code < 300, resp.text


def test_req_1_4_python_worker_round_trip_on_the_real_server(conductor_url):
    suffix = uuid.uuid4().hex[:8]
    task, workflow = f"test_echo_{suffix}", f"test_roundtrip_{suffix}"
    _send(
        "POST",
        f"{conductor_url}/metadata/taskdefs",
        [
            {
                "name": task,
                "retryCount": 0,
                "timeoutSeconds": 60,
                "responseTimeoutSeconds": 30,
            }
        ],
    )
    _send(
        "PUT",
        f"{conductor_url}/metadata/workflow",
        [
            {
                "name": workflow,
                "version": 1,
                "schemaVersion": 2,
                "tasks": [
                    {
                        "name": task,
                        "taskReferenceName": "echo",
                        "type": "SIMPLE",
                        "inputParameters": {"n": "${workflow.input.n}"},
                    }
                ],
                "outputParameters": {"doubled": "${echo.output.doubled}"},
            }
        ],
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.echo_worker", task],
        env={**os.environ, "CONDUCTOR_SERVER_URL": conductor_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        resp = requests.post(
            f"{conductor_url}/workflow",
            json={"name": workflow, "version": 1, "input": {"n": 21}},
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        workflow_id = resp.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            execution = requests.get(f"{conductor_url}/workflow/{workflow_id}", timeout=10).json()
            if execution["status"] != "RUNNING":
                break
            time.sleep(0.2)
        assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
        assert execution["output"] == {"doubled": 42}
        assert execution["tasks"][0]["outputData"]["worker"] == "echo_worker"
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        worker.stderr.close()
        requests.delete(f"{conductor_url}/metadata/workflow/{workflow}/1", timeout=10)
        requests.delete(f"{conductor_url}/metadata/taskdefs/{task}", timeout=10)
