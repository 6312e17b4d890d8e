"""Task worker of the status polling service: deliver_notifications."""

# No `from __future__ import annotations`: the SDK reads the real annotation types.
import functools

from conductor.client.worker.worker_task import worker_task

from batchcore.notifications.store import NotificationStore

from .. import notifying, resources


@functools.cache
def _config() -> notifying.DeliveryConfig:
    return notifying.DeliveryConfig.from_settings(resources.settings())


@worker_task(task_definition_name="deliver_notifications", thread_count=1, poll_interval_millis=100)
def deliver_notifications() -> dict:
    """One sweep of the due webhook notifications; the summary shows in Conductor."""
    return notifying.sweep(NotificationStore(resources.database()), _config())
