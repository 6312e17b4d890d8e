"""`python -m stack.conductor_watch`: restart the stack's Conductor when its queue is stuck."""

# conductor-oss/conductor#326: once Conductor's unack processor has died, popped messages are
# never handed out again and their workflows stay stuck until the server restarts. This
# supervised process checks Conductor's database (batchcore.conductor_queue) every few seconds
# and restarts the `conductor` program when the check finds such messages, at most once per
# hold-off (the new server first un-acks about a minute after it starts). It never starts a
# Conductor that someone stopped.

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from batchcore import conductor_queue, settings

from . import config, supervisor

CHECK_EVERY_SECONDS = 10.0
# After a restart: the server's start (about a minute here) and its first unack pass (60 s).
SETTLE_SECONDS = 180.0
STATE_FILE = config.STACK_DIR / "conductor-watch.json"

log = logging.getLogger("stack.conductor_watch")


@dataclass(frozen=True)
class Decision:
    """Whether to restart Conductor now, and why (or why not)."""

    restart: bool
    reason: str


def decide(
    health: conductor_queue.QueueHealth,
    conductor_state: str,
    now: float,
    last_restart_at: float | None,
    holdoff_seconds: float,
) -> Decision:
    """Restart only a running Conductor whose queue is stuck, once per hold-off."""
    if not health.stuck:
        return Decision(False, f"queue {health.status}")
    if conductor_state != "RUNNING":
        return Decision(False, f"queue stuck but conductor is {conductor_state}: left alone")
    if last_restart_at is not None and now - last_restart_at < holdoff_seconds:
        return Decision(False, "queue stuck; restarted recently, waiting for the new server")
    if last_restart_at is not None and health.stuck_lately == 0:
        # A new server un-acks every message popped before it started; these stayed popped
        # through the last restart, so another restart would not help either: they are
        # workflows Conductor keeps re-sweeping without moving their delivery time (seen with
        # a SIMPLE task no worker polls), not a dead unack processor.
        return Decision(
            False,
            f"{health.stuck_messages} message(s) stayed popped through the last restart: "
            "not a dead unack processor; left alone",
        )
    return Decision(True, health.report()["message"])


def read_state(path: Path = STATE_FILE) -> dict:
    """What the watch last wrote (restarts so far, last check); empty before its first run."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def is_fresh(path: Path = STATE_FILE, within: float = 3 * CHECK_EVERY_SECONDS) -> bool:
    """The watch's readiness: it has checked recently."""
    checked = read_state(path).get("checked_at_epoch")
    return bool(checked) and time.time() - checked < within


def run(url: str, stuck_after_seconds: int, path: Path = STATE_FILE) -> None:
    """Check, decide and record forever."""
    holdoff = stuck_after_seconds + SETTLE_SECONDS
    state = {"restarts": 0, **read_state(path)}
    while True:
        last = state.get("last_restart_epoch")
        # Only messages delivered since the last restart can show that it did not help.
        lately = time.time() - last if last else None
        health = conductor_queue.check(url, stuck_after_seconds, lately_seconds=lately)
        now = time.time()
        decision = decide(
            health, supervisor.state("conductor"), now, state.get("last_restart_epoch"), holdoff
        )
        if decision.restart:
            log.error("restarting conductor: %s", decision.reason)
            supervisor.ctl("restart", "conductor", check=False, quiet=True)
            state.update(
                restarts=state["restarts"] + 1,
                last_restart_epoch=now,
                last_restart_at=datetime.fromtimestamp(now, UTC).isoformat(),
                last_restart_reason=decision.reason,
            )
        elif health.stuck:
            log.warning("%s", decision.reason)
        state.update(
            checked_at_epoch=now,
            queue=health.report(),
            decision=decision.reason,
        )
        _write_state(path, state)
        time.sleep(CHECK_EVERY_SECONDS)


def main() -> int:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = settings.load(require=["CONDUCTOR_DATABASE_URL"])
    except settings.SettingsError as exc:
        print(f"stack.conductor_watch: {exc}", file=sys.stderr)
        return 2
    log.info(
        "watching Conductor's queue every %ss (stuck after %ss; %s)",
        CHECK_EVERY_SECONDS,
        cfg.conductor_stuck_message_seconds,
        conductor_queue.ISSUE,
    )
    run(cfg.conductor_database_url, cfg.conductor_stuck_message_seconds)
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
