"""Task worker of the status polling service: poll_status."""

# No `from __future__ import annotations`: the SDK reads the real annotation types.
import functools
from concurrent.futures import ThreadPoolExecutor

from conductor.client.worker.worker_task import worker_task

from . import polling, resources


@functools.cache
def _sweep_config() -> polling.SweepConfig:
    cfg = resources.settings()
    return polling.SweepConfig(
        batch_size=cfg.poll_batch_size,
        concurrency=cfg.poll_concurrency,
        max_retries=cfg.poll_max_retries,
        lease_seconds=cfg.poll_lease_seconds,
        interval_seconds=cfg.poll_interval_seconds,
    )


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(_sweep_config().concurrency, thread_name_prefix="poll")


@worker_task(task_definition_name="poll_status", thread_count=1, poll_interval_millis=100)
def poll_status() -> dict:
    """One sweep of the due SUBMITTED and RUNNING runs; the summary shows in Conductor."""
    return polling.sweep(
        resources.database(), resources.workbench(), resources.conductor(), _sweep_config(), _pool()
    )
