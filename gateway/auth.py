"""Bearer-token authentication of every route under /api/."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from flask import Flask, g, request

from batchcore.setting_checks import DEFAULT_TOKEN_NAME

from .errors import error_response

PROTECTED_PREFIX = "/api/"


def token_name(given: str, tokens: Iterable[tuple[bytes, str]]) -> str | None:
    """The name of the token `given` equals, else None; every token is compared, so the time
    taken does not tell which one (or whether one) matched."""
    candidate = given.encode("latin-1", errors="replace")
    found = None
    for token, name in tokens:
        if hmac.compare_digest(candidate, token):
            found = name
    return found


def current_token_name() -> str:
    """The name of the token the current request authenticated with (default outside /api/)."""
    return g.get("token_name") or DEFAULT_TOKEN_NAME


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
    """Require a valid bearer token on /api/ before any view (or body read) runs; the
    token's name goes to `g.token_name` (a bare str token is named default)."""
    named = tuple(
        (token.encode("utf-8"), getattr(token, "name", DEFAULT_TOKEN_NAME)) for token in tokens
    )

    @app.before_request
    def require_bearer_token():
        if not request.path.startswith(PROTECTED_PREFIX):
            return None
        given = bearer_token(request.headers.get("Authorization"))
        name = token_name(given, named) if given is not None else None
        if name is not None:
            g.token_name = name
            return None
        response, status = error_response(
            401,
            "unauthorized",
            "This route needs an Authorization: Bearer <token> header with a valid token",
        )
        response.headers["WWW-Authenticate"] = "Bearer"
        return response, status
