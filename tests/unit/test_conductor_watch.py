"""The local stack's watch: when it restarts Conductor for conductor-oss/conductor#326."""

from __future__ import annotations

import json
import time

from batchcore.conductor_queue import QueueHealth, health_from_row
from stack import conductor, conductor_watch
from stack.conductor_watch import decide

STUCK = health_from_row((1, 400.0, ["_deciderQueue"]), 300)
OK = health_from_row((0, None, None), 300)
UNKNOWN = QueueHealth(stuck_after_seconds=300, error="connection refused")
HOLDOFF = 480.0


def test_a_stuck_queue_of_a_running_conductor_restarts_it_naming_the_issue():
    decision = decide(STUCK, "RUNNING", now=1000.0, last_restart_at=None, holdoff_seconds=HOLDOFF)
    assert decision.restart
    assert "conductor-oss/conductor#326" in decision.reason


def test_a_healthy_or_unreadable_queue_restarts_nothing():
    for health in (OK, UNKNOWN):
        assert not decide(health, "RUNNING", 1000.0, None, HOLDOFF).restart


def test_a_conductor_someone_stopped_is_never_started():
    for state in ("STOPPED", "STARTING", "BACKOFF", "FATAL", "UNKNOWN"):
        decision = decide(STUCK, state, 1000.0, None, HOLDOFF)
        assert not decision.restart and state in decision.reason


def test_at_most_one_restart_per_holdoff():
    assert not decide(STUCK, "RUNNING", 1000.0, 1000.0 - HOLDOFF + 1, HOLDOFF).restart
    assert decide(STUCK, "RUNNING", 1000.0, 1000.0 - HOLDOFF, HOLDOFF).restart


def test_messages_a_restart_did_not_clear_cause_no_restart_loop():
    """Seen on the stack: 85 decider messages of workflows whose SIMPLE task no worker polls
    stayed popped with their first delivery time through 13 restarts, one per hold-off."""
    after_restart = 1000.0 - HOLDOFF  # the hold-off has passed
    same = health_from_row((85, 2000.0, ["_deciderQueue"], 0), 300)
    decision = decide(same, "RUNNING", 1000.0, after_restart, HOLDOFF)
    assert not decision.restart and "stayed popped through the last restart" in decision.reason
    newly = health_from_row((86, 2000.0, ["_deciderQueue"], 1), 300)
    assert decide(newly, "RUNNING", 1000.0, after_restart, HOLDOFF).restart
    assert decide(same, "RUNNING", 1000.0, None, HOLDOFF).restart  # never restarted yet


def test_the_holdoff_outlasts_a_new_servers_first_unack_pass():
    # The new server un-acks 60 s after it starts; the stack's start takes about a minute.
    assert conductor_watch.SETTLE_SECONDS >= 60 + 60


def test_readiness_is_a_recent_check(tmp_path):
    path = tmp_path / "conductor-watch.json"
    assert not conductor_watch.is_fresh(path)
    path.write_text(json.dumps({"checked_at_epoch": time.time() - 5}))
    assert conductor_watch.is_fresh(path)
    path.write_text(json.dumps({"checked_at_epoch": time.time() - 600}))
    assert not conductor_watch.is_fresh(path)
    path.write_text("{not json")
    assert conductor_watch.read_state(path) == {}


def test_the_stack_runs_conductor_with_its_execution_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(conductor, "STACK_DIR", tmp_path)
    properties = dict(
        line.split("=", 1)
        for line in conductor.write_properties("secret").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert properties["conductor.app.workflowExecutionLockEnabled"] == "true"
    assert properties["conductor.workflow-execution-lock.type"] == "local_only"


def test_the_workers_and_the_watch_get_the_read_only_url_after_conductor(monkeypatch):
    from stack import config, processes

    monkeypatch.setattr(processes.conductor, "server_command", lambda _password: ["java"])
    secrets = {name: f"secret-{name.lower()}" for name in config.SECRET_NAMES}
    endpoints = config.endpoints(secrets)
    assert endpoints["CONDUCTOR_DATABASE_URL"].startswith("postgresql://conductor_monitor:")
    built = processes.build(secrets, endpoints)
    by_name = {p.name: p for p in built}
    for name in ("submit-workers", "poller", "conductor-watch"):
        env = by_name[name].env
        assert env["CONDUCTOR_DATABASE_URL"] == endpoints["CONDUCTOR_DATABASE_URL"], name
        assert int(env["CONDUCTOR_STUCK_MESSAGE_SECONDS"]) >= 150, name
    assert "CONDUCTOR_DATABASE_URL" not in by_name["gateway"].env
    names = [p.name for p in built]
    assert names.index("conductor-watch") == names.index("conductor") + 1
    assert by_name["conductor-watch"].command[-2:] == ["-m", "stack.conductor_watch"]
