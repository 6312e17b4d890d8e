"""Issue 14.1 on the real Conductor: one loop iteration's poll_status sweeps are taken by two
poller services at once and poll disjoint runs; the loop's history stays bounded.

Each test runs a private copy of batch_status_poller whose poll_status tasks go to a Conductor
task domain of its own, and two `python -m conductor_workers poller` processes that poll only
that domain, over this test's database: the stack's own poller never sees them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import requests

from batchcore.runs.store import RunStore
from conductor_workers import submission
from tests.integration.helpers import ROOT, await_true, fetch_run, free_port, make_run

LOOP_DEF = ROOT / "workflow_defs" / "workflows" / "batch_status_poller.json"
KEEP_LAST_N = json.loads(LOOP_DEF.read_text())["tasks"][0]["inputParameters"]["keepLastN"]
PARALLELISM = 2
TASKS_PER_ITERATION = 4 + PARALLELISM  # INLINE, FORK, JOIN, WAIT and the forked sweeps


@pytest.fixture
def private_loop(conductor_url) -> Iterator[tuple[str, str]]:
    """(workflow name, task domain): the shipped loop under a private name."""
    body = json.loads(LOOP_DEF.read_text())
    body["name"] = f"test_fanout_{uuid.uuid4().hex[:8]}"
    requests.put(f"{conductor_url}/metadata/workflow", json=[body], timeout=10).raise_for_status()
    yield body["name"], f"fanout{uuid.uuid4().hex[:8]}"
    requests.delete(f"{conductor_url}/metadata/workflow/{body['name']}/1", timeout=10)


def _start_loop(conductor_url: str, name: str, domain: str, interval: int = 1) -> str:
    resp = requests.post(
        f"{conductor_url}/workflow",
        json={
            "name": name,
            "version": 1,
            "correlationId": f"{name}-loop",
            "input": {"poll_interval_seconds": interval, "poll_parallelism": PARALLELISM},
            "taskToDomain": {"poll_status": domain},
        },
        timeout=10,
    )
    resp.raise_for_status()
    return resp.text


def _workflow(conductor_url: str, workflow_id: str) -> dict:
    resp = requests.get(
        f"{conductor_url}/workflow/{workflow_id}", params={"includeTasks": "true"}, timeout=10
    )
    resp.raise_for_status()
    return resp.json()


@pytest.fixture
def two_pollers(stack_env, database_url, database, private_loop, tmp_path):
    """Two poller services over this test's database taking only the private domain's tasks,
    each named by its worker id; the loop, when a test starts one, is terminated after."""
    name, domain = private_loop
    # The reconciler would start workflows for this database's runs: make them fail to start.
    with database.transaction() as cur:
        cur.execute("UPDATE pipelines SET workflow_name = 'test_fanout_no_such_workflow'")
    procs = []
    for worker in ("poller-a", "poller-b"):
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "CONDUCTOR_SERVER_URL": stack_env["CONDUCTOR_SERVER_URL"],
            "WORKBENCH_API_URL": stack_env["WORKBENCH_API_URL"],
            "WORKBENCH_API_TOKEN": stack_env["WORKBENCH_API_TOKEN"],
            "WORKER_HEALTH_BIND": f"127.0.0.1:{free_port()}",
            "POLL_INTERVAL_SECONDS": "600",  # a run polled once is not due again in the test
            "POLL_CONCURRENCY": "4",
            "POLL_BATCH_SIZE": "10",
            "RECONCILE_INTERVAL_SECONDS": "86400",
            "LOG_LEVEL": "WARNING",
            "CONDUCTOR_WORKER_DOMAIN": domain,
            "conductor_worker_poll_status_worker_id": worker,
        }
        for var in ("PROMETHEUS_MULTIPROC_DIR", "CONDUCTOR_DATABASE_URL", "WEBHOOK_SECRET"):
            env.pop(var, None)
        log = open(tmp_path / f"{worker}.log", "wb")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(
            [sys.executable, "-m", "conductor_workers", "poller"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append((proc, log, env["WORKER_HEALTH_BIND"]))
    started: list[str] = []
    try:
        for _proc, _, bind in procs:
            await_true(lambda b=bind: _answers(f"http://{b}/readyz"), 60, f"the poller at {bind}")
        yield name, domain, started
    finally:
        for loop_id in started:
            requests.delete(
                f"{stack_env['CONDUCTOR_SERVER_URL']}/workflow/{loop_id}",
                params={"reason": "test cleanup"},
                timeout=10,
            )
        for proc, _, _ in procs:
            proc.terminate()
        for proc, log, _ in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            log.close()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _sweeps(workflow: dict, iteration: int) -> list[dict]:
    return [
        t
        for t in workflow["tasks"]
        if t["taskType"] == "poll_status" and t["iteration"] == iteration
    ]


def test_two_poller_services_share_one_iteration_and_poll_disjoint_runs(
    database, workbench_client, simulator, conductor_url, two_pollers
):
    name, domain, started = two_pollers
    runs = []
    for _ in range(120):
        run = make_run(database)
        out = submission.submit(RunStore(database), workbench_client, str(run["id"]))
        job_id = out["workbench_job_id"]
        submission.persist(
            RunStore(database), str(run["id"]), "SUBMITTED", "persist", workbench_job_id=job_id
        )
        runs.append(str(run["id"]))
    # Slow answers for these jobs only, so the two sweeps overlap in time.
    jobs = [fetch_run(database, r)["workbench_job_id"] for r in runs]
    simulator.faults(slow={"seconds": 0.1, "rate": 1.0, "only": "status"}, job_ids=jobs)

    loop_id = _start_loop(conductor_url, name, domain)
    started.append(loop_id)

    def first_iteration_done():
        sweeps = _sweeps(_workflow(conductor_url, loop_id), 1)
        done = len(sweeps) == PARALLELISM and all(t["status"] == "COMPLETED" for t in sweeps)
        return sweeps if done else None

    sweeps = await_true(first_iteration_done, 60, "the first iteration's sweeps", every=0.5)
    assert sorted(t["inputData"]["slot"] for t in sweeps) == list(range(PARALLELISM))
    assert {t["workerId"] for t in sweeps} == {"poller-a", "poller-b"}, "one service took both"
    assert all(t.get("domain") == domain for t in sweeps)
    checked = [t["outputData"]["checked"] for t in sweeps]
    assert all(n > 0 for n in checked), f"a sweep polled nothing: {checked}"
    assert sum(checked) == len(runs), f"runs polled twice or missed in one iteration: {checked}"
    # The two sweeps ran at once, not one after the other.
    (a, b) = sorted(sweeps, key=lambda t: t["startTime"])
    assert b["startTime"] < a["endTime"], "the second sweep started after the first ended"
    assert all(fetch_run(database, r)["last_polled_at"] is not None for r in runs)


def test_the_loop_keeps_a_bounded_history_of_its_forked_sweeps(conductor_url, two_pollers):
    """Conductor 3.32.1 deletes an old iteration's forked tasks only because their reference
    names start with the fork's ('fanout__slotN'): without that the loop grew by its
    parallelism every iteration."""
    name, domain, started = two_pollers
    loop_id = _start_loop(conductor_url, name, domain)
    started.append(loop_id)
    iterations = KEEP_LAST_N + 5

    def iterated():
        workflow = _workflow(conductor_url, loop_id)
        (loop,) = [t for t in workflow["tasks"] if t["taskType"] == "DO_WHILE"]
        return workflow if loop["iteration"] > iterations else None

    workflow = await_true(iterated, 90, f"{iterations} loop iterations", every=0.5)
    assert workflow["status"] == "RUNNING"
    current = max(t["iteration"] for t in workflow["tasks"])
    kept = {t["iteration"] for t in workflow["tasks"] if t["taskType"] != "DO_WHILE"}
    assert min(kept) >= current - KEEP_LAST_N, f"iterations {sorted(kept)} of {current} kept"
    assert len(workflow["tasks"]) <= 1 + (KEEP_LAST_N + 1) * TASKS_PER_ITERATION
    sweeps = [t for t in workflow["tasks"] if t["taskType"] == "poll_status"]
    assert all(t["referenceTaskName"].startswith("fanout__slot") for t in sweeps)
    assert all(t["status"] in ("COMPLETED", "SCHEDULED", "IN_PROGRESS") for t in sweeps)
