"""The worker process runner: one role's task workers under the SDK's TaskHandler."""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import threading

ROLES = {
    "submit": "conductor_workers.tasks.submit",
    "poller": "conductor_workers.tasks.poll",
}

log = logging.getLogger("conductor_workers")


def _metrics_dir(role: str) -> str:
    # Must be set before prometheus_client is first imported, here and in spawned workers.
    path = tempfile.mkdtemp(prefix=f"conductor-workers-{role}-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def run(role: str) -> int:
    """Start the role's workers and its health server; stop cleanly on SIGTERM."""
    metrics_dir = _metrics_dir(role)
    from batchcore import settings as settings_mod

    try:
        cfg = settings_mod.load(
            require=[
                "DATABASE_URL",
                "CONDUCTOR_SERVER_URL",
                "WORKBENCH_API_URL",
                "WORKBENCH_API_TOKEN",
            ]
        )
    except settings_mod.SettingsError as exc:
        print(f"conductor_workers: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=cfg.log_level,
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
    )

    from conductor.client.automator.task_handler import TaskHandler
    from conductor.client.configuration.configuration import Configuration
    from conductor.client.configuration.settings.metrics_settings import MetricsSettings

    from batchcore.conductor import ConductorClient
    from batchcore.db import Database
    from batchcore.runs.store import RunStore

    from . import health, notifying, supervision

    handler = TaskHandler(
        configuration=Configuration(),
        import_modules=[ROLES[role]],
        scan_for_annotated_workers=True,
        metrics_settings=MetricsSettings(directory=metrics_dir),
        monitor_processes=True,
        restart_on_failure=True,
    )
    db = Database(cfg.database_url, maxconn=2, connect_timeout=2)
    conductor = ConductorClient(cfg.conductor_server_url, timeout=5)
    stop = threading.Event()
    keepers = {}  # the poller service's loop keepers, by their /healthz key

    def alive() -> dict:
        # Unhealthy when a loop keeper died or no sweep of its loop was seen finishing for long.
        workers = handler.get_worker_process_status()
        return health.liveness(handler.is_healthy(), role, workers, keepers)

    # conductor-oss/conductor#326, read in Conductor's database: a detail of readiness (and
    # gauges), not a failure of it, since restarting this service would not cure Conductor.
    queue_watch = health.watch_conductor_queue(
        cfg.conductor_database_url, cfg.conductor_stuck_message_seconds
    )

    def ready() -> dict:
        result = supervision.readiness(db, conductor)
        if queue_watch is not None:
            result["conductor_queue"] = queue_watch.report()
        return result

    def on_signal(signum, _frame):
        log.info("received signal %s; stopping workers", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    handler.start_processes()
    health.serve(cfg.worker_health_bind, health.make_app(alive, ready, metrics_dir))
    log.info("%s workers started; health on http://%s", role, cfg.worker_health_bind)
    if role == "poller":
        keepers["poller_loop"] = supervision.keep_poller_loop_running(
            conductor, RunStore(db), cfg.poll_interval_seconds, stop, cfg.poll_parallelism
        )
        # The batch_notifier loop beside it: webhook deliveries never hold up a sweep.
        keepers["notifier_loop"] = notifying.keep_notifier_loop_running(conductor, db, stop)
    stop.wait()
    if queue_watch is not None:
        queue_watch.stop()
    handler.stop_processes()
    db.close()
    log.info("%s workers stopped", role)
    return 0
