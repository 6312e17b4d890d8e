"""`python -m workbench_sim`: run the simulator until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType

from .app import create_app
from .config import ConfigError, SimConfig
from .server import SimServer

log = logging.getLogger("workbench_sim")


def main() -> int:
    """Read the environment, serve both ports, and return the process exit code."""
    level_name = os.environ.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    level = logging.getLevelNamesMapping().get(level_name)
    if level is None:
        print(f"workbench_sim: LOG_LEVEL {level_name!r} is not a logging level", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = SimConfig.from_env(os.environ)
        app = create_app(config)
    except ConfigError as exc:
        print(f"workbench_sim: configuration error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"workbench_sim: cannot open the job log: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    # Installed before the ports open, so an early SIGTERM still stops cleanly.
    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)

    server = SimServer(app, host=config.host, api_port=config.port, admin_port=config.admin_port)
    try:
        server.start()
    except OSError as exc:
        print(f"workbench_sim: cannot listen on {config.host}: {exc}", file=sys.stderr)
        return 1
    log.info(
        "workbench simulator ready: api=%s admin=%s queue=%gs run=%gs cancel=%gs job_log=%s",
        server.api_url,
        server.admin_url,
        config.queue_seconds,
        config.run_seconds,
        config.cancel_seconds,
        config.job_log_path or "-",
    )
    try:
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
