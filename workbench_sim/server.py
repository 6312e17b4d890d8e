"""Threaded WSGI servers for the API and admin ports; the API socket can close and reopen."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.serving import (
    ThreadedWSGIServer,
    WSGIRequestHandler,
    get_sockaddr,
    select_address_family,
)

from .app import ADMIN_ENVIRON_KEY, get_state

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 128
# How often serve_forever checks for shutdown; it bounds how long closing the port takes.
POLL_INTERVAL = 0.05
SWEEP_INTERVAL = 0.25
REOPEN_RETRY_SECONDS = 0.5


class _RequestHandler(WSGIRequestHandler):
    """Logs one line per request through logging; never headers, so never the token."""

    protocol_version = "HTTP/1.1"
    server: _SimWSGIServer

    def run_wsgi(self) -> None:
        self._started = time.monotonic()
        super().run_wsgi()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        elapsed_ms = (time.monotonic() - getattr(self, "_started", time.monotonic())) * 1000
        line = f"{self.command} {self.path}".translate(self._control_char_table)
        # werkzeug reports no size here (bodies may be streamed), so only status and time.
        log.info(
            '%s %s "%s" %s %.1fms',
            self.server.listener_name,
            self.address_string(),
            line,
            code,
            elapsed_ms,
        )

    def log_error(self, format: str, *args: Any) -> None:
        log.warning("%s %s " + format, self.server.listener_name, self.address_string(), *args)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s " + format, self.server.listener_name, self.address_string(), *args)


class _HandlerThreads:
    """The live request threads, so that stop() can wait for answers still being written."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()

    def add(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads.add(thread)

    def discard(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads.discard(thread)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = [t for t in self._threads if t is not threading.current_thread()]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class _SimWSGIServer(ThreadedWSGIServer):
    """werkzeug's threaded server, naming its listener and tracking its request threads."""

    listener_name = "api"
    handler_threads: _HandlerThreads

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        current = threading.current_thread()
        self.handler_threads.add(current)
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.handler_threads.discard(current)


class _MarkAdmin:
    """Marks requests from the admin port so the app never applies faults to them."""

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ[ADMIN_ENVIRON_KEY] = True
        return self.app(environ, start_response)


class _Listener:
    """One listening port and the thread that serves it; can be closed and opened again."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        app: Callable[..., Iterable[bytes]],
        handler_threads: _HandlerThreads,
    ):
        self.name = name
        self.host = host
        self.port = port
        self._app = app
        self._handler_threads = handler_threads
        self._server: _SimWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def is_open(self) -> bool:
        return self._server is not None

    def open(self) -> None:
        """Bind (reusing the address, so the same port comes back at once) and start serving."""
        if self._server is not None:
            return
        sock = _bind(self.host, self.port)
        try:
            # werkzeug adopts a duplicate of the descriptor; ours is closed right after.
            server = _SimWSGIServer(
                self.host, self.port, self._app, handler=_RequestHandler, fd=sock.fileno()
            )
        finally:
            sock.close()
        server.listener_name = self.name
        server.handler_threads = self._handler_threads
        # Remember the real port, so a port-0 listener reopens where clients expect it.
        self.port = server.port
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name=f"workbench-sim-{self.name}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread

    def close(self) -> None:
        """Stop accepting: afterwards a connect() is refused. Requests in flight still finish."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        server.shutdown()
        # shutdown() returns before werkzeug's own server_close has run; close it here so the
        # port is surely refused when this returns.
        server.server_close()
        thread.join()


class SimServer:
    """The simulator's two ports: API (faults apply) and admin (never faulted)."""

    def __init__(
        self,
        app: Flask,
        *,
        host: str = "127.0.0.1",
        api_port: int = 0,
        admin_port: int = 0,
        sweep_interval: float = SWEEP_INTERVAL,
    ):
        self._state = get_state(app)
        self._handler_threads = _HandlerThreads()
        self._api = _Listener("api", host, api_port, app, self._handler_threads)
        self._admin = _Listener("admin", host, admin_port, _MarkAdmin(app), self._handler_threads)
        self._sweep_interval = sweep_interval
        self._lock = threading.Lock()
        self._reopen_timer: threading.Timer | None = None
        self._generation = 0
        self._stopping = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._state.faults.add_refuse_listener(self._on_refuse)

    @property
    def api_port(self) -> int:
        return self._api.port

    @property
    def admin_port(self) -> int:
        return self._admin.port

    @property
    def api_url(self) -> str:
        return f"http://{_url_host(self._api.host)}:{self._api.port}"

    @property
    def admin_url(self) -> str:
        return f"http://{_url_host(self._admin.host)}:{self._admin.port}"

    def start(self) -> None:
        """Open both ports and start the sweeper; raise OSError if a port cannot be bound."""
        with self._lock:
            self._api.open()
            try:
                self._admin.open()
            except BaseException:
                self._api.close()
                raise
        self._sweeper = threading.Thread(
            target=self._sweep, name="workbench-sim-sweeper", daemon=True
        )
        self._sweeper.start()
        log.info("API on %s, admin on %s", self.api_url, self.admin_url)

    def stop(self, timeout: float = 5.0) -> None:
        """Close both ports, stop the timers and wait (up to timeout) for requests in flight."""
        with self._lock:
            self._stopping.set()
            self._cancel_timer()
            self._api.close()
            self._admin.close()
        if self._sweeper is not None:
            self._sweeper.join(timeout)
            self._sweeper = None
        self._handler_threads.join(timeout)
        log.info("stopped")

    def __enter__(self) -> SimServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def pause_api(self, seconds: float) -> None:
        """Refuse connections on the API port now, and accept them again after `seconds`."""
        with self._lock:
            if self._stopping.is_set():
                return
            self._cancel_timer()
            self._api.close()
            self._schedule_reopen_locked(seconds)
        log.warning("API port %d refusing connections for %gs", self._api.port, seconds)

    def resume_api(self) -> None:
        """Accept connections on the API port again now (no-op if it is open)."""
        with self._lock:
            self._cancel_timer()
            reopened = self._open_api_locked()
        if reopened:
            log.warning("API port %d accepting connections again", self._api.port)

    def _on_refuse(self, seconds: float) -> None:
        if seconds > 0:
            self.pause_api(seconds)
            return
        try:
            self.resume_api()
        except OSError as exc:
            # The admin call that cleared the fault still succeeds; the port follows shortly.
            log.error("cannot reopen API port %d now: %s; retrying", self._api.port, exc)
            with self._lock:
                self._schedule_reopen_locked(REOPEN_RETRY_SECONDS)

    def _schedule_reopen_locked(self, seconds: float) -> None:
        timer = threading.Timer(seconds, self._reopen_when_due, args=(self._generation,))
        timer.daemon = True
        self._reopen_timer = timer
        timer.start()

    def _open_api_locked(self) -> bool:
        if self._stopping.is_set() or self._api.is_open:
            return False
        self._api.open()
        return True

    def _cancel_timer(self) -> None:
        # Called with self._lock held. The generation makes a timer that already fired, and
        # waits for the lock, notice that it has been superseded by a newer pause or resume.
        self._generation += 1
        if self._reopen_timer is not None:
            self._reopen_timer.cancel()
            self._reopen_timer = None

    def _reopen_when_due(self, generation: int) -> None:
        while not self._stopping.is_set():
            with self._lock:
                if generation != self._generation:
                    return
                try:
                    reopened = self._open_api_locked()
                except OSError as exc:
                    # Another process may have taken the port meanwhile; keep trying.
                    log.error("cannot reopen API port %d: %s; retrying", self._api.port, exc)
                else:
                    self._reopen_timer = None
                    if reopened:
                        log.warning("API port %d accepting connections again", self._api.port)
                    return
            self._stopping.wait(REOPEN_RETRY_SECONDS)

    def _sweep(self) -> None:
        # Jobs nobody polls still get their output written close to their finish time.
        while not self._stopping.wait(self._sweep_interval):
            try:
                self._state.store.finalize_due()
            except Exception:
                log.exception("finishing due jobs failed")


def _bind(host: str, port: int) -> socket.socket:
    family = select_address_family(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Lets the API port be bound again right after it was closed for a refuse fault.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(get_sockaddr(host, port, family))
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
