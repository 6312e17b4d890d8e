"""`python -m bench.noop_worker`: the no-op tasks the latency baselines run.

Polled with the SDK and the settings the submission workers use (conductor-python's
TaskHandler; SUBMIT_WORKER_THREADS, SUBMIT_WORKER_POLL_INTERVAL_MS and
SUBMIT_WORKER_POLL_TIMEOUT_MS through conductor_workers.tasks.dispatch, the benchmark passing
the running service's values), so that a no-op workflow measures what Conductor's dispatch
costs and nothing else. BENCH_NOOP_TASKS names its two task types (another pair lets a
second worker with other settings run beside it).
"""

# No `from __future__ import annotations`: the SDK reads the real annotation types.
import os
import signal
import sys
import threading

from conductor.client.worker.worker_task import worker_task

from conductor_workers.tasks import dispatch

TASKS = tuple(os.environ.get("BENCH_NOOP_TASKS", "bench_noop_task,bench_noop_task_b").split(","))
RUNNER = dispatch.configure()


@worker_task(task_definition_name=TASKS[0], **RUNNER)
def bench_noop_task() -> dict:
    """Does nothing."""
    return {}


@worker_task(task_definition_name=TASKS[1], **RUNNER)
def bench_noop_task_b() -> dict:
    """Does nothing either: the second task of a two-task workflow, a task type of its own
    as persist_run is after submit_to_workbench (so another runner has to poll it)."""
    return {}


def main() -> int:
    from conductor.client.automator.task_handler import TaskHandler
    from conductor.client.configuration.configuration import Configuration

    handler = TaskHandler(
        configuration=Configuration(),
        import_modules=["bench.noop_worker"],
        scan_for_annotated_workers=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    handler.start_processes()
    print("noop worker started", flush=True)
    stop.wait()
    handler.stop_processes()
    return 0


if __name__ == "__main__":
    sys.exit(main())
