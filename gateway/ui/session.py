"""The run browser's session: sign-in with an API token, a signed cookie, CSRF, throttling.

The cookie is Flask's signed session (HttpOnly, SameSite=Lax, Secure whenever the request
came over HTTPS, which is how gunicorn reports a TLS listener or a trusted proxy's
X-Forwarded-Proto). It holds a keyed fingerprint of the token, never the token itself, so a
token removed from GATEWAY_API_TOKENS ends the sessions opened with it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from datetime import timedelta

from flask import Flask, request, session
from flask.sessions import SecureCookieSessionInterface
from prometheus_client import Counter

from batchcore.setting_checks import DEFAULT_TOKEN_NAME

from ..auth import token_matches

log = logging.getLogger(__name__)

SESSION_HOURS = 12
CSRF_FIELD = "csrf_token"
# A failed sign-in waits FAILED_DELAY, doubled per recent failure from the same address.
FAILED_DELAY = 0.5
MAX_FAILED_DELAY = 8.0
FAILURE_MEMORY_SECONDS = 900
MAX_REMEMBERED_ADDRESSES = 10_000

# Refused sign-ins being slowed at once in this process; beyond that they are answered 429.
MAX_SLOWED_AT_ONCE = 2
OK, REFUSED, THROTTLED = "ok", "refused", "throttled"

SIGN_INS = Counter(
    "gateway_ui_sign_ins",
    "Sign-ins to the run browser, by outcome (ok, refused, throttled)",
    ["outcome"],
)
_SLOWED = threading.BoundedSemaphore(MAX_SLOWED_AT_ONCE)


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure on requests that came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def configure(app: Flask, settings) -> None:
    """Key the session cookie and set its flags."""
    tokens = tuple(settings.gateway_api_tokens)
    material = settings.gateway_secret_key or "\n".join(sorted(tokens))
    app.secret_key = hmac.new(
        material.encode(), b"batch-pipeline-runs ui session v1", hashlib.sha256
    ).hexdigest()
    app.config.update(
        SESSION_COOKIE_NAME="runs_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/ui",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
    )
    app.session_interface = _SessionInterface()
    app.extensions["ui_tokens"] = tuple(token.encode() for token in tokens)
    # The client each token belongs to: what the session's actions are done as.
    app.extensions["ui_token_names"] = tuple(
        getattr(token, "name", DEFAULT_TOKEN_NAME) for token in tokens
    )
    app.extensions["ui_throttle"] = FailedSignIns()


def fingerprint(token: bytes, key: str) -> str:
    """A keyed digest that names a token in the cookie without revealing it."""
    return hmac.new(key.encode(), b"token:" + token, hashlib.sha256).hexdigest()[:32]


def sign_in(app: Flask, given: str) -> str:
    """Open a session when `given` is a configured token: "ok"; else count the failure and
    answer it slowly ("refused"), or at once when enough failures are being slowed already
    ("throttled"), so that wrong tokens sent in parallel cannot hold every request thread."""
    tokens = app.extensions["ui_tokens"]
    throttle: FailedSignIns = app.extensions["ui_throttle"]
    address = request.remote_addr or "unknown"
    if given and token_matches(given, tokens):
        throttle.forget(address)
        SIGN_INS.labels("ok").inc()
        session.clear()
        session.permanent = True
        session["token"] = fingerprint(given.encode("latin-1", "replace"), app.secret_key)
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
        session["since"] = int(time.time())
        return OK
    delay = throttle.failed(address)
    if not _SLOWED.acquire(blocking=False):
        SIGN_INS.labels(THROTTLED).inc()
        log.warning("run browser: a sign-in from %s was refused at once (too many)", address)
        return THROTTLED
    try:
        SIGN_INS.labels(REFUSED).inc()
        log.warning("run browser: a sign-in from %s was refused (waits %.1f s)", address, delay)
        time.sleep(delay)
    finally:
        _SLOWED.release()
    return REFUSED


def signed_in(app: Flask) -> bool:
    """True while the session names a token that is still configured."""
    mark = session.get("token")
    if not isinstance(mark, str):
        return False
    current = (fingerprint(token, app.secret_key) for token in app.extensions["ui_tokens"])
    return any(hmac.compare_digest(mark, known) for known in current)


def signed_in_name(app: Flask) -> str:
    """The name of the token the session was opened with (the actor of what it does)."""
    mark = session.get("token")
    names = app.extensions["ui_token_names"]
    for token, name in zip(app.extensions["ui_tokens"], names, strict=True):
        if isinstance(mark, str) and hmac.compare_digest(mark, fingerprint(token, app.secret_key)):
            return name
    return DEFAULT_TOKEN_NAME


def sign_out() -> None:
    """Forget the session (the cookie is emptied on the response)."""
    session.clear()


def forget_sign_in() -> None:
    """Drop a stale sign-in but keep the CSRF token, so an open sign-in form still works."""
    session.pop("token", None)
    session.pop("since", None)


def csrf_token() -> str:
    """This session's CSRF token, made on first use (the sign-in form needs one too)."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def csrf_ok() -> bool:
    """True when the submitted form carries this session's CSRF token."""
    expected = session.get(CSRF_FIELD)
    given = request.form.get(CSRF_FIELD, "")
    return isinstance(expected, str) and hmac.compare_digest(given.encode(), expected.encode())


class FailedSignIns:
    """Recent failed sign-ins per client address, for a delay that grows with each one."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[int, float]] = {}

    def failed(self, address: str) -> float:
        """Record a failure; return how long to wait before answering it."""
        now = self._clock()
        with self._lock:
            count, last = self._failures.pop(address, (0, now))
            if now - last > FAILURE_MEMORY_SECONDS:
                count = 0
            count += 1
            self._failures[address] = (count, now)  # re-inserted: the newest is last
            while len(self._failures) > MAX_REMEMBERED_ADDRESSES:
                del self._failures[next(iter(self._failures))]
        return min(FAILED_DELAY * 2 ** (count - 1), MAX_FAILED_DELAY)

    def forget(self, address: str) -> None:
        """A successful sign-in clears the address's record."""
        with self._lock:
            self._failures.pop(address, None)
