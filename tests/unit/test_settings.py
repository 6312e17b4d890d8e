"""Req 2.7: one settings module validates the environment and names what is wrong."""

from __future__ import annotations

import pytest

from batchcore import settings

GOOD = {
    "DATABASE_URL": "postgresql://u:p@localhost/db",
    "CONDUCTOR_SERVER_URL": "http://conductor:8080/api",
    "WORKBENCH_API_URL": "http://workbench:9000",
    "WORKBENCH_API_TOKEN": "secret-token-value",
    "GATEWAY_API_TOKENS": "a" * 20 + "," + "b" * 20,
}


def test_req_6_4_a_good_environment_loads_with_defaults():
    cfg = settings.load(GOOD, require=["DATABASE_URL", "GATEWAY_API_TOKENS"])
    assert cfg.gateway_api_tokens == ("a" * 20, "b" * 20)
    assert cfg.allowed_path_schemes == frozenset({"s3", "gs", "abfs", "file"})
    assert cfg.poll_interval_seconds == 5


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CONDUCTOR_SERVER_URL", "http://conductor:8080", "must end in /api"),
        ("CONDUCTOR_SERVER_URL", "conductor:8080/api", "http(s) URL"),
        ("WORKBENCH_API_URL", "ftp://wb", "http(s) URL"),
        ("WORKBENCH_API_URL", "http://user:pw@wb", "credentials"),
        ("DATABASE_URL", "mysql://x", "postgresql://"),
        ("GATEWAY_API_TOKENS", " , ", "at least one token"),
        ("GATEWAY_API_TOKENS", "short", "shorter than 16"),
        ("POLL_INTERVAL_SECONDS", "0", "between 1 and 3600"),
        ("POLL_INTERVAL_SECONDS", "five", "must be int"),
        ("POLL_BATCH_SIZE", "-1", "between"),
        ("POLL_MAX_RETRIES", "99", "between 0 and 20"),
        ("LOG_LEVEL", "LOUD", "must be one of"),
        ("ALLOWED_PATH_SCHEMES", "s3,ht tp", "URI schemes"),
        ("GATEWAY_BIND", "8000", "host:port"),
    ],
)
def test_req_6_4_bad_values_fail_naming_the_variable(name, value, expected):
    with pytest.raises(settings.SettingsError) as err:
        settings.load({**GOOD, name: value})
    assert name in str(err.value)
    assert expected in str(err.value)


@pytest.mark.parametrize("name", ["DATABASE_URL", "WORKBENCH_API_TOKEN", "GATEWAY_API_TOKENS"])
def test_req_6_4_a_missing_required_secret_fails_loudly(name):
    env = {k: v for k, v in GOOD.items() if k != name}
    with pytest.raises(settings.SettingsError, match=f"{name} is not set"):
        settings.load(env, require=[name])


def test_req_6_4_libpq_variables_stand_in_for_database_url():
    env = {k: v for k, v in GOOD.items() if k != "DATABASE_URL"}
    cfg = settings.load(
        {**env, "PGHOST": "db", "PGDATABASE": "pipelines"}, require=["DATABASE_URL"]
    )
    assert cfg.database_url == ""


def test_req_6_4_secrets_never_appear_in_repr():
    cfg = settings.load(GOOD)
    text = repr(cfg)
    for secret in ("secret-token-value", "a" * 20, "u:p@"):
        assert secret not in text


def test_req_6_4_errors_never_echo_a_secret_value():
    with pytest.raises(settings.SettingsError) as err:
        settings.load({**GOOD, "GATEWAY_API_TOKENS": "tiny-secret"})
    assert "tiny-secret" not in str(err.value)


def test_each_default_is_stated_once_and_read_typed():
    assert settings.default("POLL_BATCH_SIZE") == 200
    assert isinstance(settings.default("POLL_BATCH_SIZE"), int)
    assert settings.default("WORKBENCH_CONNECT_TIMEOUT_SECONDS") == 3.0
    assert settings.default("ALLOWED_PATH_SCHEMES") == frozenset({"s3", "gs", "abfs", "file"})
    assert settings.default("WORKBENCH_API_URL") is None
    with pytest.raises(KeyError, match="NO_SUCH_VARIABLE"):
        settings.default("NO_SUCH_VARIABLE")


def test_the_settings_dataclass_takes_every_default_from_the_table():
    bare = settings.Settings()
    loaded = settings.load({})
    for var in settings.VARIABLES:
        assert getattr(bare, var.attr) == getattr(loaded, var.attr), var.name
        if var.default is not None:
            assert getattr(bare, var.attr) == settings.default(var.name), var.name
