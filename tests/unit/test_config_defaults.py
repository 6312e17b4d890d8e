"""The workers' configs take their defaults from the settings table, stated once (issue 9)."""

from __future__ import annotations

import pytest

from batchcore import settings
from conductor_workers import notifying, polling, reconcile


@pytest.mark.parametrize(
    ("bare", "config"),
    [
        (polling.SweepConfig(), polling.SweepConfig),
        (reconcile.ReconcileConfig(), reconcile.ReconcileConfig),
        (notifying.DeliveryConfig(secret=None), notifying.DeliveryConfig),
    ],
    ids=["sweep", "reconcile", "delivery"],
)
def test_a_config_built_without_settings_is_the_one_an_empty_environment_gives(bare, config):
    assert config.from_settings(settings.load({})) == bare
