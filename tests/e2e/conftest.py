"""Fixtures for tests over HTTP through the whole running stack."""

from __future__ import annotations

import uuid

import psycopg2
import pytest
import requests

from stack import supervisor
from tests.integration.helpers import await_true

TERMINAL = ("COMPLETED", "FAILED")


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


def restart_process(name: str, ready_url: str | None = None, timeout: float = 180) -> None:
    """Start a stopped stack process again and wait until it answers."""
    supervisor.ctl("start", name, check=False, quiet=True)
    if ready_url:

        def ready():
            try:
                return requests.get(ready_url, timeout=2).status_code == 200
            except requests.RequestException:
                return False

        await_true(ready, timeout, f"{name} to be ready again", every=0.5)


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
