"""The worker service's own HTTP endpoints: /healthz, /readyz, /metrics."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


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
