"""A real HTTP receiver on loopback for the notification tests: each path behaves as told."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Records every POST by path; `behave[path]` decides each answer from its number."""

    def __init__(self, port: int = 0):
        self.received: dict[str, list[dict]] = defaultdict(list)
        # path -> f(n) -> (status, headers, delay seconds); n counts from 1 per path
        self.behave: dict[str, object] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    calls = receiver.received[self.path]
                    calls.append({"headers": dict(self.headers), "body": body, "at": time.time()})
                    n = len(calls)
                rule = receiver.behave.get(self.path)
                status, headers, delay = rule(n) if rule else (204, {}, 0)
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the deliverer gave up waiting and closed the connection
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
