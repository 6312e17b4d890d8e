"""Delivering the outbox: one sweep of due notifications, and keeping the batch_notifier loop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime

from batchcore import settings
from batchcore.conductor import ConductorClient
from batchcore.db import Database
from batchcore.notifications import delivery, schedule
from batchcore.notifications.loop import (
    NOTIFIER_CORRELATION_ID,
    NOTIFIER_VERSION,
    NOTIFIER_WORKFLOW,
)
from batchcore.notifications.signing import body_of, iso_utc, run_json, signed_headers
from batchcore.notifications.store import (
    DELIVERED,
    GIVEN_UP,
    PENDING,
    Attempt,
    Claimed,
    NotificationStore,
)

from . import supervision

# Seconds between the loop's sweeps (the WAIT of batch_notifier).
NOTIFIER_INTERVAL_SECONDS = 1
NOTIFIER_LOOP = supervision.Loop(
    "notifier",
    NOTIFIER_WORKFLOW,
    NOTIFIER_VERSION,
    NOTIFIER_CORRELATION_ID,
    "deliver_notifications",
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryConfig:
    """How a sweep delivers: the secret, the address rules, the retry window and its limits."""

    secret: str | None
    allowed_hosts: frozenset[str] = frozenset()
    retry_hours: float = settings.default("WEBHOOK_RETRY_HOURS")
    timeout_seconds: float = settings.default("WEBHOOK_TIMEOUT_SECONDS")
    concurrency: int = 16
    # A sweep stops claiming after this; what is in flight is finished (a few timeouts).
    budget_seconds: float = 20.0

    @property
    def lease_seconds(self) -> int:
        """Longer than one attempt can last (its total timeout, plus DNS and the database)."""
        return int(4 * self.timeout_seconds) + 30

    @classmethod
    def from_settings(cls, cfg: settings.Settings) -> DeliveryConfig:
        """The delivery the environment sets; the sweep's limits keep their defaults."""
        return cls(
            secret=cfg.webhook_secret,
            allowed_hosts=cfg.webhook_allowed_hosts,
            retry_hours=cfg.webhook_retry_hours,
            timeout_seconds=cfg.webhook_timeout_seconds,
        )


def attempt(
    claimed: Claimed,
    cfg: DeliveryConfig,
    post: Callable[..., delivery.Answer] = delivery.post,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Attempt:
    """Sign and POST one notification; what happened and what follows (never raises)."""
    body = body_of(
        run_json(claimed.run_snapshot), claimed.previous_status, iso_utc(claimed.occurred_at)
    )
    started = now()
    headers = signed_headers(cfg.secret, f"msg_{claimed.webhook_id}", body, started)
    answer = post(claimed.url, body, headers, cfg.timeout_seconds, cfg.allowed_hosts)
    fields = {
        "at": started,
        "duration_ms": answer.duration_ms,
        "status_code": answer.status_code,
        "error": answer.error,
        "excerpt": answer.excerpt,
    }
    if answer.error is None:
        return Attempt(state=DELIVERED, **fields)
    # A refused target or a receiver that says it is gone will not change its mind.
    if answer.refused or answer.status_code == 410:
        return Attempt(state=GIVEN_UP, **fields)
    following = schedule.next_attempt_at(
        claimed.attempts + 1, now(), claimed.created_at, cfg.retry_hours, answer.retry_after
    )
    if following is None:
        return Attempt(state=GIVEN_UP, **{**fields, "error": f"{answer.error}; given up"})
    return Attempt(state=PENDING, next_attempt_at=following, **fields)


def sweep(
    store: NotificationStore,
    cfg: DeliveryConfig,
    post: Callable[..., delivery.Answer] = delivery.post,
    clock: Callable[[], float] = time.monotonic,
) -> dict:
    """Deliver what is due until nothing is or the budget is spent: each run's oldest pending
    notification only, many runs at once, a slot freed by one answer refilled at once, so a
    slow receiver holds one slot and never another run's deliveries."""
    if not cfg.secret:
        return {"skipped": "WEBHOOK_SECRET is not set", "delivered": 0, "failed": 0}
    counts = {DELIVERED: 0, PENDING: 0, GIVEN_UP: 0, "lost_claims": 0}
    deadline = clock() + cfg.budget_seconds
    started = clock()

    def one(claimed: Claimed) -> None:
        outcome = attempt(claimed, cfg, post)
        if store.record(claimed, outcome):
            counts[outcome.state] += 1
            if outcome.state == GIVEN_UP:
                log.warning(
                    "notification %s of run %s given up after %d attempts: %s",
                    claimed.webhook_id,
                    claimed.run_id,
                    claimed.attempts + 1,
                    outcome.error,
                )
        else:
            counts["lost_claims"] += 1

    in_flight: set[Future] = set()
    with ThreadPoolExecutor(cfg.concurrency, thread_name_prefix="notify") as pool:
        exhausted = False
        while True:
            free = cfg.concurrency - len(in_flight)
            if not exhausted and free > 0 and clock() < deadline:
                claimed = store.claim(free, cfg.lease_seconds)
                in_flight |= {pool.submit(one, c) for c in claimed}
                # Nothing due now; what finishes may make a run's next notification due.
                exhausted = not claimed and not in_flight
            if not in_flight:
                break
            done, in_flight = wait(in_flight, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()
            exhausted = exhausted and not done
    return {
        "delivered": counts[DELIVERED],
        "failed": counts[PENDING],
        "given_up": counts[GIVEN_UP],
        "lost_claims": counts["lost_claims"],
        "duration_ms": int((clock() - started) * 1000),
    }


def keep_notifier_loop_running(
    conductor: ConductorClient, db: Database, stop: threading.Event
) -> supervision.LoopKeeper:
    """Keep exactly one batch_notifier loop running, checked like the poller loop; its
    report() feeds the poller service's /healthz."""
    return supervision.LoopKeeper(
        conductor, NotificationStore(db), NOTIFIER_INTERVAL_SECONDS, stop, loop=NOTIFIER_LOOP
    ).start()
