"""Settings of the simulator, read once from the environment and validated at start-up."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 18090
DEFAULT_ADMIN_PORT = 18091
DEFAULT_QUEUE_SECONDS = 0.5
DEFAULT_RUN_SECONDS = 2.0
DEFAULT_CANCEL_SECONDS = 2.0


class ConfigError(ValueError):
    """An environment variable is missing or has a value the simulator cannot use."""


@dataclass(frozen=True)
class SimConfig:
    """Everything the app and the server need; built by `from_env` or directly in tests."""

    api_token: str
    queue_seconds: float = DEFAULT_QUEUE_SECONDS
    run_seconds: float = DEFAULT_RUN_SECONDS
    cancel_seconds: float = DEFAULT_CANCEL_SECONDS
    job_log_path: Path | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    admin_port: int = DEFAULT_ADMIN_PORT

    def __post_init__(self) -> None:
        if not self.api_token:
            raise ConfigError("the API token must not be empty")
        if self.port and self.port == self.admin_port:
            raise ConfigError(f"the API port and the admin port must differ (both {self.port})")

    def __repr__(self) -> str:
        # The token must never reach a log line, even through a repr in a traceback.
        return (
            f"SimConfig(api_token='***', queue_seconds={self.queue_seconds}, "
            f"run_seconds={self.run_seconds}, cancel_seconds={self.cancel_seconds}, "
            f"job_log_path={self.job_log_path}, "
            f"host={self.host!r}, port={self.port}, admin_port={self.admin_port})"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SimConfig:
        """Read WORKBENCH_API_TOKEN and the SIM_* variables; raise ConfigError on a bad value."""
        token = env.get("WORKBENCH_API_TOKEN", "").strip()
        if not token:
            raise ConfigError(
                "WORKBENCH_API_TOKEN is not set; the simulator needs the bearer token "
                "its clients will send"
            )
        job_log = env.get("SIM_JOB_LOG", "").strip()
        return cls(
            api_token=token,
            queue_seconds=_seconds(env, "SIM_QUEUE_SECONDS", DEFAULT_QUEUE_SECONDS),
            run_seconds=_seconds(env, "SIM_RUN_SECONDS", DEFAULT_RUN_SECONDS),
            cancel_seconds=_seconds(env, "SIM_CANCEL_SECONDS", DEFAULT_CANCEL_SECONDS),
            job_log_path=Path(job_log) if job_log else None,
            host=env.get("SIM_HOST", "").strip() or DEFAULT_HOST,
            port=_port(env, "SIM_PORT", DEFAULT_PORT),
            admin_port=_port(env, "SIM_ADMIN_PORT", DEFAULT_ADMIN_PORT),
        )


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number of seconds >= 0, got {raw!r}")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > 65535:
        # 0 is allowed on purpose: the OS then picks a free port (used by tests).
        raise ConfigError(f"{name} must be a TCP port number 0-65535, got {raw!r}")
    return int(raw)
