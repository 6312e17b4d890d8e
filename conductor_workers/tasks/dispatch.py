"""How the submission task runners poll Conductor: their SDK settings, from batchcore's."""

from conductor.client.http.api.task_resource_api import TaskResourceApi

from batchcore import settings as settings_mod


def runner_settings() -> dict:
    """worker_task arguments of a submission task runner (threads, idle poll interval)."""
    cfg = settings_mod.load()
    return {
        "thread_count": cfg.submit_worker_threads,
        "poll_interval_millis": cfg.submit_worker_poll_interval_ms,
    }


def hold_polls_for(timeout_ms: int) -> None:
    """Make every batch poll of this process ask Conductor to hold it `timeout_ms` at most.

    conductor-python 2.0.0's TaskRunner sends timeout=100 whatever the worker's poll_timeout
    says, and Conductor's PostgreSQL queue (3.32.1) keeps the tasks a poll found until the
    batch is full or the timeout passes: each dispatched task waited those 100 ms.
    """
    if getattr(TaskResourceApi.batch_poll, "held_ms", None) == timeout_ms:
        return
    sdk_batch_poll = getattr(
        TaskResourceApi.batch_poll, "sdk_batch_poll", TaskResourceApi.batch_poll
    )

    def batch_poll(self, tasktype, **kwargs):
        kwargs["timeout"] = timeout_ms
        return sdk_batch_poll(self, tasktype, **kwargs)

    batch_poll.held_ms = timeout_ms
    batch_poll.sdk_batch_poll = sdk_batch_poll
    TaskResourceApi.batch_poll = batch_poll


def configure() -> dict:
    """Apply the poll timeout to this process and return the runners' worker_task arguments."""
    hold_polls_for(settings_mod.load().submit_worker_poll_timeout_ms)
    return runner_settings()
