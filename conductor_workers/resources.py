"""Per-process resources of a worker, made on first use (the SDK spawns worker processes)."""

from __future__ import annotations

import functools

from batchcore import settings as settings_mod
from batchcore.conductor import ConductorClient
from batchcore.db import Database, process_database
from batchcore.runs.store import RunStore
from batchcore.workbench import WorkbenchClient

REQUIRED = ["DATABASE_URL", "CONDUCTOR_SERVER_URL", "WORKBENCH_API_URL", "WORKBENCH_API_TOKEN"]


@functools.cache
def settings() -> settings_mod.Settings:
    """This process's validated settings."""
    return settings_mod.load(require=REQUIRED)


def database() -> Database:
    """This process's PostgreSQL pool."""
    cfg = settings()
    return process_database(cfg.database_url, cfg.db_pool_max, cfg.db_connect_timeout)


def store() -> RunStore:
    """This process's run store, over its pool."""
    return RunStore(database())


@functools.cache
def workbench() -> WorkbenchClient:
    """This process's Workbench client."""
    cfg = settings()
    return WorkbenchClient(
        cfg.workbench_api_url,
        cfg.workbench_api_token,
        connect_timeout=cfg.workbench_connect_timeout,
        read_timeout=cfg.workbench_read_timeout,
        pool_maxsize=max(32, cfg.poll_concurrency),
    )


@functools.cache
def conductor() -> ConductorClient:
    """This process's Conductor REST client."""
    cfg = settings()
    return ConductorClient(cfg.conductor_server_url, timeout=cfg.conductor_timeout)
