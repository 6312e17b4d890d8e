"""How long to wait before retrying a call: jittered exponential backoff and ``Retry-After``.

Every delay handed out here is finite, non-negative and capped, whatever a server answered:
a ``Retry-After`` that is negative, unparsable or absurd counts as absent.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = [
    "POLL_DELAY_CEILING_SECONDS",
    "RETRY_AFTER_ABSURD_SECONDS",
    "RETRY_AFTER_CEILING_SECONDS",
    "backoff_delay",
    "next_poll_delay",
    "parse_retry_after",
]

# A server's Retry-After is honoured, even above the caller's cap, but never beyond this.
RETRY_AFTER_CEILING_SECONDS = 300.0
# No rate limit asks for more than a day: a longer Retry-After is a bug or a hostile answer
# (1e12, a date in year 9999), so it is ignored rather than honoured up to the ceiling.
RETRY_AFTER_ABSURD_SECONDS = 86400.0
# The longest a run waits for its next status poll, whatever the backoff or the server says.
POLL_DELAY_CEILING_SECONDS = RETRY_AFTER_CEILING_SECONDS


def usable_retry_after(seconds: float | None) -> float | None:
    """``seconds`` capped at the ceiling; None when absent, not a number, negative or absurd."""
    if seconds is None or not isinstance(seconds, int | float):
        return None
    if not (0.0 <= seconds <= RETRY_AFTER_ABSURD_SECONDS):  # also false for NaN
        return None
    return min(float(seconds), RETRY_AFTER_CEILING_SECONDS)


def backoff_delay(
    attempt: int,
    base: float,
    cap: float,
    retry_after: float | None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry).

    Exponential backoff with full jitter: uniformly random in ``[0, min(cap, base * 2**attempt)]``.
    A server's ``retry_after`` is a floor: the delay is never shorter, even when it exceeds
    ``cap``, but it is honoured only up to :data:`RETRY_AFTER_CEILING_SECONDS`.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    if not (math.isfinite(base) and base >= 0):
        raise ValueError(f"base must be a finite number >= 0, got {base}")
    if not (math.isfinite(cap) and cap >= 0):
        raise ValueError(f"cap must be a finite number >= 0, got {cap}")
    # 2**64 already dwarfs any sensible cap; bounding the exponent avoids float overflow.
    ceiling = min(cap, base * 2.0 ** min(attempt, 64))
    delay = (rng or random).uniform(0.0, ceiling)
    delay = min(max(delay, 0.0), ceiling)  # uniform() may round past its bounds
    floor = usable_retry_after(retry_after)
    return delay if floor is None else max(delay, floor)


def next_poll_delay(
    backoff: float, retry_after: float | None, ceiling: float = POLL_DELAY_CEILING_SECONDS
) -> float:
    """Seconds until a run is polled again: the longer of ``backoff`` and a usable
    ``retry_after``, never more than ``ceiling`` (a NaN backoff counts as the ceiling)."""
    if math.isnan(backoff):
        backoff = ceiling
    delay = max(backoff, usable_retry_after(retry_after) or 0.0, 0.0)
    return min(delay, ceiling)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP-date), capped at
    :data:`RETRY_AFTER_CEILING_SECONDS`; None if absent, unparsable, negative or absurd.

    A date in the past means "now" and gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return usable_retry_after(seconds)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:  # pragma: no cover - older Pythons returned None for garbage
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no further information
        when = when.replace(tzinfo=UTC)
    try:
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    except OverflowError:  # pragma: no cover - datetimes of years 1..9999 always subtract
        return None
    return usable_retry_after(max(seconds, 0.0))
