"""Bearer-token authentication of every route under /api/."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from flask import Flask, request

from .errors import error_response

PROTECTED_PREFIX = "/api/"


def token_matches(given: str, tokens: Iterable[bytes]) -> bool:
    """True when `given` equals one of `tokens`, in time independent of which one matches."""
    # WSGI hands headers over as latin-1 text, so this round-trips any header bytes.
    candidate = given.encode("latin-1", errors="replace")
    matched = False
    for token in tokens:
        # No early exit: every configured token is compared on every request.
        matched |= hmac.compare_digest(candidate, token)
    return matched


def bearer_token(header: str | None) -> str | None:
    """The credentials of an `Authorization: Bearer <token>` header, else None.

    The scheme name is case-insensitive (RFC 7235); the token is compared exactly.
    """
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials or " " in credentials.strip(" "):
        return None
    return credentials.strip(" ")


def register(app: Flask, tokens: Iterable[str]) -> None:
    """Require a valid bearer token on /api/ before any view (or body read) runs."""
    encoded = tuple(token.encode("utf-8") for token in tokens)

    @app.before_request
    def require_bearer_token():
        if not request.path.startswith(PROTECTED_PREFIX):
            return None
        given = bearer_token(request.headers.get("Authorization"))
        if given is not None and token_matches(given, encoded):
            return None
        response, status = error_response(
            401,
            "unauthorized",
            "This route needs an Authorization: Bearer <token> header with a valid token",
        )
        response.headers["WWW-Authenticate"] = "Bearer"
        return response, status
