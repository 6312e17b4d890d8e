"""Where the local stack keeps its files, which ports it uses, and its generated secrets."""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACK_DIR = Path(os.environ.get("STACK_DIR", ROOT / ".stack")).resolve()
CACHE_DIR = Path(
    os.environ.get("STACK_CACHE_DIR", Path.home() / ".cache" / "batch-pipeline-runs")
).resolve()
LOG_DIR = STACK_DIR / "logs"
VENV_BIN = ROOT / ".venv" / "bin"

CONDUCTOR_VERSION = os.environ.get("CONDUCTOR_VERSION", "3.32.1")


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class Ports:
    """Loopback ports of the stack's processes, each overridable by STACK_*_PORT."""

    postgres: int = _port("STACK_PG_PORT", 55432)
    conductor: int = _port("STACK_CONDUCTOR_PORT", 18080)
    # The proxy in front of the gateway listens here (GATEWAY_URL); gunicorn on the next.
    gateway: int = _port("STACK_GATEWAY_PORT", 18000)
    gateway_upstream: int = _port("STACK_GATEWAY_UPSTREAM_PORT", 18001)
    workbench: int = _port("STACK_WORKBENCH_PORT", 18090)
    workbench_admin: int = _port("STACK_WORKBENCH_ADMIN_PORT", 18091)
    submit_workers: int = _port("STACK_SUBMIT_WORKERS_PORT", 18092)
    poller: int = _port("STACK_POLLER_PORT", 18093)


PORTS = Ports()
SECRET_NAMES = (
    "PG_ADMIN_PASSWORD",
    "PIPELINES_DB_PASSWORD",
    "CONDUCTOR_DB_PASSWORD",
    "GATEWAY_API_TOKEN",
    "WORKBENCH_API_TOKEN",
    "CONDUCTOR_MONITOR_DB_PASSWORD",
    "WEBHOOK_SECRET",
)
# Notifications may reach receivers on this machine (tests, demos); nothing else local.
WEBHOOK_ALLOWED_HOSTS = "127.0.0.1,localhost"


def load_secrets() -> dict[str, str]:
    """The stack's generated passwords and tokens, made once and kept under .stack/."""
    path = STACK_DIR / "secrets.env"
    found: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            found[key] = value
    missing = [name for name in SECRET_NAMES if not found.get(name)]
    if missing:
        for name in missing:
            prefix = "dev-" if name.endswith("TOKEN") else ""
            found[name] = prefix + secrets.token_urlsafe(24)
            if name == "WEBHOOK_SECRET":  # Standard Webhooks: whsec_ and base64
                found[name] = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        STACK_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k}={v}\n" for k, v in found.items()))
        path.chmod(0o600)
    return found


def endpoints(sec: dict[str, str]) -> dict[str, str]:
    """What stack.env publishes for scripts, tests and people."""
    pg = f"127.0.0.1:{PORTS.postgres}"
    return {
        "GATEWAY_URL": f"http://127.0.0.1:{PORTS.gateway}",
        # gunicorn itself, behind the proxy: for the stack's own readiness checks.
        "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{PORTS.gateway_upstream}",
        "GATEWAY_API_TOKEN": sec["GATEWAY_API_TOKEN"],
        "CONDUCTOR_SERVER_URL": f"http://127.0.0.1:{PORTS.conductor}/api",
        "DATABASE_URL": f"postgresql://pipelines:{sec['PIPELINES_DB_PASSWORD']}@{pg}/pipelines",
        "WORKBENCH_API_URL": f"http://127.0.0.1:{PORTS.workbench}",
        "WORKBENCH_API_TOKEN": sec["WORKBENCH_API_TOKEN"],
        "WORKBENCH_ADMIN_URL": f"http://127.0.0.1:{PORTS.workbench_admin}",
        "SUBMIT_WORKERS_URL": f"http://127.0.0.1:{PORTS.submit_workers}",
        "POLLER_URL": f"http://127.0.0.1:{PORTS.poller}",
        "PG_ADMIN_URL": f"postgresql://stack_admin:{sec['PG_ADMIN_PASSWORD']}@{pg}/postgres",
        # The services' read-only view of Conductor's queue (batchcore.conductor_queue).
        "CONDUCTOR_DATABASE_URL": (
            f"postgresql://conductor_monitor:{sec['CONDUCTOR_MONITOR_DB_PASSWORD']}@{pg}/conductor"
        ),
        "CONDUCTOR_OWNER_DATABASE_URL": (
            f"postgresql://conductor:{sec['CONDUCTOR_DB_PASSWORD']}@{pg}/conductor"
        ),
        # What a local receiver needs to verify the stack's notifications.
        "WEBHOOK_SECRET": sec["WEBHOOK_SECRET"],
        "WEBHOOK_ALLOWED_HOSTS": WEBHOOK_ALLOWED_HOSTS,
        "STACK_DIR": str(STACK_DIR),
    }


def write_stack_env(values: dict[str, str]) -> Path:
    """Write .stack/stack.env (0600, it holds the dev token)."""
    path = STACK_DIR / "stack.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)
    return path


def read_stack_env() -> dict[str, str]:
    """The published endpoints of a running stack; empty when it was never started."""
    path = STACK_DIR / "stack.env"
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
