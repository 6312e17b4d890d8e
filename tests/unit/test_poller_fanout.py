"""Issue 14.1: the poller loop forks POLL_PARALLELISM sweeps per iteration; slot 0 does the
iteration's duties; the loop keeper starts the loop with its parallelism."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from batchcore import settings
from conductor_workers import polling, supervision
from conductor_workers.tasks import poll
from tests.unit.fake_services import FakeConductor
from tests.unit.fake_store import FakeClock, FakeStore

LOOP = Path(__file__).resolve().parents[2] / "workflow_defs/workflows/batch_status_poller.json"


def _loop_over() -> list[dict]:
    return json.loads(LOOP.read_text())["tasks"][0]["loopOver"]


@pytest.mark.parametrize(("slot", "duties"), [(0, True), (None, True), (1, False), (5, False)])
def test_only_slot_0_does_the_iterations_duties(slot, duties):
    cfg = poll.slot_config(polling.SweepConfig(batch_size=7), slot)
    assert cfg.duties is duties
    assert cfg.batch_size == 7, "the other knobs are the service's"


def test_the_forked_sweeps_are_deleted_with_their_iteration_and_never_fail_the_loop():
    """Conductor 3.32.1 (DoWhile.removeIterations) deletes an old iteration's tasks only
    when the part of their reference name before '__' names a task of the loop: the forked
    sweeps are named after the fork. Optional: a sweep that fails for good (or is seen
    failed before its retry is scheduled) does not fail the JOIN and with it the loop."""
    slots, fanout, join, wait = _loop_over()
    script = slots["inputParameters"]["expression"]
    assert f"'{fanout['taskReferenceName']}__slot' + i" in script
    assert "name: 'poll_status'" in script and "optional: true" in script
    assert "parseInt($.parallelism, 10) || 1" in script, "a loop started without it sweeps once"
    assert fanout["inputParameters"]["dynamicTasks"] == "${slots.output.result.tasks}"
    assert fanout["inputParameters"]["dynamicTasksInput"] == "${slots.output.result.inputs}"
    assert join["type"] == "JOIN" and wait["type"] == "WAIT"


def test_poll_parallelism_defaults_to_2_and_is_checked():
    assert settings.load({}).poll_parallelism == 2
    assert settings.load({"POLL_PARALLELISM": "8"}).poll_parallelism == 8
    for bad in ("0", "33", "two"):
        with pytest.raises(settings.SettingsError, match="POLL_PARALLELISM"):
            settings.load({"POLL_PARALLELISM": bad})


def test_the_loop_script_caps_parallelism_like_the_setting():
    script = _loop_over()[0]["inputParameters"]["expression"]
    low, high = 1, 32
    assert f"Math.max({low}, Math.min({high}," in script
    with pytest.raises(settings.SettingsError):
        settings.load({"POLL_PARALLELISM": str(high + 1)})


def test_the_keeper_starts_the_loop_with_its_parallelism():
    conductor = FakeConductor()
    stopped = threading.Event()
    stopped.set()  # its thread ends at once: the test makes the one check
    keeper = supervision.keep_poller_loop_running(
        conductor, FakeStore(FakeClock()), 5, stopped, parallelism=3
    )
    keeper.thread.join(5)
    keeper.check()
    (started,) = conductor.started
    assert started[3] == {"poll_interval_seconds": 5, "poll_parallelism": 3}


def test_a_service_takes_one_sweep_at_a_time_leaving_the_others_to_other_services():
    from conductor.client.automator.task_handler import _decorated_functions

    (record,) = [r for (name, _), r in _decorated_functions.items() if name == "poll_status"]
    assert record["thread_count"] == 1


def test_the_benchmark_part_updates_only_its_own_keys(tmp_path):
    from bench import __main__ as bench_main
    from bench import report

    assert "poller_scaling" in bench_main.PARTS
    out = tmp_path / "latest.json"
    out.write_text(json.dumps({"poller_scaling_2_vs_1": 1.12, "gateway_accept_ratio": 0.7}))
    ours = {
        "poller_scaling_conductor_2_vs_1": 1.93,
        "poller_scaling_conductor_1_runs_per_second": 138.0,
        "poller_scaling_conductor_2_runs_per_second": 266.2,
        "poller_scaling_conductor_runs": 10_000,
    }
    kept = json.loads(report.write(ours, out).read_text())
    assert kept == {"poller_scaling_2_vs_1": 1.12, "gateway_accept_ratio": 0.7, **ours}
    row = next(line for line in report.table(kept).splitlines() if "conductor_2_vs_1" in line)
    assert "266 vs 138 runs/s" in row and "yes" in row
