"""`python -m bench.noop_worker`: the no-op tasks the latency baselines run.

Polled with the SDK and the settings the project's own workers use (conductor-python's
TaskHandler, 8 threads, a 100 ms poll interval), so that a no-op workflow measures what
Conductor's dispatch costs and nothing else.
"""

# No `from __future__ import annotations`: the SDK reads the real annotation types.
import signal
import sys
import threading

from conductor.client.worker.worker_task import worker_task

TASKS = ("bench_noop_task", "bench_noop_task_b")


@worker_task(task_definition_name=TASKS[0], thread_count=8, poll_interval_millis=100)
def bench_noop_task() -> dict:
    """Does nothing."""
    return {}


@worker_task(task_definition_name=TASKS[1], thread_count=8, poll_interval_millis=100)
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
