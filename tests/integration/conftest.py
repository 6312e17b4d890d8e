"""Fixtures the integration tier shares."""

from __future__ import annotations

import pytest

from batchcore.conductor import ConductorClient


@pytest.fixture
def conductor(conductor_url):
    """The service's Conductor client on the stack's server, closed after the test."""
    client = ConductorClient(conductor_url)
    yield client
    client.close()
