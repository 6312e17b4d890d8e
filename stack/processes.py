"""The processes of the local stack, in start order: adding one is one entry here."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from . import conductor, conductor_watch, postgres, proxy
from .config import PORTS, ROOT, STACK_DIR, VENV_BIN, WEBHOOK_ALLOWED_HOSTS


@dataclass
class Process:
    """One supervised program: how to run it, when it is ready, what to do once it is."""

    name: str
    command: list[str]
    ready: Callable[[], bool]
    ready_timeout: float = 60.0
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    stopsignal: str = "TERM"
    stopwaitsecs: int = 20
    autorestart: bool = True
    before_start: Callable[[], None] | None = None
    after_ready: Callable[[], None] | None = None


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness check: `url` answers 200."""

    def check() -> bool:
        try:
            return requests.get(url, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    return check


def pg_ok(url: str) -> Callable[[], bool]:
    """A readiness check: PostgreSQL accepts a login."""

    def check() -> bool:
        import psycopg2

        try:
            psycopg2.connect(url, connect_timeout=2).close()
            return True
        except psycopg2.OperationalError:
            return False

    return check


def _run_python(*args: str, env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env={**os.environ, **env})
    if result.returncode != 0:
        raise SystemExit(f"'{' '.join(args)}' failed with exit code {result.returncode}")


def build(sec: dict[str, str], ep: dict[str, str]) -> list[Process]:
    """Every process of the stack, given its secrets and published endpoints."""
    service_env = {
        "DATABASE_URL": ep["DATABASE_URL"],
        "CONDUCTOR_SERVER_URL": ep["CONDUCTOR_SERVER_URL"],
        "WORKBENCH_API_URL": ep["WORKBENCH_API_URL"],
        "WORKBENCH_API_TOKEN": sec["WORKBENCH_API_TOKEN"],
        # Named dev; GATEWAY_API_TOKEN in stack.env stays the bare token clients send.
        "GATEWAY_API_TOKENS": f"dev:{sec['GATEWAY_API_TOKEN']}",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        "POLL_INTERVAL_SECONDS": os.environ.get("POLL_INTERVAL_SECONDS", "2"),
        "WEBHOOK_SECRET": sec["WEBHOOK_SECRET"],
        "WEBHOOK_ALLOWED_HOSTS": WEBHOOK_ALLOWED_HOSTS,
        "PYTHONUNBUFFERED": "1",
    }

    def after_postgres() -> None:
        postgres.bootstrap(
            ep["PG_ADMIN_URL"],
            {
                "pipelines": sec["PIPELINES_DB_PASSWORD"],
                "conductor": sec["CONDUCTOR_DB_PASSWORD"],
            },
        )
        _run_python("-m", "batchcore.migrate", env=service_env)

    # conductor-oss/conductor#326: the workers report it, the watch restarts Conductor on it.
    queue_check_env = {
        "CONDUCTOR_DATABASE_URL": ep["CONDUCTOR_DATABASE_URL"],
        "CONDUCTOR_STUCK_MESSAGE_SECONDS": os.environ.get("CONDUCTOR_STUCK_MESSAGE_SECONDS", "180"),
    }
    worker_env = {**service_env, **queue_check_env}

    def after_conductor() -> None:
        # Conductor's Flyway has created queue_message by now: the read-only role can see it.
        postgres.create_queue_monitor(ep["PG_ADMIN_URL"], sec["CONDUCTOR_MONITOR_DB_PASSWORD"])
        # A loop left running from an earlier start keeps the definitions it started with.
        _run_python("scripts/register_workflows.py", "--replace-poller-loop", env=service_env)

    py = str(VENV_BIN / "python")
    return [
        Process(
            name="postgres",
            command=postgres.server_command(),
            ready=pg_ok(ep["PG_ADMIN_URL"]),
            ready_timeout=60,
            user=postgres.OS_USER if os.geteuid() == 0 else None,
            stopsignal="INT",  # fast shutdown: roll back open transactions, then stop cleanly
            stopwaitsecs=60,
            after_ready=after_postgres,
        ),
        Process(
            name="conductor",
            command=conductor.server_command(sec["CONDUCTOR_DB_PASSWORD"]),
            ready=http_ok(f"http://127.0.0.1:{PORTS.conductor}/health"),
            ready_timeout=300,
            stopwaitsecs=30,
            after_ready=after_conductor,
        ),
        Process(
            name="conductor-watch",
            command=[py, "-m", "stack.conductor_watch"],
            ready=conductor_watch.is_fresh,
            env={**queue_check_env, "STACK_DIR": str(STACK_DIR), "PYTHONUNBUFFERED": "1"},
            stopwaitsecs=10,
        ),
        Process(
            name="workbench",
            command=[py, "-m", "workbench_sim"],
            ready=http_ok(f"{ep['WORKBENCH_API_URL']}/healthz"),
            env={
                "SIM_PORT": str(PORTS.workbench),
                "SIM_ADMIN_PORT": str(PORTS.workbench_admin),
                "WORKBENCH_API_TOKEN": sec["WORKBENCH_API_TOKEN"],
                "SIM_JOB_LOG": str(STACK_DIR / "workbench" / "jobs.jsonl"),
                "SIM_QUEUE_SECONDS": os.environ.get("SIM_QUEUE_SECONDS", "1"),
                "SIM_RUN_SECONDS": os.environ.get("SIM_RUN_SECONDS", "3"),
                "PYTHONUNBUFFERED": "1",
            },
        ),
        Process(
            name="submit-workers",
            command=[py, "-m", "conductor_workers", "submit"],
            ready=http_ok(f"{ep['SUBMIT_WORKERS_URL']}/readyz"),
            env={**worker_env, "WORKER_HEALTH_BIND": f"127.0.0.1:{PORTS.submit_workers}"},
            stopwaitsecs=30,
        ),
        Process(
            name="poller",
            command=[py, "-m", "conductor_workers", "poller"],
            ready=http_ok(f"{ep['POLLER_URL']}/readyz"),
            env={**worker_env, "WORKER_HEALTH_BIND": f"127.0.0.1:{PORTS.poller}"},
            stopwaitsecs=30,
        ),
        Process(
            name="gateway",
            command=[
                str(VENV_BIN / "gunicorn"),
                "-c",
                "gateway/gunicorn.conf.py",
                "gateway.wsgi:app",
            ],
            # gunicorn itself answers, not the proxy in front of it.
            ready=http_ok(f"{ep['GATEWAY_UPSTREAM_URL']}/readyz"),
            env={**service_env, "GATEWAY_BIND": f"127.0.0.1:{PORTS.gateway_upstream}"},
            stopwaitsecs=40,
        ),
        Process(
            name="proxy",
            command=proxy.server_command(),
            ready=http_ok(f"{ep['GATEWAY_URL']}/healthz"),
            before_start=proxy.prepare,
            stopsignal="QUIT",  # graceful: requests in flight are finished
            stopwaitsecs=80,  # above its longest request (proxy.READ_TIMEOUT_SECONDS)
        ),
    ]
