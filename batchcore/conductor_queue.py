"""Detects Conductor's dead unack processor (conductor-oss/conductor#326) in its database."""

# PostgresQueueDAO.processAllUnacks runs on a single scheduled executor; once it throws (the
# database gone longer than its retries) it never runs again, and every message popped from
# then on and never acknowledged stays popped: its workflow is stuck until the server restarts.

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg2

from .queries import Q

ISSUE = "conductor-oss/conductor#326"
REMEDY = "restart the Conductor server (a new server starts a new unack processor)"
# The read-only query must never hold Conductor's tables for long.
STATEMENT_TIMEOUT_MS = 5000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueHealth:
    """What one check of Conductor's queue found; `error` when it could not be checked."""

    stuck_messages: int = 0
    oldest_seconds: float = 0.0
    queues: tuple[str, ...] = ()
    stuck_after_seconds: int = 0
    error: str | None = None
    # Of the stuck messages, those delivered within the window the check was asked about.
    stuck_lately: int | None = None

    @property
    def stuck(self) -> bool:
        """True when a popped, unacknowledged message is older than the threshold."""
        return self.error is None and self.stuck_messages > 0

    @property
    def status(self) -> str:
        """'stuck', 'ok', or 'unknown' (the check failed: no verdict either way)."""
        if self.error is not None:
            return "unknown"
        return "stuck" if self.stuck else "ok"

    def report(self) -> dict:
        """The readiness detail: the verdict, and on 'stuck' the issue and the remedy."""
        report: dict = {"status": self.status, "stuck_after_seconds": self.stuck_after_seconds}
        if self.error is not None:
            report["error"] = self.error
        if self.stuck:
            report.update(
                stuck_messages=self.stuck_messages,
                oldest_seconds=round(self.oldest_seconds),
                queues=list(self.queues),
                issue=ISSUE,
                remedy=REMEDY,
                message=(
                    f"{self.stuck_messages} message(s) in Conductor's queue were popped and "
                    f"never acknowledged, the oldest {round(self.oldest_seconds)} s past its "
                    f"delivery time: Conductor's unack processor has died ({ISSUE}); {REMEDY}"
                ),
            )
        return report


def health_from_row(row: tuple, stuck_after_seconds: int) -> QueueHealth:
    """The verdict on the query's one row: (stuck_messages, oldest_seconds, queues)."""
    count, oldest, queues, *lately = row
    return QueueHealth(
        stuck_messages=int(count),
        oldest_seconds=float(oldest or 0) if count else 0.0,
        queues=tuple(sorted(queues or ())),
        stuck_after_seconds=stuck_after_seconds,
        stuck_lately=int(lately[0]) if lately else None,
    )


def check(
    url: str,
    stuck_after_seconds: int,
    connect_timeout: float = 3,
    lately_seconds: float | None = None,
) -> QueueHealth:
    """One read-only check against Conductor's database; never raises for a database error.
    `lately_seconds`: also count the stuck messages delivered within that many seconds."""
    try:
        conn = psycopg2.connect(url, connect_timeout=max(1, round(connect_timeout)))
    except psycopg2.Error as exc:
        return QueueHealth(stuck_after_seconds=stuck_after_seconds, error=_first_line(exc))
    try:
        conn.set_session(readonly=True)
        with conn.cursor() as cur:
            cur.execute("SET LOCAL statement_timeout = %s", (STATEMENT_TIMEOUT_MS,))
            cur.execute(
                Q["conductor_stuck_messages"],
                {"stuck_after_seconds": stuck_after_seconds, "lately_seconds": lately_seconds},
            )
            row = cur.fetchone()
        conn.rollback()
        return health_from_row(row, stuck_after_seconds)
    except psycopg2.Error as exc:
        return QueueHealth(stuck_after_seconds=stuck_after_seconds, error=_first_line(exc))
    finally:
        conn.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@dataclass
class QueueWatch:
    """Checks now and then from a daemon thread; `latest` is the last verdict."""

    url: str
    stuck_after_seconds: int
    every_seconds: float = 30.0
    on_check: Callable[[QueueHealth], None] | None = None
    latest: QueueHealth | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def check_once(self) -> QueueHealth:
        health = check(self.url, self.stuck_after_seconds)
        if health.stuck and not (self.latest and self.latest.stuck):
            log.error("%s", health.report()["message"])
        self.latest = health
        if self.on_check:
            self.on_check(health)
        return health

    def start(self) -> threading.Thread:
        def loop() -> None:
            while not self._stop.is_set():
                self.check_once()
                self._stop.wait(self.every_seconds)

        thread = threading.Thread(target=loop, name="conductor-queue-watch", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def report(self) -> dict:
        """The last verdict's report ('unknown' until the first check has finished)."""
        if self.latest is None:
            return {"status": "unknown", "error": "not checked yet"}
        return self.latest.report()
