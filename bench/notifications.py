"""How long after a status change its webhook reaches a receiver, through the running stack."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import requests
from standardwebhooks.webhooks import Webhook

from tests.webhook_receiver import Receiver

from .common import log
from .latency import poll_interval
from .loadgen import percentile


def delays(calls: list[dict], verifier: Webhook) -> list[float]:
    """Seconds from each change (the body's timestamp) to its first arrival."""
    first: dict[str, float] = {}
    for call in calls:
        payload = verifier.verify(call["body"], call["headers"])
        changed = datetime.fromisoformat(payload["timestamp"]).timestamp()
        first.setdefault(call["headers"]["webhook-id"], call["at"] - changed)
    return list(first.values())


def notifier_interval(conductor: str) -> float | None:
    """Seconds between the running batch_notifier loop's sweeps (its WAIT), from its input."""
    try:
        loops = requests.get(
            f"{conductor}/workflow/batch_notifier/correlated/batch_notifier",
            params={"includeClosed": "false", "includeTasks": "false"},
            timeout=10,
        ).json()
        return float(loops[0]["input"]["poll_interval_seconds"])
    except (requests.RequestException, ValueError, KeyError, IndexError, TypeError):
        return None


def run(env: dict[str, str], samples: int, gap: float) -> dict:
    """`samples` runs with a notify_url on a loopback receiver, one every `gap` seconds; the
    p95 and median delay of every change's notification, against the poll interval (a
    change the poller detects is at most that old when it is written)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {env['GATEWAY_API_TOKEN']}"
    receiver = Receiver().start()
    try:
        run_ids = []
        for _ in range(samples):
            tag = uuid.uuid4().hex
            resp = session.post(
                f"{env['GATEWAY_URL']}/api/v1/pipeline-runs",
                json={
                    "pipeline": "demo-batch",
                    "mode": "BATCH",
                    "input_path_prefix": f"s3://bench-in/{tag}",
                    "output_path_prefix": f"s3://bench-out/{tag}",
                    "parameters": {"simulate": {"duration_seconds": 1}},
                    "notify_url": receiver.url("/bench"),
                },
                timeout=40,
            )
            resp.raise_for_status()
            run_ids.append(resp.json()["id"])
            time.sleep(gap)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not _all_delivered(session, env, run_ids):
            time.sleep(1)
        measured = delays(list(receiver.received["/bench"]), Webhook(env["WEBHOOK_SECRET"]))
    finally:
        receiver.stop()
    log(f"{len(measured)} notifications of {samples} runs measured")
    conductor = env["CONDUCTOR_SERVER_URL"]
    return {
        "notification_delay_p95_s": percentile(measured, 95),
        "notification_delay_median_s": percentile(measured, 50),
        "notification_delay_max_s": max(measured, default=float("nan")),
        "notification_samples": len(measured),
        "notification_runs": samples,
        "notification_poll_interval_seconds": poll_interval(conductor),
        "notification_loop_interval_seconds": notifier_interval(conductor),
    }


def _all_delivered(session: requests.Session, env: dict[str, str], run_ids: list[str]) -> bool:
    for run_id in run_ids:
        run = session.get(f"{env['GATEWAY_URL']}/api/v1/pipeline-runs/{run_id}", timeout=10)
        if run.json()["status"] not in ("COMPLETED", "FAILED"):
            return False
        found = session.get(
            f"{env['GATEWAY_URL']}/api/v1/pipeline-runs/{run_id}/notifications", timeout=10
        ).json()["items"]
        if any(n["state"] == "pending" for n in found):
            return False
    return True
