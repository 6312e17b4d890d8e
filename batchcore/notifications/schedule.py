"""When a failed notification is tried again, and when it is given up."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from batchcore.backoff import backoff_delay

# The first retry comes after at most this; each later one waits up to twice as long...
RETRY_BASE_SECONDS = 5.0
# ...but never more than an hour, so a receiver that comes back is served within the hour.
RETRY_CAP_SECONDS = 3600.0


def next_attempt_at(
    attempts: int,
    now: datetime,
    created_at: datetime,
    retry_hours: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> datetime | None:
    """When to try again after `attempts` failed attempts (None: give up now).

    Capped exponential backoff with full jitter; a receiver's Retry-After (already parsed and
    capped by batchcore.backoff) is a floor. Retries go on until `retry_hours` after the
    notification was written: the last one is made at that moment, so a receiver down for
    less than the whole window always gets the notification.
    """
    deadline = created_at + timedelta(hours=retry_hours)
    if now >= deadline:
        return None
    delay = backoff_delay(attempts - 1, RETRY_BASE_SECONDS, RETRY_CAP_SECONDS, retry_after, rng)
    return min(now + timedelta(seconds=delay), deadline)
