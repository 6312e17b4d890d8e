"""Issue 13's request side: deadline_seconds and a rerun's body are validated like every other
field, and a request's fingerprint tells apart exactly the requests that differ."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest

from batchcore import settings
from batchcore.errors import ValidationFailed
from batchcore.runs.model import REQUEST_FIELDS, NewRun
from batchcore.setting_checks import SettingsError
from gateway import metrics, openapi, services
from gateway.submission import AcceptedRun
from gateway.validation import parse_rerun_request, parse_run_request
from tests.unit.test_gateway_http import AUTH, VALID_BODY, make_app

SCHEMES = frozenset({"s3"})
RUN_ID = uuid.uuid4()


def problems_of(body) -> list[dict]:
    with pytest.raises(ValidationFailed) as caught:
        parse_run_request(body, SCHEMES)
    return caught.value.details


@pytest.mark.parametrize(
    ("value", "rule"),
    [(59, "range"), (604801, "range"), (0, "range"), (-60, "range"), (10**30, "range"),
     ("x", "type"), ("3600", "type"), (60.0, "type"), (True, "type"), ([60], "type")],
)  # fmt: skip
def test_a_bad_deadline_is_named_with_its_rule(value, rule):
    [detail] = problems_of({**VALID_BODY, "deadline_seconds": value})
    assert (detail["field"], detail["rule"]) == ("deadline_seconds", rule)
    assert detail["message"].startswith("deadline_seconds: ")
    assert "60 to 604800" in detail["message"]


@pytest.mark.parametrize("value", [60, 3600, 604800])
def test_a_deadline_in_range_is_the_runs(value):
    assert parse_run_request(
        {**VALID_BODY, "deadline_seconds": value}, SCHEMES
    ).deadline_seconds == (value)


def test_no_deadline_or_null_leaves_it_to_the_pipeline_or_the_setting():
    assert parse_run_request(VALID_BODY, SCHEMES).deadline_seconds is None
    assert parse_run_request(
        {**VALID_BODY, "deadline_seconds": None}, SCHEMES
    ).deadline_seconds is (None)


def test_the_run_deadline_setting_is_checked_at_start_up():
    assert settings.load({}).run_deadline_seconds == 86400
    assert settings.load({"RUN_DEADLINE_SECONDS": "60"}).run_deadline_seconds == 60
    for bad in ("59", "604801", "a day"):
        with pytest.raises(SettingsError, match="RUN_DEADLINE_SECONDS"):
            settings.load({"RUN_DEADLINE_SECONDS": bad})


# --------------------------------------------------------------------------- fingerprints


def old_fingerprint(*values) -> str:
    """The fingerprint as the first stage computed it: the request's values in order."""
    canonical = json.dumps(list(values), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


BASE = ("demo-batch", "BATCH", "s3://b/in/", "s3://b/out/", {"n": 1})


def test_requests_without_the_later_fields_keep_their_earlier_fingerprints():
    assert NewRun(*BASE).fingerprint() == old_fingerprint(*BASE)
    url = "https://hooks.example.com/runs"
    assert NewRun(*BASE, notify_url=url).fingerprint() == old_fingerprint(*BASE, url)
    # Who asks and the setting's default are not part of what is asked.
    other_asker = NewRun(*BASE, submitted_by="alice", default_deadline_seconds=60)
    assert other_asker.fingerprint() == old_fingerprint(*BASE)


def test_a_deadline_or_a_rerun_of_another_run_is_another_request():
    plain = NewRun(*BASE).fingerprint()
    prints = {
        plain,
        NewRun(*BASE, deadline_seconds=3600).fingerprint(),
        NewRun(*BASE, deadline_seconds=7200).fingerprint(),
        NewRun(*BASE, rerun_of=uuid.uuid4()).fingerprint(),
        NewRun(*BASE, rerun_of=uuid.uuid4()).fingerprint(),
        NewRun(*BASE, notify_url="https://h.example.com/", deadline_seconds=60).fingerprint(),
    }
    assert len(prints) == 6
    assert NewRun(*BASE, deadline_seconds=3600).fingerprint() == old_fingerprint(*BASE, 3600)
    assert (
        NewRun(*BASE, rerun_of=RUN_ID).fingerprint() == NewRun(*BASE, rerun_of=RUN_ID).fingerprint()
    )


def test_a_body_may_name_the_deadline_but_not_rerun_of():
    assert "deadline_seconds" in REQUEST_FIELDS and "rerun_of" not in REQUEST_FIELDS
    [detail] = problems_of({**VALID_BODY, "rerun_of": str(RUN_ID)})
    assert (detail["field"], detail["rule"]) == ("rerun_of", "unknown_field")


# ------------------------------------------------------------------------- a rerun's body


def test_a_rerun_body_replaces_the_parameters_or_keeps_them():
    assert parse_rerun_request(None) is None
    assert parse_rerun_request({}) is None
    assert parse_rerun_request({"parameters": {"n": 2}}) == {"n": 2}


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({"parameters": [1]}, "parameters", "type"),
        ({"parameters": {"x": float("nan")}}, "parameters", "not_finite"),
        ({"parameters": {}, "pipeline": "other"}, "pipeline", "unknown_field"),
        ({"deadline_seconds": 60}, "deadline_seconds", "unknown_field"),
        ([], "body", "type"),
    ],
)
def test_a_bad_rerun_body_is_named(body, field, rule):
    with pytest.raises(ValidationFailed) as caught:
        parse_rerun_request(body)
    assert [(d["field"], d["rule"]) for d in caught.value.details] == [(field, rule)]


def test_the_rerun_route_passes_the_caller_the_parameters_the_key_and_the_setting(monkeypatch):
    seen = []

    def rerun_run(db, conductor, run_id, parameters, key, **options):
        seen.append(
            (run_id, parameters, key, options["submitted_by"], options["default_deadline_seconds"])
        )
        run = {"id": uuid.uuid4(), "status": "PENDING", "rerun_of": run_id}
        return AcceptedRun(run=run, history=[], created=True)

    monkeypatch.setattr(services, "rerun_run", rerun_run)
    client = make_app(run_deadline_seconds=120).test_client()
    url = f"/api/v1/pipeline-runs/{RUN_ID}/rerun"
    bare = client.post(url, headers=AUTH)
    assert bare.status_code == 202 and bare.headers["Location"].endswith(bare.json["id"])
    keyed = client.post(
        url, json={"parameters": {"n": 2}}, headers={**AUTH, "Idempotency-Key": "k"}
    )
    assert keyed.status_code == 202
    assert seen == [
        (str(RUN_ID), None, None, "default", 120),
        (str(RUN_ID), {"n": 2}, "k", "default", 120),
    ]
    refused = client.post(
        url, json={"parameters": 1, "x": 1}, headers={**AUTH, "Idempotency-Key": ""}
    )
    assert refused.status_code == 422
    assert {d["field"] for d in refused.json["error"]["details"]} == {
        "parameters", "x", "Idempotency-Key"
    }  # fmt: skip
    assert len(seen) == 2


# ------------------------------------------------------------------------------ /metrics


def test_metrics_show_the_unconfirmed_runs_or_leave_the_gauge_out_when_unreadable():
    shown, _ = metrics.render(lambda: 3)
    assert f"\n{metrics.UNCONFIRMED_RUNS} 3.0\n" in shown.decode()

    def unreadable():
        raise OSError("the database is down")

    hidden, _ = metrics.render(unreadable)
    assert metrics.UNCONFIRMED_RUNS not in hidden.decode()
    assert b"gateway_http_requests" in hidden


def test_the_gauge_counts_from_three_poll_intervals(monkeypatch):
    asked = []
    monkeypatch.setattr(
        metrics.overview, "count_unconfirmed", lambda db, seconds: asked.append((db, seconds)) or 0
    )
    assert metrics.unconfirmed_runs("db", 5)() == 0
    assert asked == [("db", 15)]


def test_the_document_states_the_rules_the_gateway_applies():
    schemas = openapi.document()["components"]["schemas"]
    deadline = schemas["RunRequest"]["properties"]["deadline_seconds"]
    assert (deadline["type"], deadline["minimum"], deadline["maximum"]) == ("integer", 60, 604800)
    assert schemas["RerunRequest"]["additionalProperties"] is False
    assert list(schemas["RerunRequest"]["properties"]) == ["parameters"]
    assert "max_runtime_seconds" in schemas["Pipeline"]["required"]
    assert "reruns" in schemas["Run"]["required"]
    assert "reruns" not in schemas["RunSummary"]["properties"]
