"""Named tokens (issue 13): GATEWAY_API_TOKENS parsing, the name auth yields, its rendering."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from flask import g

from batchcore import settings
from batchcore.runs.model import NewRun
from gateway import auth, create_app, services
from gateway.rendering import render_run
from gateway.submission import AcceptedRun
from tests.gateway_helpers import FakeConductor

ALICE = "alice-token-0123456789abcdef"
ALICE_NEXT = "alice-rotated-0123456789abcdef"
BARE = "a-bare-token-0123456789abcdef"
BODY = {
    "pipeline": "demo-batch",
    "mode": "BATCH",
    "input_path_prefix": "s3://bucket/in/",
    "output_path_prefix": "s3://bucket/out/",
}


def load_tokens(value: str):
    return settings.load({"GATEWAY_API_TOKENS": value}).gateway_api_tokens


def test_entries_are_name_token_and_a_bare_token_is_named_default():
    tokens = load_tokens(f"alice:{ALICE}, {BARE} ,etl-2.b_x:{ALICE_NEXT}")
    assert [(str(t), t.name) for t in tokens] == [
        (ALICE, "alice"),
        (BARE, "default"),
        (ALICE_NEXT, "etl-2.b_x"),
    ]
    # The secrets are what the session and cursor keys were derived from before names.
    assert tokens == (ALICE, BARE, ALICE_NEXT)


def test_two_tokens_may_share_a_name_for_rotation():
    tokens = load_tokens(f"alice:{ALICE},alice:{ALICE_NEXT}")
    assert [t.name for t in tokens] == ["alice", "alice"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"Alice:{ALICE}", "entry #1 must be name:token"),
        (f"{BARE},:{ALICE}", "entry #2 must be name:token"),
        (f"-x:{ALICE}", "entry #1 must be name:token"),
        (f"{'a' * 65}:{ALICE}", "entry #1 must be name:token"),
        (f"al ice:{ALICE}", "entry #1 must be name:token"),
        ("alice:", "token #1 is shorter than 16"),
        ("alice:short", "token #1 is shorter than 16"),
        (f"alice:{ALICE}:more", "token #1 holds a ':'"),
        (f"alice:{ALICE},bob:{ALICE}", "token #2 repeats an earlier token"),
        (f"{BARE},{BARE}", "token #2 repeats an earlier token"),
    ],
)
def test_a_malformed_list_refuses_to_start_naming_the_variable_not_the_secret(value, expected):
    with pytest.raises(settings.SettingsError) as err:
        load_tokens(value)
    message = str(err.value)
    assert message.startswith("GATEWAY_API_TOKENS")
    assert expected in message
    assert ALICE not in message and BARE not in message


def test_a_name_of_64_characters_is_accepted():
    (token,) = load_tokens(f"{'a' * 64}:{ALICE}")
    assert token.name == "a" * 64


def test_token_name_compares_every_token_and_names_the_match(monkeypatch):
    compared = []
    real = auth.hmac.compare_digest

    def counting(a, b):
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    named = [(ALICE.encode(), "alice"), (BARE.encode(), "default"), (b"x" * 20, "other")]
    assert auth.token_name(ALICE, named) == "alice"
    assert len(compared) == 3
    assert auth.token_name(BARE, named) == "default"
    assert auth.token_name("not-a-token-0123456789", named) is None


def make_client(value: str):
    cfg = settings.load(
        {"GATEWAY_API_TOKENS": value, "DATABASE_URL": "postgresql://unused@127.0.0.1:9/x"}
    )
    app = create_app({"SETTINGS": cfg, "DATABASE": object(), "CONDUCTOR": FakeConductor()})
    return app.test_client()


def test_a_submission_is_made_by_the_name_of_the_token_it_carries(monkeypatch):
    seen = []

    def submit_run(db, conductor, request, key, wait, *, submitted_by, **options):
        seen.append((key, submitted_by))
        run = {"id": uuid.uuid4(), "status": "PENDING", "submitted_by": submitted_by}
        return AcceptedRun(run=run, history=[], created=True)

    monkeypatch.setattr(services, "submit_run", submit_run)
    client = make_client(f"alice:{ALICE},alice:{ALICE_NEXT},{BARE}")
    for token in (ALICE, ALICE_NEXT, BARE):
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "k-1"}
        answer = client.post("/api/v1/pipeline-runs", json=BODY, headers=headers)
        assert answer.status_code == 202, answer.get_json()
    assert seen == [("k-1", "alice"), ("k-1", "alice"), ("k-1", "default")]
    refused = client.post("/api/v1/pipeline-runs", json=BODY, headers={"Authorization": "Bearer x"})
    assert refused.status_code == 401


def test_the_request_name_is_default_outside_an_authenticated_request():
    app = make_client(BARE).application
    with app.test_request_context("/healthz"):
        assert auth.current_token_name() == "default"
        g.token_name = "alice"
        assert auth.current_token_name() == "alice"


def test_a_new_run_is_submitted_by_default_and_the_name_is_not_part_of_its_fingerprint():
    plain = NewRun("demo-batch", "BATCH", "s3://b/in/", "s3://b/out/")
    named = NewRun("demo-batch", "BATCH", "s3://b/in/", "s3://b/out/", submitted_by="alice")
    assert plain.submitted_by == "default"
    assert "submitted_by" not in plain.request()
    assert plain.fingerprint() == named.fingerprint()


def test_the_run_json_names_its_submitter_and_each_event_its_actor():
    at = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    event = {"status": "PENDING", "previous_status": None, "at": at, "source": "gateway"}
    rendered = render_run(
        {"id": uuid.uuid4(), "status": "PENDING", "submitted_by": "alice"},
        [{**event, "actor": "alice", "message": "Run accepted", "details": {}}],
    )
    assert rendered["submitted_by"] == "alice"
    assert rendered["history"][0]["actor"] == "alice"
    assert list(rendered["history"][0])[-1] == "actor"
    # A snapshot from before names (a queued notification's) was a bare token's run.
    assert render_run({"id": uuid.uuid4(), "status": "PENDING"})["submitted_by"] == "default"
