"""Task worker of the status polling service: poll_status."""

# No `from __future__ import annotations`: the SDK reads the real annotation types.
import functools
import logging
import time

from conductor.client.worker.worker_task import worker_task

from .. import polling, reconcile, resources

log = logging.getLogger(__name__)
_last_reconcile = 0.0


@functools.cache
def _sweep_config() -> polling.SweepConfig:
    return polling.SweepConfig.from_settings(resources.settings())


@functools.cache
def _reconcile_config() -> reconcile.ReconcileConfig:
    return reconcile.ReconcileConfig.from_settings(resources.settings())


def _maybe_reconcile() -> dict | None:
    """Run the reconciler when its interval has passed in this process."""
    global _last_reconcile
    if time.monotonic() - _last_reconcile < resources.settings().reconcile_interval_seconds:
        return None
    _last_reconcile = time.monotonic()
    return reconcile.reconcile(resources.store(), resources.conductor(), _reconcile_config())


@worker_task(task_definition_name="poll_status", thread_count=1, poll_interval_millis=100)
def poll_status() -> dict:
    """One sweep of the due SUBMITTED and RUNNING runs; the summary shows in Conductor."""
    summary = polling.sweep(
        resources.store(),
        resources.workbench(),
        resources.conductor(),
        _sweep_config(),
    )
    repaired = _maybe_reconcile()
    if repaired is not None:
        summary["reconciled"] = repaired
    return summary


# The poller service also runs the batch_notifier loop's task (conductor_workers.notifying).
from . import notify  # noqa: E402, F401
