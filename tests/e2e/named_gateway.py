"""A gateway of a test module's own on the stack's PostgreSQL and Conductor (so the stack's
workers carry its runs through), with named tokens and a deadline setting of its own."""

from __future__ import annotations

import secrets

import pytest

from tests.e2e.conftest import Api
from tests.integration.helpers import running_gateway

ALICE = "alice-" + secrets.token_urlsafe(24)
BOB = "bob-" + secrets.token_urlsafe(24)
# Not the default (86400), so a run's deadline shows it came from the setting.
RUN_DEADLINE_SECONDS = 5400


@pytest.fixture(scope="module")
def named_gateway(stack_env, tmp_path_factory) -> str:
    """The base URL of a gunicorn gateway whose tokens are named alice and bob."""
    env = {
        "DATABASE_URL": stack_env["DATABASE_URL"],
        "CONDUCTOR_SERVER_URL": stack_env["CONDUCTOR_SERVER_URL"],
        "GATEWAY_API_TOKENS": f"alice:{ALICE},bob:{BOB}",
        "RUN_DEADLINE_SECONDS": str(RUN_DEADLINE_SECONDS),
    }
    log = tmp_path_factory.mktemp("named") / "gateway.log"
    with running_gateway(env, log) as (base, _):
        yield base


@pytest.fixture(scope="module")
def alice(named_gateway) -> Api:
    return Api(named_gateway, ALICE)


@pytest.fixture(scope="module")
def bob(named_gateway) -> Api:
    return Api(named_gateway, BOB)
