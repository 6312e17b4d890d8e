"""The worker service's own HTTP endpoints: /healthz, /readyz, /metrics."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from batchcore.conductor_queue import QueueHealth, QueueWatch

# --- conductor-oss/conductor#326: Conductor's dead unack processor (batchcore.conductor_queue).
QUEUE_STUCK_MESSAGES = Gauge(
    "conductor_queue_stuck_messages",
    "Popped, unacknowledged messages in Conductor's queue past the threshold "
    "(> 0: its unack processor has died, conductor-oss/conductor#326; restart Conductor)",
    multiprocess_mode="mostrecent",
)
QUEUE_STUCK_OLDEST = Gauge(
    "conductor_queue_stuck_oldest_seconds",
    "Age past its delivery time of the oldest such message (0 when none)",
    multiprocess_mode="mostrecent",
)
QUEUE_CHECK_OK = Gauge(
    "conductor_queue_check_ok",
    "1 when the last check of Conductor's queue could read its database, else 0",
    multiprocess_mode="mostrecent",
)


def _export_queue_health(health: QueueHealth) -> None:
    QUEUE_CHECK_OK.set(0 if health.error else 1)
    if not health.error:
        QUEUE_STUCK_MESSAGES.set(health.stuck_messages)
        QUEUE_STUCK_OLDEST.set(health.oldest_seconds)


def watch_conductor_queue(database_url: str, stuck_after_seconds: int) -> QueueWatch | None:
    """Check Conductor's queue every 30 s and export it; None when no database URL is set."""
    if not database_url:
        return None
    watch = QueueWatch(database_url, stuck_after_seconds, on_check=_export_queue_health)
    watch.start()
    return watch


# --- the HTTP endpoints.


class Reports(Protocol):
    def report(self) -> dict: ...


def liveness(
    workers_healthy: bool, role: str, workers: object, keepers: Mapping[str, Reports]
) -> dict:
    """/healthz: the task worker processes and each loop keeper's report under its key (the
    poller service's `poller_loop` and `notifier_loop`); unhealthy when any one is."""
    result = {"ok": workers_healthy, "role": role, "workers": workers}
    for key, keeper in keepers.items():
        result[key] = keeper.report()
        result["ok"] = result["ok"] and result[key]["ok"]
    return result


def make_app(alive: Callable[[], dict], ready: Callable[[], dict], metrics_dir: str):
    """A tiny WSGI app; `alive` and `ready` return {"ok": bool, ...details}."""

    def app(environ, start_response):
        path = Request(environ).path
        if path == "/metrics":
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=metrics_dir)
            resp = Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/readyz"):
            result = (alive if path == "/healthz" else ready)()
            resp = Response(
                json.dumps(result, default=str),
                status=200 if result["ok"] else 503,
                content_type="application/json",
            )
        else:
            resp = Response('{"error": "not found"}', status=404, content_type="application/json")
        return resp(environ, start_response)

    return app


def serve(bind: str, app) -> threading.Thread:
    """Serve `app` on host:port from a daemon thread."""
    host, _, port = bind.rpartition(":")
    server = make_server(host, int(port), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="health-http", daemon=True)
    thread.start()
    return thread
