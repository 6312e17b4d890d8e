"""Task worker of the status polling service: poll_status."""

# No `from __future__ import annotations`: the SDK reads the real annotation types.
import dataclasses
import functools
import logging
import time

from conductor.client.worker.worker_task import worker_task

from batchcore.runs.workflow import POLLER_SWEEP_TASK

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


def slot_config(cfg: polling.SweepConfig, slot) -> polling.SweepConfig:
    """The sweep of one slot of a loop iteration: only slot 0 does the iteration's duties
    (a task without a slot, from a loop started before the fan-out, is slot 0)."""
    return dataclasses.replace(cfg, duties=int(slot or 0) == 0)


# One sweep at a time per service: a service's sweeps share its POLL_CONCURRENCY calls in
# flight (polling.executor), so a second thread would add nothing but would take a slot that
# another service could sweep at once (the SDK polls for as many tasks as it has threads).
@worker_task(task_definition_name=POLLER_SWEEP_TASK, thread_count=1, poll_interval_millis=100)
def poll_status(slot: int = 0, slots: int = 1) -> dict:
    """One sweep of the due SUBMITTED and RUNNING runs; the summary shows in Conductor."""
    cfg = slot_config(_sweep_config(), slot)
    summary = polling.sweep(resources.store(), resources.workbench(), resources.conductor(), cfg)
    summary["slot"] = f"{int(slot or 0)}/{int(slots or 1)}"
    # Slot 0 only, so two reconciler passes never run at once within one loop.
    repaired = _maybe_reconcile() if cfg.duties else None
    if repaired is not None:
        summary["reconciled"] = repaired
    return summary


# The poller service also runs the batch_notifier loop's task (conductor_workers.notifying).
from . import notify  # noqa: E402, F401
