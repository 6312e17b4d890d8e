"""A loopback HTTP/1.1 server answering from a script, for tests of the service's HTTP clients."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    """What the server does with one request."""

    status: int = 200
    body: str = "wf-1"
    content_type: str = "text/plain"
    delay: float = 0.0
    connection_close: bool = False  # says "Connection: close" and closes
    close_after: bool = False  # closes the kept-alive connection without saying so (idle close)
    together: threading.Barrier | None = None  # answers only once this many requests are in


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict
    body: bytes
    client_port: int


class ScriptedServer:
    """Answers requests in order from `answers` (the last one repeats); records each in `seen`.
    With `tls` (an ssl.SSLContext of the server's certificate) it speaks HTTPS."""

    def __init__(self, tls=None) -> None:
        self.answers: deque[Answer] = deque([Answer()])
        self.seen: list[Seen] = []
        self.closed = threading.Event()  # set once a connection has been closed
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                seen = Seen("POST", self.path, dict(self.headers), body, self.client_address[1])
                server.seen.append(seen)
                answer = server.answers.popleft() if len(server.answers) > 1 else server.answers[0]
                time.sleep(answer.delay)
                if answer.together is not None:
                    answer.together.wait(timeout=10)
                data = answer.body.encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(data)))
                if answer.connection_close:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                if answer.close_after:
                    self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def shutdown_request(self, request) -> None:
                super().shutdown_request(request)
                server.closed.set()  # the connection's socket is closed by now

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        scheme = "http"
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}/api"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
