"""One webhook POST to a checked address: resolved once, every address judged, no redirects."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3

from batchcore.backoff import parse_retry_after

from .urls import is_refused_address, parse_address

EXCERPT_CHARS = 200
# Read no more of an answer than the excerpt needs: a receiver's body is not ours to keep.
_READ_BYTES = 1024


class RefusedTarget(Exception):
    """The target may not be reached: a refused address, or a name that resolves to one."""


@dataclass(frozen=True)
class Answer:
    """What one POST met: the status code (None when no answer came) and what to record."""

    status_code: int | None
    duration_ms: int
    error: str | None = None
    excerpt: str | None = None
    retry_after: float | None = None
    refused: bool = False


def resolve_checked(host: str, port: int, allowed_hosts: frozenset[str]) -> str:
    """The address to connect to; RefusedTarget when any address of `host` is refused (unless
    the host is allowed). Connecting to this very address means no second resolution can
    answer differently from the one checked."""
    literal = parse_address(host)
    if literal is not None:
        if host not in allowed_hosts and is_refused_address(literal):
            raise RefusedTarget(f"{host} is a loopback, private, link-local or metadata address")
        return str(literal)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses = list(dict.fromkeys(info[4][0].split("%", 1)[0] for info in infos))
    if not addresses:
        raise OSError(f"{host} has no address")
    if host not in allowed_hosts:
        for address in addresses:
            if is_refused_address(parse_address(address)):
                raise RefusedTarget(
                    f"{host} resolves to {address}, a loopback, private, link-local or"
                    " metadata address"
                )
    return addresses[0]


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    allowed_hosts: frozenset[str],
) -> Answer:
    """POST `body` to `url` once; never raises for the receiver's sake, the Answer says."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        address = resolve_checked(host, port, allowed_hosts)
    except RefusedTarget as exc:
        return Answer(None, elapsed(), f"refused: {exc}", refused=True)
    except OSError as exc:
        return Answer(None, elapsed(), f"could not resolve {host}: {exc}")
    target = f"{parts.path or '/'}{'?' + parts.query if parts.query else ''}"
    pool_args = {
        "host": address,
        "port": port,
        # total bounds the whole attempt: a receiver trickling bytes cannot stretch it.
        "timeout": urllib3.Timeout(connect=timeout, read=timeout, total=2 * timeout),
        "retries": False,
        "maxsize": 1,
    }
    if parts.scheme == "https":
        # The certificate is checked against the URL's host, not the address connected to.
        pool = urllib3.HTTPSConnectionPool(
            **pool_args, server_hostname=host, assert_hostname=host, cert_reqs="CERT_REQUIRED"
        )
    else:
        pool = urllib3.HTTPConnectionPool(**pool_args)
    host_header = parts.netloc.rpartition("@")[2]
    try:
        response = pool.urlopen(
            "POST",
            target,
            body=body,
            headers={**headers, "host": host_header, "user-agent": "batch-pipeline-runs"},
            redirect=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            excerpt = response.read(_READ_BYTES).decode("utf-8", "replace")[:EXCERPT_CHARS]
        except (urllib3.exceptions.HTTPError, OSError):
            excerpt = None
        status = response.status
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        response.release_conn()
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        return Answer(None, elapsed(), _describe(exc))
    finally:
        pool.close()
    error = None if 200 <= status < 300 else f"HTTP {status}"
    if 300 <= status < 400:
        error = f"HTTP {status}: redirects are not followed"
    return Answer(status, elapsed(), error, excerpt or None, retry_after)


def _describe(exc: Exception) -> str:
    """A short, secret-free sentence for an attempt that got no answer."""
    # Before ConnectTimeoutError: urllib3 derives NewConnectionError from it.
    if isinstance(exc, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return "connect timeout"
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return "read timeout"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return "TLS error"
    return f"{type(exc).__name__}"[:200]
