"""POLL_GIVE_UP_SECONDS: how long answers that retrying cannot fix are borne (issue 12)."""

from __future__ import annotations

import pytest

from batchcore import settings


def test_give_up_defaults_to_an_hour_and_is_read_from_the_environment():
    assert settings.default("POLL_GIVE_UP_SECONDS") == 3600
    assert settings.load({}).poll_give_up_seconds == 3600
    assert settings.load({"POLL_GIVE_UP_SECONDS": "600"}).poll_give_up_seconds == 600


@pytest.mark.parametrize("value", ["0", "59", "604801", "soon", "1e3"])
def test_a_bad_give_up_value_is_refused_naming_the_variable(value):
    with pytest.raises(settings.SettingsError, match="POLL_GIVE_UP_SECONDS"):
        settings.load({"POLL_GIVE_UP_SECONDS": value})
