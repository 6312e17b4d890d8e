"""Fixtures for tests over HTTP through the whole running stack."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg2
import pytest
import requests

from stack import config, supervisor
from tests.integration.helpers import await_true

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


class Api:
    """The gateway over HTTP, with the stack's dev token."""

    def __init__(self, base: str, token: str):
        self.base = base.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def post_run(self, body: dict | None = None, key: str | None = None, **params):
        body = body if body is not None else run_body()
        headers = {"Idempotency-Key": key} if key else {}
        return self.session.post(
            f"{self.base}/api/v1/pipeline-runs",
            json=body,
            headers=headers,
            params=params,
            timeout=40,
        )

    def get_run(self, run_id) -> dict:
        resp = self.session.get(f"{self.base}/api/v1/pipeline-runs/{run_id}", timeout=10)
        resp.raise_for_status()
        return resp.json()

    def await_status(self, run_id, statuses, timeout: float) -> dict:
        """The run once its status is one of `statuses`."""
        wanted = (statuses,) if isinstance(statuses, str) else tuple(statuses)

        def check():
            run = self.get_run(run_id)
            return run if run["status"] in wanted else None

        return await_true(check, timeout, f"run {run_id} to reach {wanted}", every=0.2)


def bad_authorizations(token: str) -> dict[str, dict[str, str]]:
    """Headers that must all be refused with 401."""
    variants = {
        "missing": {},
        "empty": {"Authorization": ""},
        "wrong token": {"Authorization": "Bearer " + "w" * len(token)},
        "truncated token": {"Authorization": f"Bearer {token[:-1]}"},
        "extended token": {"Authorization": f"Bearer {token}0"},
        "first half of the token": {"Authorization": f"Bearer {token[: len(token) // 2]}"},
        "token without scheme": {"Authorization": token},
        "Basic scheme": {"Authorization": f"Basic {token}"},
        "Token scheme": {"Authorization": f"Token {token}"},
        "two tokens": {"Authorization": f"Bearer {token} {token}"},
        "token as a cookie": {"Cookie": f"token={token}; access_token={token}"},
        "token in another header": {"X-Api-Key": token, "X-Auth-Token": token},
    }
    for name, cased in (
        ("swapped case", token.swapcase()),
        ("upper case", token.upper()),
        ("lower case", token.lower()),
    ):
        if cased != token:
            variants[f"{name} token"] = {"Authorization": f"Bearer {cased}"}
    return variants


def run_body(**overrides) -> dict:
    """A valid request with unique prefixes."""
    tag = uuid.uuid4().hex
    body = {
        "pipeline": "demo-batch",
        "mode": "BATCH",
        "input_path_prefix": f"s3://e2e-in/{tag}",
        "output_path_prefix": f"s3://e2e-out/{tag}",
    }
    body.update(overrides)
    return body


@pytest.fixture(scope="session")
def api(stack_env) -> Api:
    client = Api(stack_env["GATEWAY_URL"], stack_env["GATEWAY_API_TOKEN"])
    try:
        client.session.get(f"{client.base}/readyz", timeout=5).raise_for_status()
    except requests.RequestException as exc:
        pytest.fail(f"the stack's gateway is not ready at {client.base} ({exc}); run `make up`")
    return client


@pytest.fixture(scope="session")
def conductor_api(conductor_url):
    """GET helper for Conductor's REST API."""

    def get(path: str, **params):
        resp = requests.get(f"{conductor_url}{path}", params=params, timeout=10)
        resp.raise_for_status()
        return resp.json()

    return get


def http_ready(url: str) -> Callable[[], bool]:
    """A readiness check: `url` answers 200."""

    def ready() -> bool:
        try:
            return requests.get(url, timeout=5).status_code == 200
        except requests.RequestException:
            return False

    return ready


def bring_back(name: str, ready: Callable[[], bool], timeout: float = 240) -> None:
    """Start a stack process again until `ready()`: a start that fails (its port not yet
    free, a crash on the way up) is tried again, so one bad start does not leave the process
    down for every test after this one."""
    deadline = time.monotonic() + timeout
    while True:
        if supervisor.state(name) in ("STOPPED", "EXITED", "FATAL", "UNKNOWN"):
            supervisor.ctl("start", name, check=False, quiet=True)
        if ready():
            return
        if time.monotonic() > deadline:
            log = config.LOG_DIR / f"{name}.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
            raise AssertionError(
                f"{name} is not ready {timeout}s after it was started again "
                f"(state {supervisor.state(name)}); the end of its log:\n{tail}"
            )
        time.sleep(1)


@contextmanager
def stopped(name: str, ready: Callable[[], bool], timeout: float = 240) -> Iterator[None]:
    """The stack process `name` stopped for the block, then started again until `ready()`."""
    supervisor.ctl("stop", name, check=False, quiet=True)
    try:
        yield
    finally:
        bring_back(name, ready, timeout)


def database_ready(url: str) -> Callable[[], bool]:
    """A readiness check: PostgreSQL accepts a connection to `url`."""

    def ready() -> bool:
        try:
            psycopg2.connect(url, connect_timeout=3).close()
        except psycopg2.OperationalError:
            return False
        return True

    return ready


@pytest.fixture(scope="module")
def pipelines_db(stack_env):
    """An autocommit connection to the stack's own pipelines database."""
    conn = psycopg2.connect(stack_env["DATABASE_URL"], connect_timeout=5)
    conn.autocommit = True
    yield conn
    conn.close()


def rows_marked(conn, marker: str) -> int:
    """Run rows whose prefixes or Idempotency-Key carry `marker` (only one test's do)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pipeline_runs WHERE idempotency_key LIKE %(like)s"
            " OR input_path_prefix LIKE %(like)s OR output_path_prefix LIKE %(like)s",
            {"like": f"%{marker}%"},
        )
        return cur.fetchone()[0]
