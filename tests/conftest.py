"""Fixtures over the real local stack: PostgreSQL databases per test, Conductor, endpoints."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
import requests

from batchcore import migrate
from batchcore.db import Database
from stack import config

# One template per test session, so that two sessions on one stack never clobber each other.
TEMPLATE_PREFIX = "pipelines_test_template"


def pytest_collection_modifyitems(items):
    """Mark tests by tier from their folder, so `-m` can pick a tier."""
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in ("integration", "e2e"):
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    """The running stack's endpoints; fails loudly when the stack is not up."""
    env = config.read_stack_env()
    if not env:
        pytest.fail(
            f"no {config.STACK_DIR / 'stack.env'}: start the stack with `make up` "
            "(make test does this itself)"
        )
    try:
        psycopg2.connect(env["PG_ADMIN_URL"], connect_timeout=3).close()
    except psycopg2.OperationalError as exc:
        pytest.fail(f"the stack's PostgreSQL is not answering ({exc}); run `make up`")
    return env


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin(stack_env):
    conn = psycopg2.connect(stack_env["PG_ADMIN_URL"])
    conn.autocommit = True
    return conn


@pytest.fixture(scope="session")
def template_database(stack_env) -> Iterator[str]:
    """A freshly migrated template database of this test session's own, dropped at its end."""
    name = f"{TEMPLATE_PREFIX}_{uuid.uuid4().hex[:12]}"
    _admin_execute(stack_env, f"CREATE DATABASE {name} OWNER pipelines")
    migrate.apply(_with_db(stack_env["DATABASE_URL"], name))
    yield name
    _admin_execute(stack_env, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _admin_execute(stack_env, statement: str) -> None:
    # A connection per statement: tests restart PostgreSQL, so a held one may be gone.
    conn = _admin(stack_env)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


@contextmanager
def scratch_database(stack_env, prefix: str, template: str | None = None) -> Iterator[str]:
    """A database of its own, owned by the service's role (a copy of `template`, or empty),
    dropped afterwards; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    clone = f" TEMPLATE {template}" if template else ""
    _admin_execute(stack_env, f"CREATE DATABASE {name}{clone} OWNER pipelines")
    try:
        yield _with_db(stack_env["DATABASE_URL"], name)
    finally:
        _admin_execute(stack_env, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def database_url(stack_env, template_database) -> str:
    """A fresh migrated database of its own for one test, dropped afterwards."""
    with scratch_database(stack_env, "test", template_database) as url:
        yield url


@pytest.fixture
def database(database_url) -> Database:
    """The service's pool over this test's own database."""
    db = Database(database_url, maxconn=5, connect_timeout=5)
    yield db
    db.close()


@pytest.fixture(scope="session")
def conductor_url(stack_env) -> str:
    """The real Conductor server's REST base (…/api); fails loudly when it is down."""
    url = stack_env["CONDUCTOR_SERVER_URL"]
    try:
        requests.get(url.removesuffix("/api") + "/health", timeout=5).raise_for_status()
    except requests.RequestException as exc:
        pytest.fail(f"the stack's Conductor server is not answering at {url} ({exc})")
    return url


@pytest.fixture
def simulator(stack_env):
    """The stack's simulator, its faults cleared before and after the test."""
    from tests.integration.helpers import Simulator

    sim = Simulator(stack_env["WORKBENCH_ADMIN_URL"])
    sim.clear()
    yield sim
    sim.clear()


@pytest.fixture
def workbench_client(stack_env):
    """A real Workbench client for the stack's simulator."""
    from batchcore.workbench import WorkbenchClient

    client = WorkbenchClient(
        stack_env["WORKBENCH_API_URL"],
        stack_env["WORKBENCH_API_TOKEN"],
        connect_timeout=1,
        read_timeout=3,
    )
    yield client
    client.close()
