"""A POST over kept-alive HTTP/1.1 connections (a small pool), for the gateway's workflow start.

requests spends about 0.4 ms of CPU per call preparing, hooking and adapting a request
around urllib3 (0.6 ms against 0.2 ms for http.client, measured against Conductor here),
a seventh of an accepted POST; the start is the one call on that path, so it goes straight
through http.client. Failures carry the same classes as `http_errors.transport_failure`.
"""

from __future__ import annotations

import http.client
import os
import select
import ssl
import threading
import weakref
from urllib.parse import urlsplit

from requests.utils import DEFAULT_CA_BUNDLE_PATH

from .http_errors import CONNECT_TIMEOUT, FAILED, READ_TIMEOUT, UNREACHABLE, connection_reason


class TransportError(Exception):
    """No answer: `failure` is a class from http_errors, `reason` a phrase saying why."""

    def __init__(self, failure: str, reason: str, cause: BaseException):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.failure = failure
        self.reason = reason
        self.cause = cause


class KeptAliveConnections:
    """Idle connections to one server, one taken per call; `post_json` answers (status, text)."""

    def __init__(self, base_url: str, timeout: float, max_idle: int = 32):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self.path_prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self._max_idle = max_idle
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._generation = 0  # close() moves it on: connections out at the time are dropped
        self._tls: ssl.SSLContext | None = None
        # A client dropped without close() closes its idle sockets rather than leak them.
        weakref.finalize(self, _close_all, self._idle)

    def post_json(self, path: str, payload: bytes) -> tuple[int, str]:
        """POST JSON `payload` to `path_prefix + path`; TransportError if unanswered."""
        conn, generation = self._take()
        try:
            return self._post(conn, path, payload)
        finally:
            self._give_back(conn, generation)

    def _post(self, conn: http.client.HTTPConnection, path: str, payload: bytes) -> tuple[int, str]:
        if conn.sock is None:
            try:
                conn.connect()
            except TimeoutError as exc:
                conn.close()
                raise TransportError(CONNECT_TIMEOUT, "no connection", exc) from exc
            except OSError as exc:
                conn.close()
                raise TransportError(UNREACHABLE, connection_reason(exc), exc) from exc
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/plain"}
        try:
            conn.request("POST", self.path_prefix + path, body=payload, headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
        except TimeoutError as exc:
            conn.close()
            raise TransportError(READ_TIMEOUT, "no answer in time", exc) from exc
        except (OSError, http.client.IncompleteRead) as exc:
            conn.close()
            raise TransportError(UNREACHABLE, connection_reason(exc), exc) from exc
        except http.client.HTTPException as exc:
            conn.close()
            raise TransportError(
                FAILED, f"request failed ({type(exc).__name__})", True, exc
            ) from exc
        if resp.will_close:
            conn.close()
        return resp.status, text

    def close(self) -> None:
        """Close the idle connections; those in use are closed when their call ends."""
        with self._lock:
            idle = self._idle[:]
            self._idle.clear()
            self._generation += 1
        _close_all(idle)

    def _take(self) -> tuple[http.client.HTTPConnection, int]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
            generation = self._generation
        if conn is None:
            conn = self._new_connection()
        elif conn.sock is not None and _dropped(conn.sock):
            conn.close()  # the server closed it while idle; the request reconnects
        return conn, generation

    def _give_back(self, conn: http.client.HTTPConnection, generation: int) -> None:
        if conn.sock is not None:
            with self._lock:
                if generation == self._generation and len(self._idle) < self._max_idle:
                    self._idle.append(conn)
                    return
        conn.close()

    def _new_connection(self) -> http.client.HTTPConnection:
        if not self._https:
            return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        if self._tls is None:
            self._tls = _tls_context()
        return http.client.HTTPSConnection(
            self._host, self._port, timeout=self.timeout, context=self._tls
        )


def _close_all(conns: list[http.client.HTTPConnection]) -> None:
    for conn in conns:
        conn.close()


def _dropped(sock) -> bool:
    """True when an idle kept-alive socket is readable: the peer closed it (or sent junk)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def ca_bundle() -> str | None:
    """The CA bundle the environment names for requests (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE)."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")


def _tls_context() -> ssl.SSLContext:
    """A verifying context trusting what requests would: the named CA bundle, or certifi's."""
    bundle = ca_bundle()
    try:
        if bundle and os.path.isdir(bundle):
            return ssl.create_default_context(capath=bundle)
        return ssl.create_default_context(cafile=bundle or DEFAULT_CA_BUNDLE_PATH)
    except (OSError, ssl.SSLError) as exc:
        raise TransportError(FAILED, "its CA bundle could not be read", exc) from exc
