"""The submission task runners poll Conductor with the service's settings, not the SDK's."""

import pytest
from conductor.client.http.api.task_resource_api import TaskResourceApi

from batchcore import settings
from conductor_workers.tasks import dispatch


@pytest.fixture
def sent(monkeypatch) -> list[dict]:
    """What each batch poll would send to Conductor, the SDK's HTTP call replaced."""
    calls: list[dict] = []

    def sdk_batch_poll(self, tasktype, **kwargs):
        calls.append({"tasktype": tasktype, **kwargs})
        return []

    monkeypatch.setattr(TaskResourceApi, "batch_poll", sdk_batch_poll)
    return calls


def _poll_as_the_sdk_does() -> None:
    # conductor-python 2.0.0's TaskRunner sends timeout=100 whatever poll_timeout says.
    TaskResourceApi(api_client=object()).batch_poll(
        tasktype="submit_to_workbench", workerid="w", count=8, timeout=100
    )


def test_a_batch_poll_asks_conductor_for_the_configured_hold(sent):
    dispatch.hold_polls_for(0)
    _poll_as_the_sdk_does()
    assert sent == [{"tasktype": "submit_to_workbench", "workerid": "w", "count": 8, "timeout": 0}]


def test_configuring_again_replaces_the_hold_without_wrapping_twice(sent):
    dispatch.hold_polls_for(0)
    dispatch.hold_polls_for(0)
    dispatch.hold_polls_for(250)
    _poll_as_the_sdk_does()
    assert [call["timeout"] for call in sent] == [250]


def test_configure_reads_the_submission_worker_settings(sent, monkeypatch):
    monkeypatch.setenv("SUBMIT_WORKER_THREADS", "3")
    monkeypatch.setenv("SUBMIT_WORKER_POLL_INTERVAL_MS", "40")
    monkeypatch.setenv("SUBMIT_WORKER_POLL_TIMEOUT_MS", "20")
    assert dispatch.configure() == {"thread_count": 3, "poll_interval_millis": 40}
    _poll_as_the_sdk_does()
    assert sent[0]["timeout"] == 20


def test_the_defaults_answer_polls_at_once():
    assert settings.default("SUBMIT_WORKER_POLL_TIMEOUT_MS") == 0
    assert settings.default("SUBMIT_WORKER_THREADS") == 8
    assert settings.default("SUBMIT_WORKER_POLL_INTERVAL_MS") == 100


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SUBMIT_WORKER_THREADS", "0"),
        ("SUBMIT_WORKER_POLL_INTERVAL_MS", "0"),
        ("SUBMIT_WORKER_POLL_TIMEOUT_MS", "5001"),
        ("SUBMIT_WORKER_POLL_TIMEOUT_MS", "-1"),
    ],
)
def test_bad_worker_settings_are_refused_by_name(name, value):
    with pytest.raises(settings.SettingsError, match=name):
        settings.load({name: value})
