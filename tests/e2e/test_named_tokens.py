"""Named tokens over HTTP (issue 13): a gateway of the test's own with named tokens, on the
stack's PostgreSQL and Conductor, so its runs are carried through by the stack's workers."""

from __future__ import annotations

import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import Api, run_body
from tests.integration.helpers import ROOT, running_gateway

ALICE = "alice-" + secrets.token_urlsafe(24)
ALICE_ROTATED = "alice-next-" + secrets.token_urlsafe(24)
BOB = "bob-" + secrets.token_urlsafe(24)
BARE = "bare-" + secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def named_gateway(stack_env, tmp_path_factory):
    """A gunicorn gateway whose tokens are alice (two, rotation), bob and a bare one."""
    env = {
        "DATABASE_URL": stack_env["DATABASE_URL"],
        "CONDUCTOR_SERVER_URL": stack_env["CONDUCTOR_SERVER_URL"],
        "GATEWAY_API_TOKENS": f"alice:{ALICE}, alice:{ALICE_ROTATED},bob:{BOB},{BARE}",
    }
    with running_gateway(env, tmp_path_factory.mktemp("named") / "gateway.log") as (base, _):
        yield base


def test_each_client_has_its_own_keys_and_is_named_on_its_runs(named_gateway):
    alice, alice_next, bob = (Api(named_gateway, t) for t in (ALICE, ALICE_ROTATED, BOB))
    key = f"shared-{uuid.uuid4()}"
    alice_body, bob_body = run_body(), run_body()
    first = alice.post_run(alice_body, key=key)
    assert first.status_code == 202, first.text
    # The same key from another client, with another body: its own run, no conflict.
    other = bob.post_run(bob_body, key=key)
    assert other.status_code == 202, other.text
    alice_run, bob_run = first.json(), other.json()
    assert alice_run["id"] != bob_run["id"]
    assert (alice_run["submitted_by"], bob_run["submitted_by"]) == ("alice", "bob")
    assert alice_run["history"][0]["actor"] == "alice"
    assert bob_run["history"][0]["actor"] == "bob"
    # Alice's rotated token is still alice: her key replays her run.
    replay = alice_next.post_run(alice_body, key=key)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == alice_run["id"]
    # Bob reusing the key with alice's body is told about his own run only.
    conflict = bob.post_run(alice_body, key=key)
    assert conflict.status_code == 409, conflict.text
    assert bob_run["id"] in conflict.text and alice_run["id"] not in conflict.text
    # The stack's workers and poller carry the run through, each event naming its actor.
    done = alice.await_status(alice_run["id"], ("COMPLETED", "FAILED"), timeout=120)
    assert done["status"] == "COMPLETED", done
    assert done["submitted_by"] == "alice"
    actors = [(e["source"], e["actor"]) for e in done["history"]]
    assert actors[0] == ("gateway", "alice")
    assert all(actor == source for source, actor in actors[1:]), actors
    assert {"persist", "poller"} <= {source for source, _ in actors[1:]}, actors


def test_a_bare_token_submits_as_default(named_gateway):
    response = Api(named_gateway, BARE).post_run(run_body())
    assert response.status_code == 202, response.text
    assert response.json()["submitted_by"] == "default"
    assert response.json()["history"][0]["actor"] == "default"


@pytest.mark.parametrize(
    "tokens",
    [f"Alice:{ALICE}", f"alice:{ALICE},bob", f"alice:{ALICE}:x", f"alice:{ALICE},bob:{ALICE}"],
)
def test_a_malformed_token_list_stops_the_gateway_naming_the_variable(stack_env, tokens):
    gunicorn = Path(sys.executable).with_name("gunicorn")
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": stack_env["DATABASE_URL"],
        "CONDUCTOR_SERVER_URL": stack_env["CONDUCTOR_SERVER_URL"],
        "GATEWAY_API_TOKENS": tokens,
        "GATEWAY_BIND": "127.0.0.1:0",
    }
    result = subprocess.run(
        [str(gunicorn), "-c", "gateway/gunicorn.conf.py", "gateway.wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "GATEWAY_API_TOKENS" in output
    assert ALICE not in output
