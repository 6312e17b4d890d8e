"""The register command against a mocked Conductor: its command line, plan, report, loop."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from batchcore import register, registration

BASE = "http://conductor.test/api"
ROOT = Path(__file__).resolve().parents[2]
LOOP_ID = "loop-1"
NOTIFIER_ID = "notifier-1"
# Each loop register may replace: where Conductor finds it, the id a test's running one has.
LOOPS = {
    "batch_status_poller": ("batch-status-poller", LOOP_ID),
    "batch_notifier": ("batch_notifier", NOTIFIER_ID),
}


@pytest.fixture
def defs(tmp_path) -> Path:
    """A copy of the shipped definitions that a test may edit."""
    target = tmp_path / "defs"
    shutil.copytree(ROOT / "workflow_defs", target)
    return target


def _edit(path: Path, **fields) -> None:
    body = json.loads(path.read_text())
    body.update(fields)
    path.write_text(json.dumps(body))


def _server_has(requests_mock, defs: Path, **overrides) -> None:
    """The server holds every definition of `defs` (plus fields of its own); overrides win."""
    for path in sorted((defs / "tasks").glob("*.json")):
        body = {**json.loads(path.read_text()), "createTime": 1, "rateLimitPerFrequency": 0}
        body.update(overrides.get(body["name"], {}))
        requests_mock.get(f"{BASE}/metadata/taskdefs/{body['name']}", json=body)
    for path in sorted((defs / "workflows").glob("*.json")):
        body = {**json.loads(path.read_text()), "updateTime": 1, "variables": {}}
        body.update(overrides.get(body["name"], {}))
        requests_mock.get(f"{BASE}/metadata/workflow/{body['name']}?version=1", json=body)


def _no_loop_running(requests_mock) -> None:
    for name, (correlation_id, _) in LOOPS.items():
        requests_mock.get(f"{BASE}/workflow/{name}/correlated/{correlation_id}", json=[])


def _writes(requests_mock) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in requests_mock.request_history if r.method != "GET"]


def _run(capsys, *argv: str) -> tuple[int, list[str], str]:
    code = register.main(["--server", BASE, *argv])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_help_explains_every_option_and_contacts_no_server(requests_mock, capsys):
    with pytest.raises(SystemExit) as caught:
        register.main(["--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    for option in ("--server", "--dry-run", "--definitions", "--replace-poller-loop"):
        assert option in out
    assert requests_mock.call_count == 0


def test_an_unknown_option_is_refused_without_registering(requests_mock, capsys):
    with pytest.raises(SystemExit) as caught:
        register.main(["--servr", BASE])
    assert caught.value.code == 2
    assert requests_mock.call_count == 0


def test_a_bad_server_url_is_refused_naming_the_option(requests_mock, capsys):
    with pytest.raises(SystemExit) as caught:
        register.main(["--server", "ftp://conductor.test"])
    assert caught.value.code == 2
    assert "--server 'ftp://conductor.test'" in capsys.readouterr().err
    assert requests_mock.call_count == 0


def test_the_shipped_definitions_pass_the_local_check():
    found = registration.definitions()
    kinds = [d.kind for d in found]
    assert kinds == sorted(kinds, key=["task", "workflow"].index), "tasks first"
    names = {d.label for d in found}
    assert {"task poll_status", "workflow batch_pipeline_run v1"} <= names


def test_the_local_check_names_every_problem_and_its_file(defs):
    _edit(defs / "tasks" / "poll_status.json", timeoutSeconds=10, responseTimeoutSeconds=60)
    wf_path = defs / "workflows" / "batch_status_poller.json"
    wf = json.loads(wf_path.read_text())
    slots, _fanout, _join, interval = wf["tasks"][0]["loopOver"]
    interval["taskReferenceName"] = slots["taskReferenceName"]
    slots.update(name="no_such_task", type="SIMPLE")
    wf_path.write_text(json.dumps(wf))
    (defs / "workflows" / "broken.json").write_text("{not json")
    with pytest.raises(registration.RegistrationError) as caught:
        registration.definitions(defs)
    message = str(caught.value)
    assert "tasks/poll_status.json: responseTimeoutSeconds (60) must not exceed" in message
    assert "taskReferenceName 'slots' is used twice" in message
    assert "tasks[0].loopOver[0]: SIMPLE task 'no_such_task' has no task definition" in message
    assert "workflows/broken.json: not valid JSON" in message


def test_dry_run_shows_each_change_and_writes_nothing(requests_mock, defs, capsys):
    _server_has(requests_mock, defs, submit_to_workbench={"retryCount": 2})
    requests_mock.get(f"{BASE}/metadata/taskdefs/persist_run", status_code=404)
    _no_loop_running(requests_mock)
    code, lines, err = _run(capsys, "--dry-run", "--definitions", str(defs))
    assert code == 0, err
    assert lines == [
        "register: task deliver_notifications: unchanged",
        "register: task persist_run: would be created",
        "register: task poll_status: unchanged",
        "register: task submit_to_workbench: would be updated (retryCount)",
        "register: workflow batch_notifier v1: unchanged",
        "register: workflow batch_pipeline_run v1: unchanged",
        "register: workflow batch_status_poller v1: unchanged",
        f"register: dry run, nothing written to {BASE}: 1 to create, 1 to update, 5 unchanged",
    ]
    assert _writes(requests_mock) == []


def test_registering_writes_only_what_differs_and_reports_it(requests_mock, defs, capsys):
    _edit(defs / "workflows" / "batch_pipeline_run.json", description="changed")
    _server_has(requests_mock, defs, batch_pipeline_run={"description": "before"})
    requests_mock.get(f"{BASE}/metadata/taskdefs/persist_run", status_code=404)
    requests_mock.post(f"{BASE}/metadata/taskdefs", status_code=200)
    requests_mock.put(f"{BASE}/metadata/workflow", status_code=200)
    _no_loop_running(requests_mock)
    code, lines, err = _run(capsys, "--definitions", str(defs))
    assert code == 0, err
    assert _writes(requests_mock) == [
        ("POST", "/api/metadata/taskdefs"),
        ("PUT", "/api/metadata/workflow"),
    ]
    posted, put = [r.json() for r in requests_mock.request_history if r.method != "GET"]
    assert posted[0]["name"] == "persist_run"
    assert put[0]["description"] == "changed"
    assert "register: workflow batch_pipeline_run v1: updated (description)" in lines
    assert lines[-1] == f"register: 1 created, 1 updated, 5 unchanged at {BASE}"


def test_a_rejected_definition_names_it_and_the_servers_reason(requests_mock, defs, capsys):
    _server_has(requests_mock, defs, poll_status={"retryCount": 1})
    requests_mock.put(
        f"{BASE}/metadata/taskdefs",
        status_code=400,
        json={"message": "Validation failed", "validationErrors": [{"path": "x", "message": "y"}]},
    )
    code, lines, err = _run(capsys, "--definitions", str(defs))
    assert code == 1
    assert "task definition 'poll_status' rejected (HTTP 400): Validation failed; x: y" in err
    assert "register: task persist_run: unchanged" in lines  # what came before is reported


def test_an_unreachable_server_is_named(capsys):
    code = register.main(["--server", "http://127.0.0.1:9/api", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Conductor server at http://127.0.0.1:9/api unreachable" in err


def _loop_running(requests_mock, defs: Path, *names: str) -> None:
    """Running loops (the poller's unless named) that took in the definitions of `defs` when
    they started; the other loops are not running."""
    _no_loop_running(requests_mock)
    for name in names or ("batch_status_poller",):
        correlation_id, loop_id = LOOPS[name]
        requests_mock.get(
            f"{BASE}/workflow/{name}/correlated/{correlation_id}",
            json=[
                {"workflowId": loop_id, "status": "RUNNING"},
                {"workflowId": "old", "status": "TERMINATED"},
            ],
        )
        snapshot = json.loads((defs / "workflows" / f"{name}.json").read_text())
        for task in snapshot["tasks"][0]["loopOver"]:
            if task["type"] == "SIMPLE":  # Conductor embeds the definitions of static tasks
                path = defs / "tasks" / f"{task['name']}.json"
                task["taskDefinition"] = json.loads(path.read_text())
        requests_mock.get(
            f"{BASE}/workflow/{loop_id}?includeTasks=false",
            json={"workflowId": loop_id, "status": "RUNNING", "workflowDefinition": snapshot},
        )
        requests_mock.delete(f"{BASE}/workflow/{loop_id}", status_code=200)


def _deletes(requests_mock) -> list:
    return [r for r in requests_mock.request_history if r.method == "DELETE"]


def _static_loop_running(requests_mock, defs: Path) -> None:
    """A poller loop started before the fan-out: one static poll_status and a WAIT, with the
    definition poll_status had then embedded; its workflow is otherwise the same."""
    _loop_running(requests_mock, defs)
    snapshot = json.loads((defs / "workflows" / "batch_status_poller.json").read_text())
    wait = snapshot["tasks"][0]["loopOver"][-1]
    sweep = {"name": "poll_status", "taskReferenceName": "sweep", "type": "SIMPLE"}
    sweep["taskDefinition"] = json.loads((defs / "tasks" / "poll_status.json").read_text())
    snapshot["tasks"][0]["loopOver"] = [sweep, wait]
    requests_mock.get(
        f"{BASE}/workflow/{LOOP_ID}?includeTasks=false",
        json={"workflowId": LOOP_ID, "status": "RUNNING", "workflowDefinition": snapshot},
    )


def test_a_poll_status_change_leaves_the_fan_out_loop_running(requests_mock, defs, capsys):
    """Each iteration's forked sweeps take poll_status's definition from the server then."""
    _server_has(requests_mock, defs)
    _loop_running(requests_mock, defs)
    _edit(defs / "tasks" / "poll_status.json", retryCount=9)
    requests_mock.put(f"{BASE}/metadata/taskdefs", status_code=200)
    code, lines, err = _run(capsys, "--definitions", str(defs), "--replace-poller-loop")
    assert code == 0, err
    assert _deletes(requests_mock) == []
    assert lines[-2] == "register: the running batch_status_poller loop is up to date: it stays"


def test_a_loop_on_an_old_poll_status_is_replaced_when_asked(requests_mock, defs, capsys):
    _server_has(requests_mock, defs)
    _static_loop_running(requests_mock, defs)
    _edit(defs / "tasks" / "poll_status.json", retryCount=9)
    requests_mock.put(f"{BASE}/metadata/taskdefs", status_code=200)
    code, lines, err = _run(capsys, "--definitions", str(defs), "--replace-poller-loop")
    assert code == 0, err
    assert [r.path for r in _deletes(requests_mock)] == [f"/api/workflow/{LOOP_ID}"]
    reason = (
        "replaced by register: it ran on outdated workflow batch_status_poller v1, task poll_status"
    )
    assert _deletes(requests_mock)[0].qs["reason"] == [reason.lower()]
    assert lines[-2].startswith(f"register: terminated the batch_status_poller loop {LOOP_ID}")
    assert (
        lines[-1]
        == "register: no batch_notifier loop is running: the poller worker service starts one"
    )


def test_a_loop_started_before_an_earlier_registration_is_still_outdated(
    requests_mock, defs, capsys
):
    """The server already has the new definitions; the loop does not."""
    _loop_running(requests_mock, defs)
    _edit(defs / "workflows" / "batch_status_poller.json", description="new")
    _server_has(requests_mock, defs)
    code, lines, err = _run(capsys, "--definitions", str(defs), "--replace-poller-loop")
    assert code == 0, err
    assert "register: workflow batch_status_poller v1: unchanged" in lines
    assert len(_deletes(requests_mock)) == 1
    assert "outdated workflow batch_status_poller v1" in lines[-2]


def test_an_outdated_loop_is_left_running_without_the_flag_but_said(requests_mock, defs, capsys):
    _static_loop_running(requests_mock, defs)
    _edit(defs / "tasks" / "poll_status.json", retryCount=9)
    _server_has(requests_mock, defs)
    code, lines, err = _run(capsys, "--definitions", str(defs))
    assert code == 0, err
    assert _deletes(requests_mock) == []
    assert lines[-1] == (
        f"register: the running batch_status_poller loop {LOOP_ID} runs on outdated "
        "workflow batch_status_poller v1, task poll_status: --replace-poller-loop replaces it"
    )


def test_an_up_to_date_loop_stays_unless_always(requests_mock, defs, capsys):
    _server_has(requests_mock, defs)
    _loop_running(requests_mock, defs)
    code, lines, _ = _run(capsys, "--definitions", str(defs), "--replace-poller-loop")
    assert code == 0
    assert _deletes(requests_mock) == []
    assert lines[-2] == "register: the running batch_status_poller loop is up to date: it stays"
    code, lines, _ = _run(capsys, "--definitions", str(defs), "--replace-poller-loop=always")
    assert code == 0
    assert len(_deletes(requests_mock)) == 1
    assert "--replace-poller-loop=always" in lines[-2]


def test_dry_run_only_says_which_loop_it_would_replace(requests_mock, defs, capsys):
    _static_loop_running(requests_mock, defs)
    _edit(defs / "tasks" / "poll_status.json", retryCount=9)
    _server_has(requests_mock, defs)
    code, lines, _ = _run(capsys, "--definitions", str(defs), "--dry-run", "--replace-poller-loop")
    assert code == 0
    assert _writes(requests_mock) == []
    assert lines[-2].startswith(f"register: would terminate the batch_status_poller loop {LOOP_ID}")


def test_a_loop_that_cannot_be_checked_fails_only_when_replacing_was_asked(
    requests_mock, defs, capsys
):
    _server_has(requests_mock, defs)
    _no_loop_running(requests_mock)
    requests_mock.get(
        f"{BASE}/workflow/batch_status_poller/correlated/batch-status-poller",
        status_code=500,
        json={"message": "boom"},
    )
    code, lines, err = _run(capsys, "--definitions", str(defs))
    assert code == 0
    assert "could not check the batch_status_poller loop" in err and "boom" in err
    assert lines[-1].endswith("7 unchanged at " + BASE)
    code, _, err = _run(capsys, "--definitions", str(defs), "--replace-poller-loop")
    assert code == 1
    assert "boom" in err


def test_the_notifier_loop_on_an_old_deliver_notifications_is_replaced_too(
    requests_mock, defs, capsys
):
    """The batch_notifier loop keeps the definitions it started with, like the poller loop."""
    _server_has(requests_mock, defs)
    _loop_running(requests_mock, defs, "batch_status_poller", "batch_notifier")
    _edit(defs / "tasks" / "deliver_notifications.json", retryCount=9)
    requests_mock.put(f"{BASE}/metadata/taskdefs", status_code=200)
    code, lines, err = _run(capsys, "--definitions", str(defs), "--replace-poller-loop")
    assert code == 0, err
    assert [r.path for r in _deletes(requests_mock)] == [f"/api/workflow/{NOTIFIER_ID}"]
    assert lines[-2] == "register: the running batch_status_poller loop is up to date: it stays"
    assert lines[-1].startswith(f"register: terminated the batch_notifier loop {NOTIFIER_ID}")
    assert "outdated task deliver_notifications" in lines[-1]


def test_always_replaces_both_loops_and_an_outdated_notifier_is_said_without_the_flag(
    requests_mock, defs, capsys
):
    _server_has(requests_mock, defs)
    _loop_running(requests_mock, defs, "batch_status_poller", "batch_notifier")
    code, lines, _ = _run(capsys, "--definitions", str(defs), "--replace-poller-loop=always")
    assert code == 0
    assert sorted(r.path for r in _deletes(requests_mock)) == [
        f"/api/workflow/{LOOP_ID}",
        f"/api/workflow/{NOTIFIER_ID}",
    ]
    _edit(defs / "workflows" / "batch_notifier.json", description="new")
    requests_mock.put(f"{BASE}/metadata/workflow", status_code=200)
    code, lines, _ = _run(capsys, "--definitions", str(defs))
    assert code == 0
    assert lines[-1] == (
        f"register: the running batch_notifier loop {NOTIFIER_ID} runs on outdated "
        "workflow batch_notifier v1: --replace-poller-loop replaces it"
    )
