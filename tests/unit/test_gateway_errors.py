"""Errors shown to clients: a sentence and a code; internal addresses and upstream answers
go to the log only."""

from __future__ import annotations

import logging

from batchcore.errors import ConductorUnavailable
from gateway import services
from tests.unit.test_gateway_http import AUTH, assert_error, make_app

INTERNAL = "http://10.20.30.40:8080/api"


def test_a_conductor_failure_shows_no_address_or_upstream_answer(monkeypatch, caplog):
    def conductor_down(*args, **kwargs):
        raise ConductorUnavailable(
            f"Conductor at {INTERNAL} refused to find workflows: HTTP 500 <html>stack</html>",
            details=[
                {
                    "conductor_url": INTERNAL,
                    "response": "<html>stack</html>",
                    "exception": "ConnectionError: [Errno 111]",
                    "run_id": "6f1c1f5e-7d64-4d5c-9d0b-1b2f6d8c9e01",
                }
            ],
        )

    monkeypatch.setattr(services, "list_pipelines", conductor_down)
    client = make_app().test_client()
    with caplog.at_level(logging.WARNING, logger="gateway"):
        response = client.get("/api/v1/pipelines", headers=AUTH)
    error = assert_error(response, 503, "conductor_unavailable")
    text = response.get_data(as_text=True)
    assert "10.20.30.40" not in text and "<html>" not in text and "Errno" not in text
    assert error["message"] == "Conductor cannot be reached just now; try again shortly"
    assert error["details"] == [{"run_id": "6f1c1f5e-7d64-4d5c-9d0b-1b2f6d8c9e01"}]
    assert response.headers["Retry-After"]
    # The whole story is in the log.
    assert any("10.20.30.40" in record.getMessage() for record in caplog.records)
