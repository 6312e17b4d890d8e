"""The Workbench client's cancel call: request shape, both answers, error classification."""

from __future__ import annotations

import json

import pytest
import requests

from batchcore.errors import WorkbenchError
from batchcore.runs import lifecycle
from batchcore.workbench import CancelResult, WorkbenchClient

BASE = "http://workbench.test:8090"
TOKEN = "wb-s3cr3t-token-0123456789abcdef"
JOB = "wb-1"
CANCEL = f"{BASE}/jobs/{JOB}/cancel"


@pytest.fixture
def client():
    c = WorkbenchClient(BASE, TOKEN)
    yield c
    c.close()


def raised(call) -> WorkbenchError:
    with pytest.raises(WorkbenchError) as info:
        call()
    err = info.value
    for text in (str(err), repr(err), json.dumps(err.details)):
        assert TOKEN not in text
    assert err.details[0]["method"] == "POST"
    return err


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize("status", ["QUEUED", "RUNNING"])
def test_202_is_a_cancel_accepted_for_a_job_still_going(client, requests_mock, status):
    requests_mock.post(CANCEL, status_code=202, json={"job_id": JOB, "status": status})
    result = client.cancel_job(JOB)
    assert result == CancelResult(
        job_id=JOB,
        workbench_status=status,
        run_status=lifecycle.run_status_for(status),
        already_ended=False,
    )
    assert not result.terminal
    assert result.event_details() == {
        "workbench_job_id": JOB,
        "workbench_status": status,
        "cancel": "accepted",
    }


def test_202_may_answer_cancelled_when_the_cancel_took_effect_at_once(client, requests_mock):
    requests_mock.post(CANCEL, status_code=202, json={"job_id": JOB, "status": "CANCELLED"})
    result = client.cancel_job(JOB)
    assert (result.already_ended, result.terminal) == (False, True)


@pytest.mark.parametrize("status", ["SUCCEEDED", "FAILED", "CANCELLED"])
def test_200_is_a_job_already_ended_with_its_final_status(client, requests_mock, status):
    body = {"job_id": JOB, "status": status, "finished_at": "2026-01-01T00:00:00+00:00"}
    requests_mock.post(CANCEL, status_code=200, json=body)
    result = client.cancel_job(JOB)
    assert (result.workbench_status, result.already_ended, result.terminal) == (status, True, True)
    assert result.run_status == lifecycle.run_status_for(status)
    assert result.event_details()["cancel"] == "already_ended"


def test_the_request_is_an_authenticated_post_without_a_body(client, requests_mock):
    requests_mock.post(CANCEL, status_code=202, json={"job_id": JOB, "status": "RUNNING"})
    client.cancel_job(JOB)
    sent = requests_mock.last_request
    assert (sent.method, sent.url) == ("POST", CANCEL)
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Accept"] == "application/json"
    assert "Idempotency-Key" not in sent.headers
    assert not sent.body


def test_the_job_id_is_quoted_in_the_path(client, requests_mock):
    job_id = "wb/../x?y"
    url = f"{BASE}/jobs/wb%2F..%2Fx%3Fy/cancel"
    requests_mock.post(url, status_code=202, json={"job_id": job_id, "status": "QUEUED"})
    assert client.cancel_job(job_id).job_id == job_id
    assert requests_mock.last_request.url == url


@pytest.mark.parametrize("job_id", ["", None, 7])
def test_a_job_id_is_needed(client, requests_mock, job_id):
    with pytest.raises(ValueError, match="job_id"):
        client.cancel_job(job_id)
    assert requests_mock.call_count == 0


def test_the_timeout_caps_the_call(client, requests_mock, monkeypatch):
    requests_mock.post(CANCEL, status_code=202, json={"job_id": JOB, "status": "RUNNING"})
    seen = []
    real = client._session.request

    def spy(*args, **kwargs):
        seen.append(kwargs["timeout"])
        return real(*args, **kwargs)

    monkeypatch.setattr(client._session, "request", spy)
    client.cancel_job(JOB, timeout=1.5)
    client.cancel_job(JOB)
    assert seen == [(1.5, 1.5), (3.05, 10.0)]


# --------------------------------------------------------------------------- broken answers


@pytest.mark.parametrize(
    ("code", "kwargs", "kind", "problem"),
    [
        (202, {"json": {"job_id": "wb-2", "status": "RUNNING"}}, "malformed", "instead of"),
        (202, {"json": {"status": "RUNNING"}}, "malformed", "job_id is missing"),
        (202, {"json": {"job_id": JOB}}, "malformed", "status is missing"),
        (202, {"json": {"job_id": JOB, "status": "CANCELLING"}}, "unknown_status", "CANCELLING"),
        (202, {"text": "<html>accepted</html>"}, "malformed", "not JSON"),
        (202, {"json": [JOB, "RUNNING"]}, "malformed", "not a JSON object"),
        (200, {"json": {"job_id": JOB, "status": "RUNNING"}}, "malformed", "not a final one"),
        (200, {"json": {"job_id": JOB, "status": "QUEUED"}}, "malformed", "not a final one"),
        (204, {"text": ""}, "malformed", "not JSON"),
    ],
)
def test_answers_that_break_the_contract_are_permanent(
    client, requests_mock, code, kwargs, kind, problem
):
    requests_mock.post(CANCEL, status_code=code, **kwargs)
    err = raised(lambda: client.cancel_job(JOB))
    assert (err.transient, err.kind, err.status_code) == (False, kind, code)
    assert problem in err.message and f"/jobs/{JOB}/cancel" in err.message


# --------------------------------------------------------------------------- failures


def test_404_is_not_found(client, requests_mock):
    requests_mock.post(CANCEL, status_code=404, json={"error": "no such job"})
    err = raised(lambda: client.cancel_job(JOB))
    assert (err.transient, err.kind, err.status_code) == (False, "not_found", 404)
    assert err.message == f"The Workbench API has no job {JOB} (HTTP 404)"
    assert err.details[0]["url"] == CANCEL


@pytest.mark.parametrize("code", [401, 403])
def test_a_refused_token_is_unauthorized(client, requests_mock, code):
    requests_mock.post(CANCEL, status_code=code, json={"error": f"token {TOKEN} is revoked"})
    err = raised(lambda: client.cancel_job(JOB))
    assert (err.transient, err.kind, err.status_code) == (False, "unauthorized", code)
    assert "WORKBENCH_API_TOKEN" in err.message and "[redacted] is revoked" in err.message


@pytest.mark.parametrize("code", [400, 409, 422])
def test_other_4xx_are_rejected_with_the_body_message(client, requests_mock, code):
    requests_mock.post(CANCEL, status_code=code, json={"error": {"message": "cannot cancel"}})
    err = raised(lambda: client.cancel_job(JOB))
    assert (err.transient, err.kind, err.status_code) == (False, "rejected", code)
    assert err.message.startswith(
        f"The Workbench API rejected the cancel request for job {JOB} (HTTP {code}): cannot cancel"
    )


def test_429_is_transient_with_retry_after(client, requests_mock):
    requests_mock.post(CANCEL, status_code=429, headers={"Retry-After": "12"})
    err = raised(lambda: client.cancel_job(JOB))
    assert (err.transient, err.kind, err.retry_after) == (True, "rate_limited", 12.0)


@pytest.mark.parametrize(("code", "header", "wait"), [(503, "7", 7.0), (500, None, None)])
def test_5xx_is_transient_keeping_retry_after(client, requests_mock, code, header, wait):
    headers = {"Retry-After": header} if header else {}
    requests_mock.post(CANCEL, status_code=code, headers=headers, text="down")
    err = raised(lambda: client.cancel_job(JOB))
    assert (err.transient, err.kind, err.status_code, err.retry_after) == (
        True,
        "server_error",
        code,
        wait,
    )


def test_an_absurd_retry_after_is_ignored(client, requests_mock):
    requests_mock.post(CANCEL, status_code=429, headers={"Retry-After": "1e12"})
    assert raised(lambda: client.cancel_job(JOB)).retry_after is None


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (requests.exceptions.ConnectTimeout, "timeout"),
        (requests.exceptions.ReadTimeout, "timeout"),
        (requests.exceptions.ConnectionError, "connection"),
    ],
)
def test_transport_failures_are_transient(client, requests_mock, exc, kind):
    requests_mock.post(CANCEL, exc=exc)
    err = raised(lambda: client.cancel_job(JOB))
    assert (err.transient, err.kind) == (True, kind)
    assert err.details[0]["path"] == f"/jobs/{JOB}/cancel"


def test_a_redirect_is_not_followed(client, requests_mock):
    requests_mock.post(CANCEL, status_code=307, headers={"Location": "http://evil.test/x"})
    err = raised(lambda: client.cancel_job(JOB))
    assert (err.transient, err.kind) == (False, "redirect")
    assert requests_mock.call_count == 1
