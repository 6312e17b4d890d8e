"""The one place that reads and validates the environment."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, make_dataclass
from typing import Any

from batchcore import setting_checks as checks
from batchcore.setting_checks import LOG_LEVELS, SettingsError  # noqa: F401 (the public API)


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
        checks.database_url,
        None,
        "PostgreSQL of the service (libpq PG* variables are used when unset)",
        secret=True,
        empty="",
    ),
    Var(
        "CONDUCTOR_SERVER_URL",
        "conductor_server_url",
        checks.conductor_url,
        "http://127.0.0.1:8080/api",
        "Conductor server REST base, ending in /api",
    ),
    Var(
        "WORKBENCH_API_URL",
        "workbench_api_url",
        checks.http_url,
        None,
        "Base URL of the Workbench API",
    ),
    Var(
        "WORKBENCH_API_TOKEN",
        "workbench_api_token",
        checks.token,
        None,
        "Bearer token for the Workbench API",
        secret=True,
    ),
    Var(
        "GATEWAY_API_TOKENS",
        "gateway_api_tokens",
        checks.tokens,
        None,
        "Comma-separated bearer tokens the gateway accepts, each name:token or a bare token "
        "(named default); several may share a name (rotation)",
        secret=True,
        empty=(),
    ),
    Var(
        "GATEWAY_SECRET_KEY",
        "gateway_secret_key",
        checks.token,
        None,
        "Key that signs the gateway's list cursors and run browser sessions "
        "(derived from GATEWAY_API_TOKENS when unset)",
        secret=True,
    ),
    Var(
        "POLL_INTERVAL_SECONDS",
        "poll_interval_seconds",
        checks.number(int, 1, 3600),
        "5",
        "Seconds between status sweeps (the WAIT of batch_status_poller)",
    ),
    Var(
        "POLL_BATCH_SIZE",
        "poll_batch_size",
        checks.number(int, 1, 5000),
        "200",
        "Runs claimed per database round trip in a sweep",
    ),
    Var(
        "POLL_MAX_RETRIES",
        "poll_max_retries",
        checks.number(int, 0, 20),
        "3",
        "Retries of one Workbench status call within a sweep",
    ),
    Var(
        "POLL_CONCURRENCY",
        "poll_concurrency",
        checks.number(int, 1, 256),
        "16",
        "Workbench status calls in flight at once during a sweep",
    ),
    Var(
        "POLL_PARALLELISM",
        "poll_parallelism",
        checks.number(int, 1, 32),
        "2",
        "poll_status sweeps each batch_status_poller iteration forks, one per poller service "
        "at a time: at least the number of poller services, so that each sweeps at once",
    ),
    Var(
        "POLL_LEASE_SECONDS",
        "poll_lease_seconds",
        checks.number(int, 5, 3600),
        "60",
        "How long a claimed run is held by one poller before another may take it",
    ),
    Var(
        "POLL_GIVE_UP_SECONDS",
        "poll_give_up_seconds",
        checks.number(int, 60, 604800),
        "3600",
        "How long a run's status may keep failing to be read for a reason retrying cannot fix "
        "(an unknown status, a malformed answer, 401/403) before the poller ends it FAILED",
    ),
    Var(
        "RUN_DEADLINE_SECONDS",
        "run_deadline_seconds",
        checks.number(int, 60, 604800),
        "86400",
        "A run's deadline when neither its request (deadline_seconds) nor its pipeline "
        "(max_runtime_seconds) gives one: an active run has its job cancelled and fails then",
    ),
    Var(
        "RECONCILE_INTERVAL_SECONDS",
        "reconcile_interval_seconds",
        checks.number(int, 5, 86400),
        "30",
        "How often a poller runs the reconciler (stuck PENDING runs, lost workflows)",
    ),
    Var(
        "RECONCILE_PENDING_SECONDS",
        "reconcile_pending_seconds",
        checks.number(int, 30, 86400),
        "120",
        "How long a run may stay PENDING before the reconciler repairs it",
    ),
    Var(
        "WORKBENCH_CONNECT_TIMEOUT_SECONDS",
        "workbench_connect_timeout",
        checks.number(float, 0.1, 60),
        "3",
        "Connect timeout of Workbench calls",
    ),
    Var(
        "WORKBENCH_READ_TIMEOUT_SECONDS",
        "workbench_read_timeout",
        checks.number(float, 0.1, 300),
        "10",
        "Read timeout of Workbench calls",
    ),
    Var(
        "ALLOWED_PATH_SCHEMES",
        "allowed_path_schemes",
        checks.schemes,
        "s3,gs,abfs,file",
        "URI schemes accepted for input and output path prefixes",
    ),
    Var(
        "DB_POOL_MAX",
        "db_pool_max",
        checks.number(int, 1, 200),
        "10",
        "Largest number of PostgreSQL connections one process keeps",
    ),
    Var(
        "DB_CONNECT_TIMEOUT_SECONDS",
        "db_connect_timeout",
        checks.number(float, 0.5, 120),
        "5",
        "How long opening one connection (with retries and backoff) may take in all",
    ),
    Var(
        "CONDUCTOR_TIMEOUT_SECONDS",
        "conductor_timeout",
        checks.number(float, 0.5, 120),
        "10",
        "Timeout of the gateway's calls to Conductor",
    ),
    Var(
        "GATEWAY_BIND",
        "gateway_bind",
        checks.bind,
        "127.0.0.1:8000",
        "host:port the gateway's gunicorn listens on",
    ),
    Var(
        "GATEWAY_WORKERS",
        "gateway_workers",
        checks.number(int, 1, 64),
        "2",
        "gunicorn worker processes of the gateway",
    ),
    Var(
        "GATEWAY_THREADS",
        "gateway_threads",
        checks.number(int, 1, 256),
        "16",
        "Threads per gateway worker (also its database pool size)",
    ),
    Var(
        "WORKER_HEALTH_BIND",
        "worker_health_bind",
        checks.bind,
        "127.0.0.1:8001",
        "host:port where a worker service serves /healthz, /readyz and /metrics",
    ),
    Var(
        "SUBMIT_WORKER_THREADS",
        "submit_worker_threads",
        checks.number(int, 1, 64),
        "8",
        "Tasks each submission task runner (submit_to_workbench, persist_run) runs at once, "
        "and so the largest batch one poll of Conductor asks for",
    ),
    Var(
        "SUBMIT_WORKER_POLL_INTERVAL_MS",
        "submit_worker_poll_interval_ms",
        checks.number(int, 1, 1000),
        "100",
        "The longest an idle submission task runner waits between polls of Conductor",
    ),
    Var(
        "SUBMIT_WORKER_POLL_TIMEOUT_MS",
        "submit_worker_poll_timeout_ms",
        checks.number(int, 0, 5000),
        "0",
        "How long Conductor holds one poll of a submission task runner; on PostgreSQL queues "
        "it keeps the tasks it found until the batch is full or this passes, so 0 answers "
        "at once",
    ),
    Var(
        "CONDUCTOR_DATABASE_URL",
        "conductor_database_url",
        checks.database_url,
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
        checks.number(int, 150, 86400),
        "300",
        "How long past its delivery time a popped, unacknowledged message in Conductor's "
        "queue means its unack processor has died",
    ),
    Var(
        "WEBHOOK_SECRET",
        "webhook_secret",
        checks.webhook_secret,
        None,
        "Standard Webhooks signing secret of notifications (whsec_ + base64); unset, runs "
        "with a notify_url keep their notifications pending until it is set",
        secret=True,
    ),
    Var(
        "WEBHOOK_ALLOWED_HOSTS",
        "webhook_allowed_hosts",
        checks.hosts,
        None,
        "Hosts a notify_url may name although they are local or private (http allowed too)",
        empty=frozenset(),
    ),
    Var(
        "WEBHOOK_RETRY_HOURS",
        "webhook_retry_hours",
        checks.number(float, 0.01, 720),
        "24",
        "How long a notification is retried before it is given up",
    ),
    Var(
        "WEBHOOK_TIMEOUT_SECONDS",
        "webhook_timeout_seconds",
        checks.number(float, 0.5, 30),
        "5",
        "Connect and read timeout of one webhook delivery attempt",
    ),
    Var("LOG_LEVEL", "log_level", checks.log_level, "INFO", "Log level of every process"),
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
