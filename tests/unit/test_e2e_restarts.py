"""The e2e tier's restart helper starts a stopped stack process again until it is ready."""

from __future__ import annotations

import pytest

from tests.e2e import conftest


class FakeSupervisor:
    """A process whose first start fails (FATAL, as when its port is not yet free)."""

    def __init__(self, failed_starts: int):
        self.failed_starts = failed_starts
        self.current = "STOPPED"
        self.starts = 0

    def state(self, name: str) -> str:
        return self.current

    def ctl(self, command: str, name: str, **_: object) -> None:
        assert command == "start"
        self.starts += 1
        self.current = "FATAL" if self.starts <= self.failed_starts else "RUNNING"


@pytest.fixture
def fake(monkeypatch):
    def install(failed_starts: int) -> FakeSupervisor:
        supervisor = FakeSupervisor(failed_starts)
        monkeypatch.setattr(conftest, "supervisor", supervisor)
        monkeypatch.setattr(conftest.time, "sleep", lambda seconds: None)
        return supervisor

    return install


def test_a_failed_start_is_tried_again_until_the_process_is_ready(fake):
    supervisor = fake(failed_starts=2)
    conftest.bring_back("conductor", lambda: supervisor.current == "RUNNING", timeout=60)
    assert supervisor.starts == 3


def test_a_process_that_never_comes_back_fails_naming_it(fake, monkeypatch):
    supervisor = fake(failed_starts=1000)
    clock = iter(range(0, 10_000, 10))
    monkeypatch.setattr(conftest.time, "monotonic", lambda: next(clock))
    with pytest.raises(AssertionError, match="conductor is not ready 60s after"):
        conftest.bring_back("conductor", lambda: False, timeout=60)
    assert supervisor.starts > 1
