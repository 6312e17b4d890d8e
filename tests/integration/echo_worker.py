"""A trivial conductor-python worker for the round-trip test: `python -m ... <task_name>`."""

import signal
import sys

from conductor.client.automator.task_handler import TaskHandler
from conductor.client.configuration.configuration import Configuration
from conductor.client.http.models.task import Task
from conductor.client.worker.worker import Worker


def echo(task: Task) -> dict:
    """Answer with the input doubled, and who did it."""
    return {"doubled": task.input_data["n"] * 2, "worker": "echo_worker"}


def main(task_name: str) -> None:
    handler = TaskHandler(
        workers=[Worker(task_definition_name=task_name, execute_function=echo, poll_interval=100)],
        configuration=Configuration(),
        scan_for_annotated_workers=False,
    )
    signal.signal(signal.SIGTERM, lambda *_: (handler.stop_processes(), sys.exit(0)))
    handler.start_processes()
    handler.join_processes()


if __name__ == "__main__":
    main(sys.argv[1])
