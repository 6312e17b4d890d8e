"""One wording for failed HTTP calls, shared by the Workbench and Conductor clients."""

from __future__ import annotations

import re
import socket
import ssl
from http.client import RemoteDisconnected
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NameResolutionError, ProtocolError

__all__ = [
    "CONNECT_TIMEOUT",
    "FAILED",
    "READ_TIMEOUT",
    "UNDECODABLE",
    "UNREACHABLE",
    "URL_IN_TEXT",
    "connection_reason",
    "excerpt",
    "safe_url",
    "scrub_urls",
    "transport_failure",
]

# Classes of transport failure, from transport_failure().
CONNECT_TIMEOUT = "connect_timeout"  # no connection within the connect timeout: nothing was sent
READ_TIMEOUT = "read_timeout"  # sent, no answer in time: the server may have acted on it
UNREACHABLE = "unreachable"  # the connection failed or broke off
UNDECODABLE = "undecodable"  # an answer came whose encoding could not be undone
FAILED = "failed"  # anything else requests raises

DNS_FAILURE = "its host name could not be resolved (DNS)"
# Low-level exceptions, most telling first, and how each is described.
_CAUSES: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    ((NameResolutionError, socket.gaierror), DNS_FAILURE),
    ((ConnectionRefusedError,), "connection refused"),
    ((requests.exceptions.ProxyError,), "the proxy could not be reached"),
    ((ssl.SSLError, requests.exceptions.SSLError), "the TLS handshake failed"),
    ((ConnectionResetError,), "connection reset"),
    ((ConnectionAbortedError,), "connection aborted"),
    ((RemoteDisconnected, ProtocolError), "the connection closed without an answer"),
)
# Words in a bare exception's text (one raised without the low-level cause attached).
_TEXT_CAUSES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("refused",), "connection refused"),
    (("name or service not known", "nodename nor servname"), DNS_FAILURE),
    (("reset",), "connection reset"),
)


def transport_failure(exc: requests.exceptions.RequestException) -> tuple[str, str]:
    """(class of failure, phrase saying why) for an exception requests raised."""
    # ConnectTimeout is also a ConnectionError, so timeouts are checked first.
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return CONNECT_TIMEOUT, "no connection could be opened"
    if isinstance(exc, requests.exceptions.Timeout):
        return READ_TIMEOUT, "no answer in time"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return UNREACHABLE, connection_reason(exc)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return UNREACHABLE, "the connection broke off in the middle of its answer"
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return UNDECODABLE, f"could not be decoded ({type(exc).__name__})"
    return FAILED, f"request failed ({type(exc).__name__})"


def connection_reason(exc: BaseException) -> str:
    """A short phrase saying why a connection failed, from the wrapped low-level errors."""
    chain = _exception_chain(exc)
    for kinds, phrase in _CAUSES:
        if any(isinstance(cause, kinds) for cause in chain):
            return phrase
    for cause in chain:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror[0].lower() + cause.strerror[1:]
    text = str(exc).lower()
    for words, phrase in _TEXT_CAUSES:
        if any(word in text for word in words):
            return phrase
    return f"connection failed ({type(exc).__name__})"


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it wraps (causes, contexts, urllib3 reasons, args)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 20:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        for nested in (
            getattr(current, "reason", None),
            current.__cause__,
            current.__context__,
            *current.args,
        ):
            if isinstance(nested, BaseException):
                todo.append(nested)
    return seen


def excerpt(text: str, limit: int = 200) -> str:
    """One line of at most ``limit`` characters, control characters removed."""
    cleaned = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def safe_url(url: str) -> str:
    """``url`` without user-info, query or fragment (none of which belongs in a message)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else parts.path


# A URL inside free text (an error page, a message): scheme, then up to a space or a quote.
URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{1,15}://[^\s\"'<>]+")


def scrub_urls(text: str) -> str:
    """``text`` with each URL in it cut to :func:`safe_url` (no user-info, query or fragment)."""

    def cut(match: re.Match[str]) -> str:
        try:
            return safe_url(match.group(0))
        except ValueError:  # e.g. an unclosed IPv6 bracket: nothing of it is kept
            return "[url]"

    return URL_IN_TEXT.sub(cut, text)
