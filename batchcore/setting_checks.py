"""The checks each setting's value passes, and the named API tokens: one function a rule."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from urllib.parse import urlsplit

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """A variable is missing or has a bad value; the message names it and the rule."""


def http_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name} must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise SettingsError(f"{name} must not carry credentials in the URL")
    return value.rstrip("/")


def conductor_url(name: str, value: str) -> str:
    url = http_url(name, value)
    if not url.endswith("/api"):
        raise SettingsError(f"{name} must end in /api (as the Conductor SDK expects), got {url!r}")
    return url


def database_url(name: str, value: str) -> str:
    if not value.startswith(("postgresql://", "postgres://")) and "=" not in value:
        raise SettingsError(f"{name} must be a postgresql:// URL or a libpq key=value string")
    return value


# A token's name (GATEWAY_API_TOKENS entries are name:token): a run's submitted_by.
TOKEN_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
DEFAULT_TOKEN_NAME = "default"


class NamedToken(str):
    """A bearer token (the string itself) carrying the name of the client it belongs to."""

    name: str

    def __new__(cls, token: str, name: str = DEFAULT_TOKEN_NAME) -> NamedToken:
        made = super().__new__(cls, token)
        made.name = name
        return made


def tokens(name: str, value: str) -> tuple[NamedToken, ...]:
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if not entries:
        raise SettingsError(f"{name} must list at least one token (comma-separated)")
    tokens: list[NamedToken] = []
    for i, entry in enumerate(entries, 1):
        # Messages name the entry by position only: a token is a secret.
        label, colon, secret = entry.partition(":")
        if not colon:
            label, secret = DEFAULT_TOKEN_NAME, entry
        if not TOKEN_NAME.fullmatch(label):
            raise SettingsError(
                f"{name}: entry #{i} must be name:token or a bare token, the name matching "
                f"{TOKEN_NAME.pattern}"
            )
        if ":" in secret:
            raise SettingsError(f"{name}: token #{i} holds a ':' (an entry is name:token)")
        if len(secret) < 16:
            raise SettingsError(f"{name}: token #{i} is shorter than 16 characters")
        if secret in tokens:
            raise SettingsError(f"{name}: token #{i} repeats an earlier token")
        tokens.append(NamedToken(secret, label))
    return tuple(tokens)


def token(name: str, value: str) -> str:
    if not value.strip():
        raise SettingsError(f"{name} must not be empty")
    return value.strip()


def number(kind: type, low: float, high: float) -> Callable[[str, str], float]:
    def parse(name: str, value: str):
        try:
            number = kind(value)
        except ValueError:
            raise SettingsError(f"{name} must be {kind.__name__}, got {value!r}") from None
        if not low <= number <= high:
            raise SettingsError(f"{name} must be between {low} and {high}, got {value!r}")
        return number

    return parse


def log_level(name: str, value: str) -> str:
    level = value.upper()
    if level not in LOG_LEVELS:
        raise SettingsError(f"{name} must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return level


def schemes(name: str, value: str) -> frozenset[str]:
    schemes = frozenset(s.strip().lower() for s in value.split(",") if s.strip())
    bad = sorted(s for s in schemes if not s.isalnum())
    if not schemes or bad:
        raise SettingsError(f"{name} must be a comma-separated list of URI schemes, got {value!r}")
    return schemes


def webhook_secret(name: str, value: str) -> str:
    body = value.strip().removeprefix("whsec_")
    try:
        key = base64.b64decode(body, validate=True)
    except ValueError:
        key = b""
    if not value.strip().startswith("whsec_") or len(key) < 24:
        raise SettingsError(f"{name} must be whsec_ and the base64 of at least 24 random bytes")
    return value.strip()


def hosts(name: str, value: str) -> frozenset[str]:
    hosts = frozenset(h.strip().lower().strip("[]") for h in value.split(",") if h.strip())
    bad = sorted(h for h in hosts if not re.fullmatch(r"[a-z0-9.:_-]+", h))
    if bad:
        raise SettingsError(f"{name} must be a comma-separated list of host names, got {value!r}")
    return hosts


def bind(name: str, value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{name} must be host:port, got {value!r}")
    return value
