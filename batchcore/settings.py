"""The one place that reads and validates the environment."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, make_dataclass
from typing import Any
from urllib.parse import urlsplit

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """A variable is missing or has a bad value; the message names it and the rule."""


def _http_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name} must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise SettingsError(f"{name} must not carry credentials in the URL")
    return value.rstrip("/")


def _conductor_url(name: str, value: str) -> str:
    url = _http_url(name, value)
    if not url.endswith("/api"):
        raise SettingsError(f"{name} must end in /api (as the Conductor SDK expects), got {url!r}")
    return url


def _database_url(name: str, value: str) -> str:
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


def _tokens(name: str, value: str) -> tuple[NamedToken, ...]:
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


def _token(name: str, value: str) -> str:
    if not value.strip():
        raise SettingsError(f"{name} must not be empty")
    return value.strip()


def _number(kind: type, low: float, high: float) -> Callable[[str, str], float]:
    def parse(name: str, value: str):
        try:
            number = kind(value)
        except ValueError:
            raise SettingsError(f"{name} must be {kind.__name__}, got {value!r}") from None
        if not low <= number <= high:
            raise SettingsError(f"{name} must be between {low} and {high}, got {value!r}")
        return number

    return parse


def _log_level(name: str, value: str) -> str:
    level = value.upper()
    if level not in LOG_LEVELS:
        raise SettingsError(f"{name} must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return level


def _schemes(name: str, value: str) -> frozenset[str]:
    schemes = frozenset(s.strip().lower() for s in value.split(",") if s.strip())
    bad = sorted(s for s in schemes if not s.isalnum())
    if not schemes or bad:
        raise SettingsError(f"{name} must be a comma-separated list of URI schemes, got {value!r}")
    return schemes


def _webhook_secret(name: str, value: str) -> str:
    body = value.strip().removeprefix("whsec_")
    try:
        key = base64.b64decode(body, validate=True)
    except ValueError:
        key = b""
    if not value.strip().startswith("whsec_") or len(key) < 24:
        raise SettingsError(f"{name} must be whsec_ and the base64 of at least 24 random bytes")
    return value.strip()


def _hosts(name: str, value: str) -> frozenset[str]:
    hosts = frozenset(h.strip().lower().strip("[]") for h in value.split(",") if h.strip())
    bad = sorted(h for h in hosts if not re.fullmatch(r"[a-z0-9.:_-]+", h))
    if bad:
        raise SettingsError(f"{name} must be a comma-separated list of host names, got {value!r}")
    return hosts


def _bind(name: str, value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{name} must be host:port, got {value!r}")
    return value


@dataclass(frozen=True)
class Var:
    """One environment variable: how to parse it, its default, whether it is secret."""

    name: str
    attr: str
    parse: Callable[[str, str], object]
    default: str | None
    description: str
    secret: bool = False
    empty: object = None  # the attribute's value when the variable is unset and has no default


VARIABLES: tuple[Var, ...] = (
    Var(
        "DATABASE_URL",
        "database_url",
        _database_url,
        None,
        "PostgreSQL of the service (libpq PG* variables are used when unset)",
        secret=True,
        empty="",
    ),
    Var(
        "CONDUCTOR_SERVER_URL",
        "conductor_server_url",
        _conductor_url,
        "http://127.0.0.1:8080/api",
        "Conductor server REST base, ending in /api",
    ),
    Var("WORKBENCH_API_URL", "workbench_api_url", _http_url, None, "Base URL of the Workbench API"),
    Var(
        "WORKBENCH_API_TOKEN",
        "workbench_api_token",
        _token,
        None,
        "Bearer token for the Workbench API",
        secret=True,
    ),
    Var(
        "GATEWAY_API_TOKENS",
        "gateway_api_tokens",
        _tokens,
        None,
        "Comma-separated bearer tokens the gateway accepts, each name:token or a bare token "
        "(named default); several may share a name (rotation)",
        secret=True,
        empty=(),
    ),
    Var(
        "GATEWAY_SECRET_KEY",
        "gateway_secret_key",
        _token,
        None,
        "Key that signs the gateway's list cursors (derived from GATEWAY_API_TOKENS when unset)",
        secret=True,
    ),
    Var(
        "POLL_INTERVAL_SECONDS",
        "poll_interval_seconds",
        _number(int, 1, 3600),
        "5",
        "Seconds between status sweeps (the WAIT of batch_status_poller)",
    ),
    Var(
        "POLL_BATCH_SIZE",
        "poll_batch_size",
        _number(int, 1, 5000),
        "200",
        "Runs claimed per database round trip in a sweep",
    ),
    Var(
        "POLL_MAX_RETRIES",
        "poll_max_retries",
        _number(int, 0, 20),
        "3",
        "Retries of one Workbench status call within a sweep",
    ),
    Var(
        "POLL_CONCURRENCY",
        "poll_concurrency",
        _number(int, 1, 256),
        "16",
        "Workbench status calls in flight at once during a sweep",
    ),
    Var(
        "POLL_LEASE_SECONDS",
        "poll_lease_seconds",
        _number(int, 5, 3600),
        "60",
        "How long a claimed run is held by one poller before another may take it",
    ),
    Var(
        "POLL_GIVE_UP_SECONDS",
        "poll_give_up_seconds",
        _number(int, 60, 604800),
        "3600",
        "How long a run's status may keep failing to be read for a reason retrying cannot fix "
        "(an unknown status, a malformed answer, 401/403) before the poller ends it FAILED",
    ),
    Var(
        "RECONCILE_INTERVAL_SECONDS",
        "reconcile_interval_seconds",
        _number(int, 5, 86400),
        "30",
        "How often a poller runs the reconciler (stuck PENDING runs, lost workflows)",
    ),
    Var(
        "RECONCILE_PENDING_SECONDS",
        "reconcile_pending_seconds",
        _number(int, 30, 86400),
        "120",
        "How long a run may stay PENDING before the reconciler repairs it",
    ),
    Var(
        "WORKBENCH_CONNECT_TIMEOUT_SECONDS",
        "workbench_connect_timeout",
        _number(float, 0.1, 60),
        "3",
        "Connect timeout of Workbench calls",
    ),
    Var(
        "WORKBENCH_READ_TIMEOUT_SECONDS",
        "workbench_read_timeout",
        _number(float, 0.1, 300),
        "10",
        "Read timeout of Workbench calls",
    ),
    Var(
        "ALLOWED_PATH_SCHEMES",
        "allowed_path_schemes",
        _schemes,
        "s3,gs,abfs,file",
        "URI schemes accepted for input and output path prefixes",
    ),
    Var(
        "DB_POOL_MAX",
        "db_pool_max",
        _number(int, 1, 200),
        "10",
        "Largest number of PostgreSQL connections one process keeps",
    ),
    Var(
        "DB_CONNECT_TIMEOUT_SECONDS",
        "db_connect_timeout",
        _number(float, 0.5, 120),
        "5",
        "How long opening one connection (with retries and backoff) may take in all",
    ),
    Var(
        "CONDUCTOR_TIMEOUT_SECONDS",
        "conductor_timeout",
        _number(float, 0.5, 120),
        "10",
        "Timeout of the gateway's calls to Conductor",
    ),
    Var(
        "GATEWAY_BIND",
        "gateway_bind",
        _bind,
        "127.0.0.1:8000",
        "host:port the gateway's gunicorn listens on",
    ),
    Var(
        "GATEWAY_WORKERS",
        "gateway_workers",
        _number(int, 1, 64),
        "2",
        "gunicorn worker processes of the gateway",
    ),
    Var(
        "GATEWAY_THREADS",
        "gateway_threads",
        _number(int, 1, 256),
        "16",
        "Threads per gateway worker (also its database pool size)",
    ),
    Var(
        "WORKER_HEALTH_BIND",
        "worker_health_bind",
        _bind,
        "127.0.0.1:8001",
        "host:port where a worker service serves /healthz, /readyz and /metrics",
    ),
    Var(
        "CONDUCTOR_DATABASE_URL",
        "conductor_database_url",
        _database_url,
        None,
        "Conductor's own PostgreSQL, read-only: detects its dead unack processor "
        "(conductor-oss/conductor#326); unset, the check is off",
        secret=True,
        empty="",
    ),
    Var(
        "CONDUCTOR_STUCK_MESSAGE_SECONDS",
        "conductor_stuck_message_seconds",
        # Below 150 s a healthy server (unacks every 60 s, 60 s past delivery) could alarm.
        _number(int, 150, 86400),
        "300",
        "How long past its delivery time a popped, unacknowledged message in Conductor's "
        "queue means its unack processor has died",
    ),
    Var(
        "WEBHOOK_SECRET",
        "webhook_secret",
        _webhook_secret,
        None,
        "Standard Webhooks signing secret of notifications (whsec_ + base64); unset, runs "
        "with a notify_url keep their notifications pending until it is set",
        secret=True,
    ),
    Var(
        "WEBHOOK_ALLOWED_HOSTS",
        "webhook_allowed_hosts",
        _hosts,
        None,
        "Hosts a notify_url may name although they are local or private (http allowed too)",
        empty=frozenset(),
    ),
    Var(
        "WEBHOOK_RETRY_HOURS",
        "webhook_retry_hours",
        _number(float, 0.01, 720),
        "24",
        "How long a notification is retried before it is given up",
    ),
    Var(
        "WEBHOOK_TIMEOUT_SECONDS",
        "webhook_timeout_seconds",
        _number(float, 0.5, 30),
        "5",
        "Connect and read timeout of one webhook delivery attempt",
    ),
    Var("LOG_LEVEL", "log_level", _log_level, "INFO", "Log level of every process"),
)


def _var(name: str) -> Var:
    for var in VARIABLES:
        if var.name == name:
            return var
    raise KeyError(f"unknown setting {name!r}")


def default(name: str) -> object:
    """The typed default of variable ``name`` (None when it has none); KeyError if unknown."""
    var = _var(name)
    return None if var.default is None else var.parse(var.name, var.default)


def _field(var: Var) -> Any:
    """The Settings field of ``var``: the table's default (or its empty value), repr if public."""
    value = default(var.name)
    return field(default=var.empty if value is None else value, repr=not var.secret)


# One attribute per variable, so that a default is never stated twice.
Settings = make_dataclass(
    "Settings",
    [(var.attr, Any, _field(var)) for var in VARIABLES],
    frozen=True,
    namespace={
        "__doc__": "Validated configuration, one attribute per VARIABLES entry.",
        "__module__": __name__,
    },
)


def load(env: Mapping[str, str] | None = None, require: Iterable[str] = ()) -> Settings:
    """Read every known variable from `env` (the process environment by default).

    `require` names the variables this process cannot run without; a missing one,
    or any present one with a bad value, raises SettingsError naming it.
    """
    env = os.environ if env is None else env
    required = set(require)
    unknown = required - {v.name for v in VARIABLES}
    if unknown:
        raise SettingsError(f"unknown required variable(s): {', '.join(sorted(unknown))}")
    values: dict[str, object] = {}
    for var in VARIABLES:
        raw = env.get(var.name)
        if raw is None or raw == "":
            if var.name == "DATABASE_URL" and "DATABASE_URL" in required and _has_libpq_env(env):
                continue
            if var.name in required:
                raise SettingsError(f"{var.name} is not set: {var.description}")
            if var.default is None:
                continue
            raw = var.default
        values[var.attr] = var.parse(var.name, raw)
    return Settings(**values)


def _has_libpq_env(env: Mapping[str, str]) -> bool:
    return any(env.get(name) for name in ("PGHOST", "PGDATABASE", "PGSERVICE"))


def known_names() -> frozenset[str]:
    """Every variable name this module reads."""
    return frozenset(v.name for v in VARIABLES)
