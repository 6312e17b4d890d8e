"""How long to wait before retrying a call: jittered exponential backoff and ``Retry-After``."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["RETRY_AFTER_CEILING_SECONDS", "backoff_delay", "parse_retry_after"]

# A server's Retry-After is honoured, even above the caller's cap, but never beyond this.
RETRY_AFTER_CEILING_SECONDS = 300.0


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
    if retry_after is not None and not math.isnan(retry_after):
        delay = max(delay, min(max(retry_after, 0.0), RETRY_AFTER_CEILING_SECONDS))
    return delay


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP-date; None if unusable.

    Past dates and negative numbers give 0. The result is not capped here; see
    :func:`backoff_delay` for the ceiling.
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
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:  # pragma: no cover - older Pythons returned None for garbage
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no further information
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
